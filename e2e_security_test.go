package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/fengda-ai/fengda/nlpclient/openai/openaitest"
	"github.com/fengda-ai/fengda/queue/queuetest"
)

// End-to-end tests of what an attacker or an auditor sees: forged, hostile, slow and
// huge requests reach neither the store nor the model; a revoked token is refused by
// every replica; and the log holds no message text or secrets, names each turn's
// request and tenant, and feeds each tenant's own file.

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

// End-to-end tests of the log: what a bank can hand to its auditors. The whole program
// runs with its log captured; turns of two tenants, JSON and streamed, answered, failing
// at the model and spilled to the queue, and unauthenticated requests, each with an
// X-Request-ID of the test's own, then the log is read line by line.

// logCapture collects the program's log; safe for concurrent writes.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// logEntry is one line of the JSON log.
type logEntry struct {
	raw    string
	fields map[string]any
}

func (e logEntry) str(key string) string {
	s, _ := e.fields[key].(string)
	return s
}

func (e logEntry) has(key string) bool {
	_, ok := e.fields[key]
	return ok
}

// parseLog splits a JSON log into its entries, failing the test on a line that is not
// one JSON object.
func parseLog(t *testing.T, name string, data []byte) []logEntry {
	t.Helper()
	var out []logEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var fields map[string]any
		if err := json.Unmarshal(sc.Bytes(), &fields); err != nil {
			t.Fatalf("%s: a line that is not JSON: %q: %v", name, sc.Text(), err)
		}
		out = append(out, logEntry{raw: sc.Text(), fields: fields})
	}
	return out
}

func (c *logCapture) entries(t *testing.T) []logEntry {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	return parseLog(t, "log", c.buf.Bytes())
}

// startLogged is startProgram with the program's log written into the returned capture.
func startLogged(t *testing.T, env map[string]string, args []string, reload <-chan os.Signal) (*program, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	return startProgramTo(t, env, args, reload, logs), logs
}

// logModel stands in for an OpenAI-compatible model: it refuses a message holding
// "fail" with 400, holds one holding "hold" until released, and otherwise answers
// without repeating the message, as JSON or streamed.
type logModel struct {
	srv     *httptest.Server
	gate    chan struct{}
	release func()

	mu    sync.Mutex
	asked map[string]int // by the last message's marker word (fail, hold, ok)
}

func newLogModel(t *testing.T) *logModel {
	t.Helper()
	m := &logModel{gate: make(chan struct{}), asked: map[string]int{}}
	m.release = sync.OnceFunc(func() { close(m.gate) })
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	t.Cleanup(m.release)
	return m
}

func (m *logModel) calls(word string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asked[word]
}

func (m *logModel) serve(w http.ResponseWriter, r *http.Request) {
	req, ok := openaitest.ReadRequest(w, r)
	if !ok {
		return
	}
	msg := req.Last()
	word := "ok"
	for _, k := range []string{"fail", "hold"} {
		if strings.Contains(msg, k) {
			word = k
		}
	}
	m.mu.Lock()
	m.asked[word]++
	m.mu.Unlock()
	switch word {
	case "fail":
		http.Error(w, `{"error":{"message":"the request was refused"}}`, http.StatusBadRequest)
		return
	case "hold":
		select {
		case <-m.gate:
		case <-r.Context().Done():
			return
		}
	}
	if !req.Stream {
		openaitest.WriteAnswer(w, "a fine answer")
		return
	}
	st := openaitest.NewStream(w)
	for _, tok := range []string{"a ", "fine ", "answer"} {
		if st.Delta(tok) != nil {
			return
		}
	}
	st.Done()
}

// call is one request of the test: its request id, and the tenant its log lines must
// carry ("" for an unauthenticated one).
type call struct {
	id, tenant string
	status     int
}

// sendAs sends a request with X-Request-ID id and the given headers; it may run on any
// goroutine.
func sendAs(method, url, id string, header map[string]string, body string) result {
	h := map[string]string{"X-Request-ID": id}
	maps.Copy(h, header)
	return sendHeader(method, url, h, []byte(body))
}

