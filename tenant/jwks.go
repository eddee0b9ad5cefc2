package tenant

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
)

// A tenant's identity provider publishes its public keys as a JSON Web Key Set (RFC
// 7517). Fengda reads it from a file only, never from a URL, and never follows a token's
// jku or x5u header: a token cannot choose the key that checks it. The bank's operators
// copy the set into the file (or mount it), and SIGHUP reloads it after a key rotation.

// jwkSet is the JSON of a key set file.
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// jwk is one key of a set: the members Fengda reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// loadJWKS reads the key set at path: Ed25519 keys (kty OKP) verify EdDSA, RSA keys of
// at least 2048 bits verify RS256. Keys for encryption (use "enc") and of other types
// (EC, symmetric) are skipped; a key whose alg names an algorithm its type cannot do,
// a key without kid, or two keys with one kid are errors, as is a set with no usable key.
func loadJWKS(path string) (map[string]*key, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	var set jwkSet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JSON Web Key Set: %w", path, err)
	}
	keys := make(map[string]*key, len(set.Keys))
	for i, j := range set.Keys {
		at := fmt.Sprintf("%s: keys[%d]", path, i)
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		var alg string
		switch j.Kty {
		case "OKP":
			if j.Crv != "Ed25519" {
				continue
			}
			alg = AlgEdDSA
		case "RSA":
			alg = AlgRS256
		default:
			continue
		}
		if j.Alg != "" && j.Alg != alg {
			if j.Kty == "RSA" && slices.Contains([]string{"RS384", "RS512", "PS256", "PS384", "PS512"}, j.Alg) {
				continue // an RSA key meant for another algorithm: not ours to use
			}
			return nil, fmt.Errorf("%s: alg %q does not go with kty %s (want %s)", at, j.Alg, j.Kty, alg)
		}
		if j.Kid == "" || len(j.Kid) > maxKID || !printable(j.Kid) {
			return nil, fmt.Errorf("%s: kid must be 1 to %d printable characters", at, maxKID)
		}
		if _, dup := keys[j.Kid]; dup {
			return nil, fmt.Errorf("%s: duplicate kid %q", at, j.Kid)
		}
		pub, err := j.publicKey()
		if err != nil {
			return nil, fmt.Errorf("%s (kid %q): %w", at, j.Kid, err)
		}
		keys[j.Kid] = &key{kid: j.Kid, alg: alg, verify: pub}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no Ed25519 or RSA signing key", path)
	}
	return keys, nil
}

func (j jwk) publicKey() (any, error) {
	dec := base64.RawURLEncoding
	switch j.Kty {
	case "OKP":
		x, err := dec.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("x is not a base64url Ed25519 public key")
		}
		return ed25519.PublicKey(x), nil
	default: // RSA
		n, err := dec.DecodeString(j.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("n is not a base64url integer")
		}
		e, err := dec.DecodeString(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("e is not a base64url integer of at most 4 bytes")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits, need at least 2048", pub.N.BitLen())
		}
		if pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("RSA exponent %d is not an odd number of at least 3", pub.E)
		}
		return pub, nil
	}
}

// lookup returns the tenant's key called kid: one of its configured keys, else one of
// its key set's.
func (e *entry) lookup(kid string) (*key, bool) {
	if k, ok := e.keys[kid]; ok {
		return k, true
	}
	if set := e.jwks.Load(); set != nil {
		k, ok := (*set)[kid]
		return k, ok
	}
	return nil, false
}

// loadJWKS loads a tenant's key set, refusing kids its configured keys already use.
func (e *entry) loadJWKS() (map[string]*key, error) {
	keys, err := loadJWKS(e.jwksFile)
	if err != nil {
		return nil, err
	}
	for kid := range keys {
		if _, dup := e.keys[kid]; dup {
			return nil, fmt.Errorf("%s: kid %q is also one of the tenant's keys", e.jwksFile, kid)
		}
	}
	return keys, nil
}

// ReloadKeys reads every tenant's key set file again (after the identity provider
// rotated its keys). A file that does not load leaves that tenant's keys as they were;
// the error names each such tenant. Tokens remembered as verified are forgotten when a
// set changed, so that a withdrawn key verifies nothing more.
func (r *Registry) ReloadKeys() (changed []ID, err error) {
	var errs []error
	for _, id := range r.ids {
		e := r.byID[id]
		if e.jwksFile == "" {
			continue
		}
		keys, lerr := e.loadJWKS()
		if lerr != nil {
			errs = append(errs, fmt.Errorf("tenant %s: jwks_file: %w", id, lerr))
			continue
		}
		if old := e.jwks.Load(); old != nil && sameKeys(*old, keys) {
			continue
		}
		e.jwks.Store(&keys)
		changed = append(changed, id)
	}
	if len(changed) > 0 {
		r.verified.clear()
	}
	return changed, errors.Join(errs...)
}

// sameKeys reports whether two key sets hold the same kids with the same keys.
func sameKeys(a, b map[string]*key) bool {
	return maps.EqualFunc(a, b, func(x, y *key) bool {
		ex, ok := x.verify.(interface{ Equal(crypto.PublicKey) bool })
		return ok && x.alg == y.alg && ex.Equal(y.verify)
	})
}
