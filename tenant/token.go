package tenant

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// ErrUnauthenticated is returned by Registry.Verify for any token that must be refused:
// malformed, forged, expired, wrong algorithm, unknown kid or tenant, wrong iss/aud.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrNoSigningKey is returned by Registry.Mint for a tenant whose keys are all public
// keys (EdDSA, RS256): its tokens come from its own identity provider, not from Fengda.
var ErrNoSigningKey = errors.New("tenant has no HS256 signing key")

// Token roles: whom a token speaks for, and so which routes it may call.
const (
	// RoleUser is an end user of the tenant, the customer; a token without a role
	// claim is a user's.
	RoleUser = "user"
	// RoleAgent is a human agent of the tenant, who takes over conversations.
	RoleAgent = "agent"
	// RoleAdmin is an administrator of the tenant.
	RoleAdmin = "admin"
)

// MaxName is the longest display name (the name claim), in runes.
const MaxName = 64

// ErrInvalidClaim is returned by Registry.MintRole for a user, role or name it cannot
// write into a token: the caller's input, not a fault of the registry.
var ErrInvalidClaim = errors.New("invalid token claim")

// ValidRole reports whether role is one of RoleUser, RoleAgent and RoleAdmin.
func ValidRole(role string) bool {
	switch role {
	case RoleUser, RoleAgent, RoleAdmin:
		return true
	}
	return false
}

// Mint signs a user token for tenant id: MintRole with RoleUser and no name.
func (r *Registry) Mint(id ID, user string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error) {
	return r.MintRole(id, user, RoleUser, "", ttl, now)
}

// MintRole signs a token of the given role for tenant id with the tenant's first signing
// key; name, when not empty, is the bearer's display name (an agent's, shown to the
// customer). It returns ErrUnknown for an unknown tenant, ErrNoSigningKey for a tenant
// whose keys are all public keys, and ErrInvalidClaim for a bad user, role or name.
// user must be 1 to MaxUser bytes of UTF-8 without control characters; role one that
// ValidRole accepts; name at most MaxName runes without control characters; ttl must be
// in (0, MaxTokenTTL].
func (r *Registry) MintRole(id ID, user, role, name string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error) {
	e, ok := r.byID[id]
	if !ok {
		return "", time.Time{}, fmt.Errorf("mint: %w: %q", ErrUnknown, id)
	}
	if e.signing == nil {
		return "", time.Time{}, fmt.Errorf("mint for %s: %w: its tokens come from its identity provider", id, ErrNoSigningKey)
	}
	if err := checkUser(user); err != nil {
		return "", time.Time{}, fmt.Errorf("mint for %s: %w: %w", id, ErrInvalidClaim, err)
	}
	if !ValidRole(role) {
		return "", time.Time{}, fmt.Errorf("mint for %s: %w: role must be %q, %q or %q", id, ErrInvalidClaim, RoleUser, RoleAgent, RoleAdmin)
	}
	if !validName(name) {
		return "", time.Time{}, fmt.Errorf("mint for %s: %w: name must be at most %d characters without control characters", id, ErrInvalidClaim, MaxName)
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("mint for %s: ttl %s outside (0, %s]", id, ttl, MaxTokenTTL)
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:]) // crypto/rand.Read never fails (Go 1.24+)
	iat := now.Unix()
	exp := now.Add(ttl).Unix()
	c := jwt.MapClaims{
		"tid":  string(id),
		"sub":  user,
		"iat":  iat,
		"exp":  exp,
		"jti":  hex.EncodeToString(jti[:]),
		"iss":  e.issuer,
		"aud":  e.audience,
		"role": role,
	}
	if name != "" {
		c["name"] = name
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = e.signing.kid
	s, err := tok.SignedString(e.signing.verify)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mint for %s: %w", id, err)
	}
	return s, time.Unix(exp, 0), nil
}

// tokenClaims are the claims Verify reads; sid and anything else are ignored. Role and
// Name stay raw so that an absent claim, a string and anything else can be told apart.
type tokenClaims struct {
	TID  string          `json:"tid"`
	Role json.RawMessage `json:"role"`
	Name json.RawMessage `json:"name"`
	jwt.RegisteredClaims
}

// Reasons Verify gives. They are fixed strings, safe to log: none echoes the token.
var (
	errTooLarge      = errors.New("token too large")
	errEmpty         = errors.New("no token")
	errMalformed     = errors.New("malformed token")
	errAlg           = errors.New("algorithm not allowed")
	errBadTID        = errors.New("missing or invalid tid")
	errUnknownTenant = errors.New("unknown tenant")
	errNoKID         = errors.New("missing kid")
	errUnknownKID    = errors.New("unknown kid")
	errAlgMismatch   = errors.New("algorithm does not match the key")
	errSignature     = errors.New("bad signature")
	errExpired       = errors.New("expired")
	errNoExp         = errors.New("missing exp")
	errFuture        = errors.New("issued in the future or not yet valid")
	errIssuer        = errors.New("wrong issuer")
	errAudience      = errors.New("wrong audience")
	errSubject       = errors.New("missing or invalid sub")
	errRole          = errors.New("invalid role")
	errName          = errors.New("invalid name")
	errInvalid       = errors.New("invalid token")
	errRevoked       = errors.New("revoked")
)