// TestLogsOfTurnsNameTheirRequestAndHoldNoSecrets runs turns through the program and
// checks its log: every line is one JSON object; no line at info level or above holds
// a message's text, and no line at all a bearer token, an API key, a JWT secret or the
// model's key; every line with a request id has a tenant field, the request's tenant
// or, for a request that was not authenticated, ""; the lines about a turn that failed
// at the model, answered here or by the queue's consumer, carry both; and each tenant's
// file (log.tenant_dir) holds exactly the lines naming it.
func TestLogsOfTurnsNameTheirRequestAndHoldNoSecrets(t *testing.T) {
	m := newLogModel(t)
	modelKey := "sk-logs-" + rand.Text()
	tenantDir := t.TempDir()
	p, logs := startLogged(t, map[string]string{
		"FENGDA_LLM_BASE_URL":      m.srv.URL + "/v1",
		"FENGDA_LLM_MODEL":         "test-model",
		"FENGDA_LLM_API_KEY":       modelKey,
		"FENGDA_RATELIMIT_ENABLED": "false",
		"FENGDA_DIALOGUE_WORKERS":  "1",
		"FENGDA_DIALOGUE_BACKLOG":  "1",
		"FENGDA_LOG_LEVEL":         "debug",
		"FENGDA_LOG_TENANT_DIR":    tenantDir,
	}, modelArgs(t), nil)
	base := p.base
	run := rand.Text()[:8]
	marker := "LOGMARK" + run // in every message; never in a log line at info level
	message := func(id, word string) string {
		return fmt.Sprintf(`{"message":"%s %s 我的手机13812345678 卡号6222021234567894 %s"}`, marker, id, word)
	}
	var calls []call
	var mu sync.Mutex
	do := func(c call, method, path string, header map[string]string, body string) result {
		c.id = c.id + "-" + run
		r := sendAs(method, base+path, c.id, header, body)
		if r.err != nil || r.status != c.status {
			t.Errorf("%s %s (%s): status %d, error %v, body %s; want %d", method, path, c.id, r.status, r.err, r.body, c.status)
		}
		mu.Lock()
		calls = append(calls, c)
		mu.Unlock()
		return r
	}
	token := func(id, tenantID, apiKey, user string) string {
		r := do(call{id: id, tenant: tenantID, status: http.StatusCreated}, "POST", "/v1/tokens",
			map[string]string{"X-API-Key": apiKey}, fmt.Sprintf(`{"user_id":%q}`, user))
		var out struct{ Token string }
		if err := json.Unmarshal(r.body, &out); err != nil || out.Token == "" {
			t.Fatalf("POST /v1/tokens: %s", r.body)
		}
		return out.Token
	}
	bankTok := token("token-bank", bankID, bankAPIKey, "u-logs")
	shopTok := token("token-shop", shopID, shopAPIKey, "u-logs")
	bank := map[string]string{"Authorization": "Bearer " + bankTok}
	shop := map[string]string{"Authorization": "Bearer " + shopTok}
	stream := func(h map[string]string) map[string]string {
		return map[string]string{"Authorization": h["Authorization"], "Accept": "text/event-stream"}
	}

	do(call{id: "json-ok", tenant: bankID, status: 200}, "POST", "/v1/chat", bank, message("json-ok", "ok"))
	do(call{id: "json-fail", tenant: bankID, status: 200}, "POST", "/v1/chat", bank, message("json-fail", "fail"))
	do(call{id: "sse-ok", tenant: shopID, status: 200}, "POST", "/v1/chat", stream(shop), message("sse-ok", "ok"))
	do(call{id: "sse-fail", tenant: shopID, status: 200}, "POST", "/v1/chat", stream(shop), message("sse-fail", "fail"))
	do(call{id: "no-token", status: 401}, "POST", "/v1/chat", nil, message("no-token", "ok"))
	do(call{id: "bad-token", status: 401}, "POST", "/v1/chat", map[string]string{"Authorization": "Bearer " + bankTok + "x"}, message("bad-token", "ok"))
	do(call{id: "bad-key", status: 401}, "POST", "/v1/tokens", map[string]string{"X-API-Key": bankAPIKey + "x"}, `{"user_id":"u"}`)
	do(call{id: "ready", status: 200}, "GET", "/readyz", nil, "")

	// Spill: one turn holds the only worker at the model; of the two failing turns
	// sent then, one waits in the backlog and the other goes through the queue.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer m.release()
	wg.Go(func() {
		do(call{id: "hold", tenant: bankID, status: 200}, "POST", "/v1/chat", bank, message("hold", "hold"))
	})
	eventually(t, 5*time.Second, "the held turn reaches the model", func() bool { return m.calls("hold") == 1 })
	for _, id := range []string{"spill-a", "spill-b"} {
		tok := tokenFor(t, base, bankAPIKey, "u-"+id)
		wg.Go(func() {
			do(call{id: id, tenant: bankID, status: 200}, "POST", "/v1/chat",
				map[string]string{"Authorization": "Bearer " + tok}, message(id, "fail"))
		})
	}
	eventually(t, 5*time.Second, "a turn is in the queue", func() bool {
		ms := scrapeMetrics(t, base)
		return ms.sum("fengda_queue_pending", "tenant", bankID)+ms.sum("fengda_queue_ack_pending", "tenant", bankID) >= 1
	})
	m.release()
	wg.Wait()
	if n := m.calls("fail"); n != 4 {
		t.Errorf("the model was asked %d failing turns, want 4", n)
	}
	if err, _ := p.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}

	entries := logs.entries(t)
	checkNoSecrets(t, entries, marker, []string{
		bankTok, shopTok, bankAPIKey, shopAPIKey, modelKey,
		"DEMO-ONLY-qinghe-bank-jwt-secret", "DEMO-ONLY-northwind-shop-jwt-secret",
	})
	checkRequestLines(t, entries, calls, run)
	checkTenantFiles(t, entries, tenantDir, map[string]bool{bankID: true, shopID: true})
}

