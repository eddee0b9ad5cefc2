package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// ErrInvalidRevocation is returned by Revoke for a revocation that names neither a token
// nor a user, or both, or one that is malformed.
var ErrInvalidRevocation = errors.New("invalid revocation")

// RevocationRetention is how long a revocation is kept. A revoked token stays refused
// until it expires as long as it lives at most this long; Fengda's own tokens live at
// most MaxTokenTTL.
const RevocationRetention = 7 * 24 * time.Hour

// MaxTokenID is the longest jti Revoke accepts, in bytes.
const MaxTokenID = 256

// Revocation withdraws one token, by its jti, or every token of a user issued at or
// before Before (in whole seconds, as iat is: a token issued in the same second as the
// revocation is refused too).
type Revocation struct {
	Tenant  ID
	TokenID string    // set to revoke one token
	User    string    // set to revoke a user's tokens issued at or before Before
	Before  time.Time // with User
}

// Broadcast shares a revocation with every replica: key and value are what
// ApplyRevocation reads. Without one, revocations apply to this process only.
type Broadcast func(ctx context.Context, key string, value []byte) error

// An Option configures a Registry at construction.
type Option func(*Registry)

// WithBroadcast makes Revoke share every revocation through b.
func WithBroadcast(b Broadcast) Option {
	return func(r *Registry) { r.revoked.broadcast = b }
}

// revocations is the in-memory set Verify consults: no store round trip per request.
// Entries are keyed by a digest of the jti or user, as they travel between replicas.
type revocations struct {
	mu        sync.RWMutex
	byTenant  map[ID]*revokedSet
	broadcast Broadcast // set at construction, read-only after
	pruned    time.Time
}

type digest [16]byte

type revokedSet struct {
	tokens map[digest]time.Time // jti digest → when it was revoked
	users  map[digest]userCut
}

type userCut struct {
	before int64     // Unix seconds: tokens with iat ≤ before are refused
	at     time.Time // when it was revoked
}

// revocationRecord is the value of a broadcast revocation.
type revocationRecord struct {
	At     int64 `json:"at"`               // Unix seconds of the revocation
	Before int64 `json:"before,omitempty"` // user revocations: Unix seconds
}

const (
	kindToken = "t"
	kindUser  = "u"
)

func digestOf(s string) digest {
	sum := sha256.Sum256([]byte(s))
	return digest(sum[:16])
}

// Revoke refuses, from now on, the token or the user's tokens rv names: at once in this
// process, and, through the broadcast, in every replica. An error from the broadcast is
// returned after the revocation took effect here; Revoke may be called again with the
// same revocation.
func (r *Registry) Revoke(ctx context.Context, rv Revocation, now time.Time) error {
	if _, ok := r.byID[rv.Tenant]; !ok {
		return fmt.Errorf("revoke: %w: %q", ErrUnknown, rv.Tenant)
	}
	var kind string
	var d digest
	rec := revocationRecord{At: now.Unix()}
	switch {
	case rv.TokenID != "" && rv.User != "", rv.TokenID == "" && rv.User == "":
		return fmt.Errorf("%w: name a token or a user", ErrInvalidRevocation)
	case rv.TokenID != "":
		if len(rv.TokenID) > MaxTokenID || !printable(rv.TokenID) {
			return fmt.Errorf("%w: jti must be 1 to %d bytes without control characters", ErrInvalidRevocation, MaxTokenID)
		}
		kind, d = kindToken, digestOf(rv.TokenID)
	default:
		if err := checkUser(rv.User); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidRevocation, err)
		}
		if rv.Before.IsZero() {
			rv.Before = now
		}
		kind, d, rec.Before = kindUser, digestOf(rv.User), rv.Before.Unix()
	}
	r.revoked.apply(rv.Tenant, kind, d, rec)
	b := r.revoked.broadcast
	if b == nil {
		return nil
	}
	value, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	key := string(rv.Tenant) + "." + kind + "." + hex.EncodeToString(d[:])
	if err := b(ctx, key, value); err != nil {
		return fmt.Errorf("revoke: revoked here, not yet shared with the other replicas: %w", err)
	}
	return nil
}

// ApplyRevocation applies a revocation another replica (or this one) broadcast. Records
// of unknown tenants, or that do not parse, are refused with an error and change nothing.
func (r *Registry) ApplyRevocation(key string, value []byte) error {
	parts := strings.Split(key, ".")
	if len(parts) != 3 {
		return fmt.Errorf("revocation record %q: want <tenant>.<kind>.<digest>", key)
	}
	id, err := ParseID(parts[0])
	if err != nil {
		return fmt.Errorf("revocation record: %w", err)
	}
	if _, ok := r.byID[id]; !ok {
		return fmt.Errorf("revocation record: %w: %q", ErrUnknown, id)
	}
	kind := parts[1]
	if kind != kindToken && kind != kindUser {
		return fmt.Errorf("revocation record %q: unknown kind", key)
	}
	var d digest
	if b, err := hex.DecodeString(parts[2]); err != nil || len(b) != len(d) {
		return fmt.Errorf("revocation record %q: bad digest", key)
	} else {
		copy(d[:], b)
	}
	var rec revocationRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		return fmt.Errorf("revocation record %q: %w", key, err)
	}
	r.revoked.apply(id, kind, d, rec)
	return nil
}

func (v *revocations) apply(id ID, kind string, d digest, rec revocationRecord) {
	at := time.Unix(rec.At, 0)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.byTenant == nil {
		v.byTenant = make(map[ID]*revokedSet)
	}
	set := v.byTenant[id]
	if set == nil {
		set = &revokedSet{tokens: make(map[digest]time.Time), users: make(map[digest]userCut)}
		v.byTenant[id] = set
	}
	switch kind {
	case kindToken:
		set.tokens[d] = at
	case kindUser:
		// A later revocation of the same user can only move the cut forward.
		if cur, ok := set.users[d]; !ok || rec.Before > cur.before {
			set.users[d] = userCut{before: rec.Before, at: at}
		}
	}
	v.prune(at)
}

// prune drops revocations past their retention, at most once a minute. v.mu is held.
func (v *revocations) prune(now time.Time) {
	if now.Sub(v.pruned) < time.Minute {
		return
	}
	v.pruned = now
	cutoff := now.Add(-RevocationRetention)
	for id, set := range v.byTenant {
		for d, at := range set.tokens {
			if at.Before(cutoff) {
				delete(set.tokens, d)
			}
		}
		for d, c := range set.users {
			if c.at.Before(cutoff) {
				delete(set.users, d)
			}
		}
		if len(set.tokens) == 0 && len(set.users) == 0 {
			delete(v.byTenant, id)
		}
	}
}

// revoked reports whether p's token is revoked. A tenant without revocations costs one
// map lookup under a read lock.
func (v *revocations) revoked(p Principal) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	set := v.byTenant[p.Tenant]
	if set == nil {
		return false
	}
	if p.TokenID != "" && len(set.tokens) > 0 {
		if _, ok := set.tokens[digestOf(p.TokenID)]; ok {
			return true
		}
	}
	if len(set.users) > 0 {
		if c, ok := set.users[digestOf(p.User)]; ok {
			// A token without iat cannot show it was issued after the cut.
			return p.IssuedAt.IsZero() || p.IssuedAt.Unix() <= c.before
		}
	}
	return false
}
