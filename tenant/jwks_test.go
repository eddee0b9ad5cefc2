package tenant

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rsaKey2 is a second RSA key, generated once.
var rsaKey2 = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func jwkOf(t testing.TB, kid string, pub any, extra map[string]string) map[string]string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	var m map[string]string
	switch k := pub.(type) {
	case ed25519.PublicKey:
		m = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc(k)}
	case *rsa.PublicKey:
		m = map[string]string{"kty": "RSA", "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		m = map[string]string{"kty": "EC", "crv": "P-256", "x": enc(k.X.Bytes()), "y": enc(k.Y.Bytes())}
	default:
		t.Fatalf("no JWK for %T", pub)
	}
	m["kid"] = kid
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func writeJWKS(t testing.TB, path string, keys ...map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// idpClaims are valid claims of tenant bank-j, whose IdP sets its own iss and aud.
func idpClaims(edit func(jwt.MapClaims)) jwt.MapClaims {
	return claims(func(c jwt.MapClaims) {
		c["tid"] = "bank-j"
		c["iss"] = "https://idp.bank-j.example"
		c["aud"] = "fengda-bank-j"
		if edit != nil {
			edit(c)
		}
	})
}

func jwksRegistry(t *testing.T, path string) *Registry {
	t.Helper()
	reg, err := NewRegistry([]Config{
		{ID: "bank-a", Keys: []KeyConfig{{KID: "a1", Alg: AlgHS256, Secret: Secret{Value: secretA}}}},
		{ID: "bank-j", Issuer: "https://idp.bank-j.example", Audience: "fengda-bank-j", JWKSFile: path},
	}, nil)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return reg
}

func TestJWKS(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path,
		jwkOf(t, "ed-2026", edPub, map[string]string{"use": "sig", "alg": "EdDSA"}),
		jwkOf(t, "rsa-2026", &rsaKey().PublicKey, map[string]string{"alg": "RS256"}),
		jwkOf(t, "ec-2026", &ecKey.PublicKey, nil),                                  // skipped: EC
		jwkOf(t, "enc-2026", &rsaKey2().PublicKey, map[string]string{"use": "enc"}), // skipped: encryption
	)
	reg := jwksRegistry(t, path)

	// A server a hostile token points at: nothing may ever fetch from it.
	var fetched atomic.Int32
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched.Add(1) }))
	defer hostile.Close()

	withHeader := func(m jwt.SigningMethod, key any, header map[string]any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(m, c)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tt := range []struct {
		name  string
		token string
		want  error // nil: accepted
	}{
		{"EdDSA key of the set", sign(t, jwt.SigningMethodEdDSA, edPriv, "ed-2026", idpClaims(nil)), nil},
		{"RS256 key of the set", sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa-2026", idpClaims(nil)), nil},
		{"EdDSA token for the RSA kid", sign(t, jwt.SigningMethodEdDSA, edPriv, "rsa-2026", idpClaims(nil)), errAlgMismatch},
		{"HS256 with the RSA public key as secret", sign(t, jwt.SigningMethodHS256, rsaPublicPEM(t), "rsa-2026", idpClaims(nil)), errAlgMismatch},
		{"the skipped EC key", sign(t, jwt.SigningMethodES256, ecKey, "ec-2026", idpClaims(nil)), errAlg},
		{"the encryption key", sign(t, jwt.SigningMethodRS256, rsaKey2(), "enc-2026", idpClaims(nil)), errUnknownKID},
		{"kid as a path", sign(t, jwt.SigningMethodRS256, rsaKey(), "../../etc/passwd", idpClaims(nil)), errUnknownKID},
		{"kid as a file URL", sign(t, jwt.SigningMethodRS256, rsaKey(), "file://"+path, idpClaims(nil)), errUnknownKID},
		{
			"jku and x5u to a hostile server, signed by its key",
			withHeader(jwt.SigningMethodRS256, rsaKey2(), map[string]any{"kid": "rsa-2026", "jku": hostile.URL + "/jwks.json", "x5u": hostile.URL + "/cert.pem"}, idpClaims(nil)),
			errSignature,
		},
		{
			"embedded jwk header",
			withHeader(jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(make([]byte, 32)), map[string]any{"kid": "ed-2026", "jwk": jwkOf(t, "x", ed25519.NewKeyFromSeed(make([]byte, 32)).Public(), nil)}, idpClaims(nil)),
			errSignature,
		},
		{"the set's key for another tenant", sign(t, jwt.SigningMethodEdDSA, edPriv, "ed-2026", claims(nil)), errUnknownKID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := reg.Verify(tt.token, testNow)
			if tt.want == nil {
				if err != nil || p.Tenant != "bank-j" {
					t.Fatalf("Verify = %+v, %v; want bank-j", p, err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the hostile server was asked %d times", n)
	}
}

// A token of the tenant's identity provider carries its role and name like one Fengda
// minted, and is refused for a role that is not one of Fengda's.
func TestJWKSRole(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path,
		jwkOf(t, "ed-2026", edPub, map[string]string{"use": "sig", "alg": "EdDSA"}),
		jwkOf(t, "rsa-2026", &rsaKey().PublicKey, map[string]string{"alg": "RS256"}),
	)
	reg := jwksRegistry(t, path)

	agent := sign(t, jwt.SigningMethodRS256, rsaKey(), "rsa-2026", idpClaims(func(c jwt.MapClaims) {
		c["role"] = RoleAgent
		c["name"] = "Li Wei"
	}))
	p, err := reg.Verify(agent, testNow)
	if err != nil {
		t.Fatalf("Verify agent: %v", err)
	}
	if p.Tenant != "bank-j" || p.Role != RoleAgent || p.Name != "Li Wei" {
		t.Errorf("Verify agent = %+v, want bank-j's agent Li Wei", p)
	}

	user, err := reg.Verify(sign(t, jwt.SigningMethodEdDSA, edPriv, "ed-2026", idpClaims(nil)), testNow)
	if err != nil || user.Role != RoleUser || user.Name != "" {
		t.Errorf("Verify without role = %+v, %v; want a user without a name", user, err)
	}

	for name, edit := range map[string]func(jwt.MapClaims){
		"unknown role":     func(c jwt.MapClaims) { c["role"] = "supervisor" },
		"role as a number": func(c jwt.MapClaims) { c["role"] = 2 },
		"name too long":    func(c jwt.MapClaims) { c["name"] = strings.Repeat("x", MaxName+1) },
	} {
		t.Run(name, func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodEdDSA, edPriv, "ed-2026", idpClaims(edit))
			if p, err := reg.Verify(tok, testNow); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("Verify = %+v, %v; want %v", p, err, ErrUnauthenticated)
			}
		})
	}
}

func rsaPublicPEM(t *testing.T) []byte {
	_, b := writePEM(t, &rsaKey().PublicKey)
	return b
}

// After the identity provider rotates its keys, ReloadKeys takes the new set; a token of
// the withdrawn key is refused even though it was verified (and remembered) before.
func TestJWKSReload(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	newPub, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, jwkOf(t, "k-old", edPub, nil))
	reg := jwksRegistry(t, path)
	oldTok := sign(t, jwt.SigningMethodEdDSA, edPriv, "k-old", idpClaims(nil))
	newTok := sign(t, jwt.SigningMethodEdDSA, newPriv, "k-new", idpClaims(nil))
	if _, err := reg.Verify(oldTok, testNow); err != nil {
		t.Fatal(err)
	}

	if changed, err := reg.ReloadKeys(); err != nil || len(changed) != 0 {
		t.Fatalf("ReloadKeys of the same file = %v, %v; want nothing changed", changed, err)
	}
	writeJWKS(t, path, jwkOf(t, "k-new", newPub, nil))
	if changed, err := reg.ReloadKeys(); err != nil || len(changed) != 1 || changed[0] != "bank-j" {
		t.Fatalf("ReloadKeys = %v, %v; want [bank-j]", changed, err)
	}
	if _, err := reg.Verify(oldTok, testNow.Add(time.Second)); !errors.Is(err, errUnknownKID) {
		t.Errorf("token of the withdrawn key: %v, want %v", err, errUnknownKID)
	}
	if _, err := reg.Verify(newTok, testNow); err != nil {
		t.Errorf("token of the new key: %v", err)
	}

	// A broken file keeps the keys that work.
	if err := os.WriteFile(path, []byte(`{"keys":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.ReloadKeys(); err == nil || !strings.Contains(err.Error(), "bank-j") {
		t.Errorf("ReloadKeys of a broken file = %v, want an error naming bank-j", err)
	}
	if _, err := reg.Verify(newTok, testNow); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}
}

func TestJWKSRefused(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		keys []map[string]string
		raw  string
		want string
	}{
		{name: "not JSON", raw: "<html>", want: "not a JSON Web Key Set"},
		{name: "no usable key", keys: []map[string]string{jwkOf(t, "enc", edPub, map[string]string{"use": "enc"})}, want: "no Ed25519 or RSA signing key"},
		{name: "alg does not fit", keys: []map[string]string{jwkOf(t, "k", edPub, map[string]string{"alg": "HS256"})}, want: `alg "HS256" does not go with kty OKP`},
		{name: "alg none", keys: []map[string]string{jwkOf(t, "k", edPub, map[string]string{"alg": "none"})}, want: `alg "none"`},
		{name: "no kid", keys: []map[string]string{jwkOf(t, "", edPub, nil)}, want: "kid must be"},
		{name: "duplicate kid", keys: []map[string]string{jwkOf(t, "k", edPub, nil), jwkOf(t, "k", edPub, nil)}, want: `duplicate kid "k"`},
		{name: "small RSA key", keys: []map[string]string{jwkOf(t, "k", &small.PublicKey, nil)}, want: "1024 bits"},
		{name: "bad x", keys: []map[string]string{{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "!!"}}, want: "x is not"},
		{name: "kid of a configured key", keys: []map[string]string{jwkOf(t, "a1", edPub, nil)}, want: `kid "a1" is also one of the tenant's keys`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			if tt.raw != "" {
				if err := os.WriteFile(path, []byte(tt.raw), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				writeJWKS(t, path, tt.keys...)
			}
			_, err := NewRegistry([]Config{{
				ID: "bank-j", JWKSFile: path,
				Keys: []KeyConfig{{KID: "a1", Alg: AlgHS256, Secret: Secret{Value: secretA}}},
			}}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "tenants[0].jwks_file") {
				t.Errorf("NewRegistry = %v, want an error at tenants[0].jwks_file containing %q", err, tt.want)
			}
		})
	}
	if _, err := NewRegistry([]Config{{ID: "bank-j", JWKSFile: filepath.Join(dir, "missing.json")}}, nil); err == nil {
		t.Error("a missing jwks_file was accepted")
	}
}