// checkNoSecrets: no line at info level or above holds the marker of the messages or
// the personal data in them, and no line at all holds a secret.
func checkNoSecrets(t *testing.T, entries []logEntry, marker string, secrets []string) {
	t.Helper()
	if len(entries) < 20 {
		t.Fatalf("%d log lines: the log was not captured", len(entries))
	}
	for _, e := range entries {
		if e.str("level") != "debug" {
			for _, text := range []string{marker, "我的手机", "13812345678", "6222021234567894"} {
				if strings.Contains(e.raw, text) {
					t.Errorf("a %s line holds message text %q: %s", e.str("level"), text, e.raw)
				}
			}
		}
		for _, s := range secrets {
			if strings.Contains(e.raw, s) {
				t.Errorf("a line holds the secret %.12s…: %s", s, e.raw)
			}
		}
	}
}

// checkRequestLines: every line with a request id has a tenant; each call's lines carry
// its tenant; each call has its access line; the turns that failed at the model have
// their model line with tenant and request id, the queued one included.
func checkRequestLines(t *testing.T, entries []logEntry, calls []call, run string) {
	t.Helper()
	byID := map[string]call{}
	for _, c := range calls {
		byID[c.id] = c
	}
	access := map[string]int{}
	modelFailed := map[string]int{}
	for _, e := range entries {
		id := e.str("request_id")
		if id == "" {
			continue
		}
		if !e.has("tenant") {
			t.Errorf("a line with a request id and no tenant: %s", e.raw)
		}
		c, ours := byID[id]
		if !ours {
			continue // a request made by tokenFor or scrapeMetrics
		}
		if got := e.str("tenant"); got != c.tenant {
			t.Errorf("%s: a line with tenant %q, want %q: %s", id, got, c.tenant, e.raw)
		}
		switch e.str("msg") {
		case "request":
			access[id]++
		case "model upstream failed, answering without it":
			modelFailed[id]++
		}
	}
	for _, c := range calls {
		if access[c.id] != 1 {
			t.Errorf("%s: %d access lines, want 1", c.id, access[c.id])
		}
	}
	for _, id := range []string{"json-fail", "sse-fail", "spill-a", "spill-b"} {
		if n := modelFailed[id+"-"+run]; n != 1 {
			t.Errorf("%s: %d lines about the model's failure with its request id, want 1", id, n)
		}
	}
	queued := 0
	for _, e := range entries {
		if e.str("msg") == "spillover queue open" {
			queued++
		}
	}
	if queued != 1 {
		t.Errorf("%d spillover queue start lines, want 1: was the queue on?", queued)
	}
}

