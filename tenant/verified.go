package tenant

import (
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxVerified bounds the verified-token cache: about 20 MiB of tokens at most.
const maxVerified = 1 << 16

// verifiedTokens remembers tokens that passed Verify until they expire. A user sends the
// same token with every turn, and decoding and checking it again cost more than the rest
// of the HTTP edge together. A hit is a token byte-for-byte equal to one whose
// signature, tenant, key, issuer, audience and subject were checked, used inside the
// window its time claims allow: the answer can only be the one Verify gave. Outside that
// window it is checked again, in full. A reloaded key set clears it, so no entry can
// outlive its key.
type verifiedTokens struct {
	mu sync.RWMutex
	m  map[string]verifiedToken
}

type verifiedToken struct {
	p        Principal
	from, to time.Time // the window with leeway: latest of iat and nbf, and exp
}

func (v *verifiedTokens) get(token string, now time.Time) (Principal, bool) {
	v.mu.RLock()
	t, ok := v.m[token]
	v.mu.RUnlock()
	if !ok || now.Before(t.from) || now.After(t.to) {
		return Principal{}, false
	}
	return t.p, true
}

// clear forgets every token: a key set changed.
func (v *verifiedTokens) clear() {
	v.mu.Lock()
	clear(v.m)
	v.mu.Unlock()
}

func (v *verifiedTokens) put(token string, p Principal, c jwt.RegisteredClaims) {
	if c.ExpiresAt == nil {
		return // Verify requires exp; a token without one is never cached
	}
	t := verifiedToken{p: p, to: c.ExpiresAt.Add(Leeway)}
	for _, at := range []*jwt.NumericDate{c.IssuedAt, c.NotBefore} {
		if at != nil && at.Add(-Leeway).After(t.from) {
			t.from = at.Add(-Leeway)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.m) >= maxVerified {
		// Start afresh rather than track recency: a full cache is rare, refilling it
		// costs one full check per active token, and the bound is what matters.
		clear(v.m)
	}
	if v.m == nil {
		v.m = make(map[string]verifiedToken)
	}
	v.m[token] = t
}