// Verify checks token and returns who it names: tenant, user, role (RoleUser when the
// token has no role claim) and display name. Every failure wraps ErrUnauthenticated with
// a short reason that is safe to log; a role claim that is not one of the roles, or a
// name claim that is not a valid name, is such a failure.
//
// The key is chosen by the token's own tid and kid: a token claiming tenant B is only ever
// checked against B's keys, and the key's configured algorithm must be the token's.
func (r *Registry) Verify(token string, now time.Time) (Principal, error) {
	if len(token) > MaxTokenSize {
		return Principal{}, refuse(errTooLarge)
	}
	if token == "" {
		return Principal{}, refuse(errEmpty)
	}
	// A remembered token is checked against the revocations like any other.
	if p, ok := r.verified.get(token, now); ok {
		if r.revoked.revoked(p) {
			return Principal{}, refuse(errRevoked)
		}
		return p, nil
	}
	var c tokenClaims
	var e *entry
	parser := jwt.NewParser(
		jwt.WithValidMethods(validMethods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithStrictDecoding(), // one token, one encoding
	)
	tok, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		id, err := ParseID(c.TID)
		if err != nil {
			return nil, errBadTID
		}
		var ok bool
		if e, ok = r.byID[id]; !ok {
			return nil, errUnknownTenant
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errNoKID
		}
		k, ok := e.lookup(kid)
		if !ok {
			return nil, errUnknownKID
		}
		if k.alg != t.Method.Alg() {
			return nil, errAlgMismatch
		}
		return k.verify, nil
	})
	if err != nil {
		if tok != nil && tok.Method != nil && !slices.Contains(validMethods, tok.Method.Alg()) {
			return Principal{}, refuse(errAlg) // "none" among them
		}
		return Principal{}, refuse(reason(err))
	}
	if c.Issuer != e.issuer {
		return Principal{}, refuse(errIssuer)
	}
	if !slices.Contains(c.Audience, e.audience) {
		return Principal{}, refuse(errAudience)
	}
	if checkUser(c.Subject) != nil {
		return Principal{}, refuse(errSubject)
	}
	role, ok := roleClaim(c.Role)
	if !ok {
		return Principal{}, refuse(errRole)
	}
	name, ok := nameClaim(c.Name)
	if !ok {
		return Principal{}, refuse(errName)
	}
	p := Principal{Tenant: e.tenant.ID, User: c.Subject, TokenID: c.ID, Role: role, Name: name}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	r.verified.put(token, p, c.RegisteredClaims)
	if r.revoked.revoked(p) {
		return Principal{}, refuse(errRevoked)
	}
	return p, nil
}

func refuse(reason error) error {
	return fmt.Errorf("%w: %w", ErrUnauthenticated, reason)
}

// reason maps a parser error to one of the fixed reasons, so that nothing taken from the
// token (an algorithm name, a JSON fragment) reaches a log.
func reason(err error) error {
	for _, r := range []error{errBadTID, errUnknownTenant, errNoKID, errUnknownKID, errAlgMismatch} {
		if errors.Is(err, r) {
			return r
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Only an unknown or missing alg gets here: keyfunc errors are handled above.
		return errAlg
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errNoExp
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return errFuture
	}
	return errInvalid
}

// roleClaim reads the role claim: absent is RoleUser; anything but one of the roles as a
// string (null, a number, an unknown role) is refused.
func roleClaim(raw json.RawMessage) (string, bool) {
	if raw == nil {
		return RoleUser, true
	}
	var role *string // nil for null
	if json.Unmarshal(raw, &role) != nil || role == nil || !ValidRole(*role) {
		return "", false
	}
	return *role, true
}

// nameClaim reads the optional name claim: absent is no name; else it must be a string
// validName accepts (null is refused too).
func nameClaim(raw json.RawMessage) (string, bool) {
	if raw == nil {
		return "", true
	}
	var name *string // nil for null
	if json.Unmarshal(raw, &name) != nil || name == nil || !validName(*name) {
		return "", false
	}
	return *name, true
}

// validName reports whether name may be a token's display name: at most MaxName runes of
// UTF-8 without control characters. It is shown to customers and written to logs.
func validName(name string) bool {
	return printable(name) && utf8.RuneCountInString(name) <= MaxName
}

// checkUser validates a user ID: it ends up in logs and store keys.
func checkUser(user string) error {
	switch {
	case user == "":
		return errors.New("user: required")
	case len(user) > MaxUser:
		return fmt.Errorf("user: longer than %d bytes", MaxUser)
	case !printable(user):
		return errors.New("user: must be UTF-8 without control characters")
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
