package session

import (
	"crypto/rand"

	"github.com/fengda-ai/fengda/tenant"
)

// NewID returns a random session ID: 128 bits from crypto/rand as 26 characters of
// base32 (A–Z, 2–7), which ValidID accepts and which is safe in URLs and Redis keys.
func NewID() string { return rand.Text() }

// NewTurnID returns a random turn ID, made like NewID.
func NewTurnID() string { return rand.Text() }

// ValidID reports whether s can name a session: 8 to 64 characters of A–Z, a–z, 0–9,
// '_' or '-'. Stores refuse any other ID, so an ID can never break out of its key (a
// brace or a colon would change the Redis hash tag).
func ValidID(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// checkRef refuses a reference no session can have: a malformed tenant or session ID,
// or no user. It answers ErrNotFound, as for any other session the caller cannot see.
func checkRef(ref Ref) error {
	if ref.User == "" || !ValidID(ref.Session) {
		return ErrNotFound
	}
	if _, err := tenant.ParseID(string(ref.Tenant)); err != nil {
		return ErrNotFound
	}
	return nil
}

// checkTurnLookup refuses a lookup no queued turn record can answer: a malformed tenant
// or turn ID, or no user. Like checkRef, it answers ErrNotFound.
func checkTurnLookup(t tenant.ID, user, turnID string) error {
	if user == "" || !ValidID(turnID) {
		return ErrNotFound
	}
	if _, err := tenant.ParseID(string(t)); err != nil {
		return ErrNotFound
	}
	return nil
}