// checkTenantFiles: each tenant's file holds the main log's lines naming that tenant
// (and only those), in the same order; no other file is there.
func checkTenantFiles(t *testing.T, entries []logEntry, dir string, tenants map[string]bool) {
	t.Helper()
	want := map[string][]string{}
	for _, e := range entries {
		if tn := e.str("tenant"); tenants[tn] && strings.Count(e.raw, `"tenant":`) == 1 {
			want[tn] = append(want[tn], e.str("msg")+" "+e.str("request_id"))
		}
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tenants) {
		t.Errorf("log.tenant_dir holds %d files, want %d", len(files), len(tenants))
	}
	for tn := range tenants {
		data, err := os.ReadFile(filepath.Join(dir, tn+".log"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range parseLog(t, tn+".log", data) {
			if e.str("tenant") != tn {
				t.Errorf("%s.log holds a line of tenant %q: %s", tn, e.str("tenant"), e.raw)
			}
			got = append(got, e.str("msg")+" "+e.str("request_id"))
		}
		// Lines of concurrent requests reach the two sinks in their own order; each
		// file must hold the same lines, not in the same interleaving.
		slices.Sort(got)
		slices.Sort(want[tn])
		if strings.Join(got, "\n") != strings.Join(want[tn], "\n") {
			t.Errorf("%s.log has %d lines, the main log %d naming it:\n%s\nwant\n%s",
				tn, len(got), len(want[tn]), strings.Join(got, "\n"), strings.Join(want[tn], "\n"))
		}
		if len(got) < 5 {
			t.Errorf("%s.log: %d lines", tn, len(got))
		}
	}
}

// TestLogTenantFilesReopenOnSIGHUP: after the files were renamed (log rotation), the
// reload signal makes the program write to new ones.
func TestLogTenantFilesReopenOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	reload := make(chan os.Signal, 1)
	p, _ := startLogged(t, map[string]string{"FENGDA_LOG_TENANT_DIR": dir, "FENGDA_LOG_LEVEL": "info", "FENGDA_QUEUE_MODE": "off"}, nil, reload)
	path := filepath.Join(dir, bankID+".log")
	if r := sendAs("POST", p.base+"/v1/tokens", "before-rotation", map[string]string{"X-API-Key": bankAPIKey}, `{"user_id":"u"}`); r.status != http.StatusCreated {
		t.Fatalf("POST /v1/tokens: status %d, error %v", r.status, r.err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	eventually(t, 5*time.Second, "the file is created again", func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	if r := sendAs("POST", p.base+"/v1/tokens", "after-rotation", map[string]string{"X-API-Key": bankAPIKey}, `{"user_id":"u"}`); r.status != http.StatusCreated {
		t.Fatalf("POST /v1/tokens: status %d, error %v", r.status, r.err)
	}
	if err, _ := p.stop(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{path + ".1": "before-rotation", path: "after-rotation"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range parseLog(t, file, data) {
			if id := e.str("request_id"); id != "" {
				ids = append(ids, id)
			}
		}
		if strings.Join(ids, " ") != want {
			t.Errorf("%s: lines of requests %q, want %q", filepath.Base(file), ids, want)
		}
	}
}
