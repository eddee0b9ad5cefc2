package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/fengda-ai/fengda/queue/queuetest"
)

const (
	bankSecret = "DEMO-ONLY-qinghe-bank-jwt-secret-not-for-production"
)

// idpConfig returns the arguments of a program answering with the model stand-in whose
// shop tenant also trusts the RS256 key of its identity provider, from a key set file.
func idpConfig(t *testing.T, idpKey *rsa.PrivateKey) []string {
	t.Helper()
	dir := t.TempDir()
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "idp-1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(idpKey.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(idpKey.E)).Bytes()),
	}}})
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	args := modelArgs(t)
	data, err := os.ReadFile(args[1])
	if err != nil {
		t.Fatal(err)
	}
	const shop = "  - id: northwind-shop\n"
	if !strings.Contains(string(data), shop) {
		t.Fatal("examples/openai.yaml: no northwind-shop tenant where this test expects it")
	}
	cfg := strings.Replace(string(data), shop, shop+"    jwks_file: "+jwksPath+"\n", 1)
	path := filepath.Join(dir, "idp.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-config", path}
}

// signed returns a token of claims and header fields, signed with key by m.
func signed(t *testing.T, m jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validClaims are the claims of a good token of tenant tid, changed by edit.
func validClaims(tid string, edit func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"tid": tid, "sub": "attacker", "iss": "fengda", "aud": "fengda", "jti": "j-" + tid,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// Every attack on the bearer token gets 401 and reaches neither the session store nor
// the model; a token's jku or x5u is never fetched.
func TestAttacksReachNeitherStoreNorModel(t *testing.T) {
	requireRedis(t)
	idpKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	attackerKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	m := newEchoModel(t, 0, 0)
	renv := redisEnv(t)
	base := testServerWith(t, spillEnv(m, renv), idpConfig(t, idpKey), nil)

	var fetched atomic.Int32
	hostile := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { fetched.Add(1) }))
	defer hostile.Close()

	bank := []byte(bankSecret)
	idpDER, err := x509.MarshalPKIXPublicKey(&idpKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	idpPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: idpDER})
	hs := func(kid string, edit func(jwt.MapClaims)) string {
		return signed(t, jwt.SigningMethodHS256, bank, map[string]any{"kid": kid}, validClaims("qinghe-bank", edit))
	}
	parts := strings.Split(hs("demo-1", nil), ".")
	attacks := []struct{ name, token string }{
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"demo-1"}`)) + "." + parts[1] + "."},
		{"alg None", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"None","kid":"demo-1"}`)) + "." + parts[1] + "."},
		{"HS256 signed with the IdP's public key", signed(t, jwt.SigningMethodHS256, idpPEM, map[string]any{"kid": "idp-1"}, validClaims("northwind-shop", nil))},
		{"HS256 signed with the IdP's public key, demo kid", signed(t, jwt.SigningMethodHS256, idpPEM, map[string]any{"kid": "demo-1"}, validClaims("northwind-shop", nil))},
		{"expired", hs("demo-1", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })},
		{"missing exp", hs("demo-1", func(c jwt.MapClaims) { delete(c, "exp") })},
		{"wrong aud", hs("demo-1", func(c jwt.MapClaims) { c["aud"] = "someone-else" })},
		{"wrong iss", hs("demo-1", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })},
		{"unknown kid", hs("demo-2", nil)},
		{"kid ../../etc/passwd", hs("../../etc/passwd", nil)},
		{"kid 8 KiB long", hs(strings.Repeat("k", 8<<10), nil)},
		{"another tenant's key: bank secret, shop tid", signed(t, jwt.SigningMethodHS256, bank, map[string]any{"kid": "demo-1"}, validClaims("northwind-shop", nil))},
		{"another tenant's key: IdP key, bank tid", signed(t, jwt.SigningMethodRS256, idpKey, map[string]any{"kid": "idp-1"}, validClaims("qinghe-bank", nil))},
		{"jku and x5u to the attacker's keys", signed(t, jwt.SigningMethodRS256, attackerKey, map[string]any{
			"kid": "idp-1", "jku": hostile.URL + "/jwks.json", "x5u": hostile.URL + "/cert.pem",
		}, validClaims("northwind-shop", nil))},
		{"1 MiB bearer token", strings.Repeat("A", 1<<20)},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"tid":"northwind-shop","sub":"x"}`)) + "." + parts[2]},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			for _, req := range []struct{ method, path, accept string }{
				{"POST", "/v1/chat", ""},
				{"POST", "/v1/chat", "text/event-stream"},
				{"GET", "/v1/sessions/abcdefgh12345678/messages", ""},
				{"DELETE", "/v1/sessions/abcdefgh12345678", ""},
			} {
				r, err := http.NewRequest(req.method, base+req.path, strings.NewReader(`{"message":"信用卡丢了怎么办"}`))
				if err != nil {
					t.Fatal(err)
				}
				r.Header.Set("Authorization", "Bearer "+a.token)
				r.Header.Set("Content-Type", "application/json")
				if req.accept != "" {
					r.Header.Set("Accept", req.accept)
				}
				resp, err := httpClient.Do(r)
				if err != nil {
					t.Fatalf("%s %s: %v", req.method, req.path, err)
				}
				var e errorReply
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
					t.Errorf("%s %s: %d %q, want 401 unauthenticated", req.method, req.path, resp.StatusCode, e.Error.Code)
				}
			}
		})
	}

	// The good tokens the attacks imitate do work: the refusals are not an accident.
	good := map[string]string{
		"bank HS256": hs("demo-1", nil),
		"shop IdP":   signed(t, jwt.SigningMethodRS256, idpKey, map[string]any{"kid": "idp-1"}, validClaims("northwind-shop", nil)),
	}
	if m.total() != 0 {
		t.Errorf("the model was asked %d times by refused requests", m.total())
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), renv["FENGDA_SESSION_REDIS_KEY_PREFIX"]+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("refused requests left %d keys in the store: %v", len(keys), keys)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the attacker's key server was asked %d times", n)
	}
	for name, tok := range good {
		if r := post(base, tok, map[string]string{"message": "信用卡丢了怎么办"}); r.status != http.StatusOK {
			t.Errorf("%s: status %d, want 200; body %s", name, r.status, r.body)
		}
	}
}

// A token revoked through one replica's admin API is refused by another within a
// second, including one it had already verified; a replica started later refuses it
// from the start. Revoking a user refuses every token of theirs issued until then.
func TestRevocationReachesEveryReplica(t *testing.T) {
	env := queuetest.Backends[1].Place(t).Env() // replicas need a shared server
	a := testServer(t, env)
	b := testServer(t, env)

	tok := tokenFor(t, a, bankAPIKey, "revoke-me")
	other := tokenFor(t, a, bankAPIKey, "keep-me")
	for _, base := range []string{a, b} {
		if r := post(base, tok, map[string]string{"message": "hi"}); r.status != http.StatusOK {
			t.Fatalf("before revoking: status %d", r.status)
		}
	}
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &claims); err != nil {
		t.Fatal(err)
	}
	revokeOn := func(base, body string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/v1/admin/revocations", strings.NewReader(body))
		req.Header.Set("X-API-Key", bankAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke %s: status %d", body, resp.StatusCode)
		}
	}
	refusedWithin := func(base, token string, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			r := post(base, token, map[string]string{"message": "hi"})
			if r.status == http.StatusUnauthorized {
				return time.Since(start)
			}
			if time.Since(start) > d {
				t.Fatalf("still status %d %s after the revocation", r.status, time.Since(start))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	revokeOn(a, fmt.Sprintf(`{"jti":%q}`, claims["jti"]))
	took := refusedWithin(b, tok, time.Second)
	t.Logf("the other replica refused the revoked token %s after the revocation", took)
	if r := post(b, other, map[string]string{"message": "hi"}); r.status != http.StatusOK {
		t.Errorf("another user's token: status %d, want 200", r.status)
	}

	// A user, revoked on b, refused on a.
	time.Sleep(1100 * time.Millisecond) // tokens of the same second as a revocation are revoked too
	revokeOn(b, `{"user_id":"keep-me"}`)
	refusedWithin(a, other, time.Second)
	time.Sleep(1100 * time.Millisecond)
	fresh := tokenFor(t, a, bankAPIKey, "keep-me")
	if r := post(a, fresh, map[string]string{"message": "hi"}); r.status != http.StatusOK {
		t.Errorf("a token issued after the user's revocation: status %d, want 200", r.status)
	}

	// A replica that starts now enforces both at once.
	c := testServer(t, env)
	for name, token := range map[string]string{"revoked token": tok, "revoked user": other} {
		if r := post(c, token, map[string]string{"message": "hi"}); r.status != http.StatusUnauthorized {
			t.Errorf("%s on a new replica: status %d, want 401", name, r.status)
		}
	}
}

// A client that sends its headers slowly (slowloris) is cut off after
// server.read_header_timeout; headers past the server's read limit get net/http's 431.
func TestSlowAndHugeHeaders(t *testing.T) {
	base := testServer(t, map[string]string{"FENGDA_SERVER_READ_HEADER_TIMEOUT": "300ms"})
	addr := strings.TrimPrefix(base, "http://")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /v1/chat HTTP/1.1\r\nHost: fengda\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(conn) // returns when the server closes the connection
		closed <- err
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-closed:
			done = true
		case <-tick.C:
			_, _ = io.WriteString(conn, "X") // one byte of a header that never ends
			if time.Since(start) > 5*time.Second {
				t.Fatal("a connection sending its headers byte by byte was still open after 5s")
			}
		}
	}
	took := time.Since(start)
	if took < 250*time.Millisecond {
		t.Errorf("cut after %s, before the 300ms read_header_timeout", took)
	}
	t.Logf("a slow client was cut after %s (read_header_timeout 300ms)", took.Round(time.Millisecond))

	// Over the server's read limit (1 MiB and a bit): net/http refuses it itself.
	req, _ := http.NewRequest("POST", base+"/v1/chat", strings.NewReader(`{"message":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("A", 2<<20))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 2 MiB header: status %d, want 431", resp.StatusCode)
	}
	// And the server still answers.
	if r := get(base, "", "/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz after the attacks: %d", r.status)
	}
}
