package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/fengda-ai/fengda/tenant"
)

// End-to-end tests drive the program as its users do. The files e2e_*_test.go each
// start the whole program (runWith, on a free port, with the real Redis and NATS of the
// machine where a test needs them) or the built binary, and talk to it only over HTTP,
// its command line and its signals. This file holds the harness they share
// (startProgram, client, tokenFor), the core API over the memory and Redis stores, the
// commands token and eval, the knowledge-base reload, demo mode, and the whole-turn
// benchmarks.

// testServer runs the whole program with env on a free port and returns its base URL.
// The program is stopped, and must return, when the test ends.
func testServer(t *testing.T, env map[string]string) string {
	t.Helper()
	return testServerWith(t, env, nil, nil)
}

// testServerWith is testServer with command-line args and a reload signal channel.
func testServerWith(t *testing.T, env map[string]string, args []string, reload <-chan os.Signal) string {
	t.Helper()
	return startProgram(t, env, args, reload).base
}

// program is one run of the whole program, stopped by the test or when it ends.
type program struct {
	base   string
	cancel context.CancelFunc
	done   chan error

	stopped bool // stop was called; only the test's goroutine calls it
	once    sync.Once
	err     error
	took    time.Duration
}

// startProgram runs the program with env, args and a reload signal channel on a free
// port, its embedded queue in a temporary directory unless env names one. The test may
// stop it; otherwise it is stopped, and must return nil, when the test ends.
func startProgram(t testing.TB, env map[string]string, args []string, reload <-chan os.Signal) *program {
	t.Helper()
	return startProgramTo(t, env, args, reload, nil)
}

// startProgramTo is startProgram with the program's log written to logs; with logs nil
// it goes to stderr, at warn level unless env sets one.
func startProgramTo(t testing.TB, env map[string]string, args []string, reload <-chan os.Signal, logs io.Writer) *program {
	t.Helper()
	dataDir := t.TempDir()
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		switch k {
		case "FENGDA_QUEUE_DATA_DIR":
			return dataDir
		case "FENGDA_SERVER_ADDR":
			return "127.0.0.1:0"
		case "FENGDA_SERVER_DRAIN_DELAY":
			return "0s" // tests stop at once; shutdown_test.go runs the delay
		case "FENGDA_LOG_LEVEL":
			if logs == nil {
				return "warn"
			}
		}
		return ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &program{cancel: cancel, done: make(chan error, 1)}
	addrc := make(chan net.Addr, 1)
	go func() {
		p.done <- runWith(ctx, args, process{getenv: getenv, stdout: io.Discard, logs: logs, ready: func(a net.Addr) { addrc <- a }, reload: reload})
	}()
	select {
	case a := <-addrc:
		p.base = "http://" + a.String()
	case err := <-p.done:
		cancel()
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("server did not start within 10s")
	}
	t.Cleanup(func() {
		if p.stopped {
			return // the test has seen how it ended
		}
		if err, _ := p.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return p
}

// stop cancels the program's context, as SIGTERM does, and returns what run returned
// and how long after the cancel it did (at most 30s).
func (p *program) stop() (error, time.Duration) {
	p.stopped = true
	p.once.Do(func() {
		start := time.Now()
		p.cancel()
		select {
		case p.err = <-p.done:
		case <-time.After(30 * time.Second):
			p.err = fmt.Errorf("run did not return within 30s of the cancel")
		}
		p.took = time.Since(start)
	})
	return p.err, p.took
}

type client struct {
	t     *testing.T
	base  string
	token string
}

// do sends a request and decodes a JSON reply into out (if non-nil); it returns the response.
func (c client) do(method, path string, body any, out any) *http.Response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: status %d, body %q: %v", method, path, resp.StatusCode, data, err)
		}
	}
	return resp
}

// tokenFor exchanges the demo API key of a tenant for a user token.
func tokenFor(t *testing.T, base, apiKey, user string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/tokens", strings.NewReader(fmt.Sprintf(`{"user_id":%q,"ttl_seconds":600}`, user)))
	req.Header.Set("X-API-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("POST /v1/tokens: status %d, err %v", resp.StatusCode, err)
	}
	if _, err := time.Parse(time.RFC3339, out.ExpiresAt); err != nil {
		t.Errorf("expires_at %q: %v", out.ExpiresAt, err)
	}
	return out.Token
}

const (
	bankAPIKey = "DEMO-ONLY-qinghe-bank-api-key-0001"
	shopAPIKey = "DEMO-ONLY-northwind-shop-api-key-0001"
)

type chatReply struct {
	SessionID  string  `json:"session_id"`
	TurnID     string  `json:"turn_id"`
	Answer     string  `json:"answer"`
	Source     string  `json:"source"`
	Confidence float64 `json:"confidence"`
	Citations  []struct {
		ID       string `json:"id"`
		Question string `json:"question"`
	} `json:"citations"`
	LatencyMS *float64 `json:"latency_ms"`
}

type errorReply struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
	} `json:"error"`
}

func citedID(r chatReply) string {
	if len(r.Citations) == 0 {
		return ""
	}
	return r.Citations[0].ID
}

// conversation runs the walk-through of the README against a server: FAQ answers in
// both languages, a follow-up that needs context, history, isolation between tenants.
func conversation(t *testing.T, base string) {
	bank := client{t, base, tokenFor(t, base, bankAPIKey, "u1")}
	shop := client{t, base, tokenFor(t, base, shopAPIKey, "u1")}

	var r1 chatReply
	if resp := bank.do("POST", "/v1/chat", map[string]string{"message": "借记卡丢了怎么挂失?"}, &r1); resp.StatusCode != 200 {
		t.Fatalf("bank chat: status %d", resp.StatusCode)
	}
	if r1.Source != "faq" || citedID(r1) != "debit-card-lost" || r1.SessionID == "" || r1.TurnID == "" || r1.LatencyMS == nil {
		t.Fatalf("bank chat: got %+v, want faq debit-card-lost", r1)
	}

	var r2 chatReply
	bank.do("POST", "/v1/chat", map[string]string{"message": "那补一张要多少钱?", "session_id": r1.SessionID}, &r2)
	if r2.SessionID != r1.SessionID || citedID(r2) != "debit-card-replace" {
		t.Errorf("follow-up: got source %s cite %q session %s, want debit-card-replace in %s", r2.Source, citedID(r2), r2.SessionID, r1.SessionID)
	}

	var hist struct {
		SessionID string `json:"session_id"`
		Messages  []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			TurnID  string `json:"turn_id"`
			At      string `json:"at"`
		} `json:"messages"`
	}
	if resp := bank.do("GET", "/v1/sessions/"+r1.SessionID+"/messages", nil, &hist); resp.StatusCode != 200 {
		t.Fatalf("history: status %d", resp.StatusCode)
	}
	var roles []string
	for _, m := range hist.Messages {
		roles = append(roles, m.Role)
	}
	if got, want := strings.Join(roles, ","), "user,assistant,user,assistant"; got != want {
		t.Fatalf("history roles: got %s, want %s", got, want)
	}
	if hist.Messages[0].Content != "借记卡丢了怎么挂失?" || hist.Messages[2].TurnID != r2.TurnID || hist.Messages[1].Content != r1.Answer {
		t.Errorf("history content: got %+v", hist.Messages)
	}

	var s1 chatReply
	shop.do("POST", "/v1/chat", map[string]string{"message": "How do I return an item?"}, &s1)
	if s1.Source != "faq" || citedID(s1) != "return-how" {
		t.Errorf("shop chat: got %s %q, want faq return-how", s1.Source, citedID(s1))
	}

	// Another tenant (same user id) and another user of the same tenant see nothing.
	other := client{t, base, tokenFor(t, base, bankAPIKey, "u2")}
	for name, c := range map[string]client{"other tenant": shop, "other user": other} {
		var e errorReply
		if resp := c.do("GET", "/v1/sessions/"+r1.SessionID+"/messages", nil, &e); resp.StatusCode != 404 || e.Error.Code != "not_found" {
			t.Errorf("%s reads session: status %d code %q, want 404 not_found", name, resp.StatusCode, e.Error.Code)
		}
		if resp := c.do("POST", "/v1/chat", map[string]string{"message": "hi", "session_id": r1.SessionID}, &e); resp.StatusCode != 404 {
			t.Errorf("%s writes session: status %d, want 404", name, resp.StatusCode)
		}
		if resp := c.do("DELETE", "/v1/sessions/"+r1.SessionID, nil, nil); resp.StatusCode != 404 {
			t.Errorf("%s deletes session: status %d, want 404", name, resp.StatusCode)
		}
	}

	// A retry with the same client_msg_id is answered from the stored turn.
	var d1, d2 chatReply
	msg := map[string]string{"message": "转账手续费多少", "session_id": r1.SessionID, "client_msg_id": "m-42"}
	bank.do("POST", "/v1/chat", msg, &d1)
	bank.do("POST", "/v1/chat", msg, &d2)
	if d1.TurnID == "" || d2.TurnID != d1.TurnID || d2.Answer != d1.Answer {
		t.Errorf("retry: turn ids %q and %q, want equal", d1.TurnID, d2.TurnID)
	}
	bank.do("GET", "/v1/sessions/"+r1.SessionID+"/messages", nil, &hist)
	if len(hist.Messages) != 6 {
		t.Errorf("after retry: %d messages, want 6 (stored once)", len(hist.Messages))
	}

	// Erasure.
	if resp := bank.do("DELETE", "/v1/sessions/"+r1.SessionID, nil, nil); resp.StatusCode != 204 {
		t.Errorf("delete: status %d, want 204", resp.StatusCode)
	}
	if resp := bank.do("GET", "/v1/sessions/"+r1.SessionID+"/messages", nil, nil); resp.StatusCode != 404 {
		t.Errorf("after delete: status %d, want 404", resp.StatusCode)
	}
}

func TestEndToEndMemory(t *testing.T) {
	base := testServer(t, nil)
	conversation(t, base)
}

func TestEndToEndRedis(t *testing.T) {
	requireRedis(t)
	prefix := "fdtest:" + rand.Text()[:10] + ":"
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() {
		deletePrefix(rdb, prefix)
		rdb.Close()
	})
	base := testServer(t, map[string]string{
		"FENGDA_SESSION_STORE":            "redis",
		"FENGDA_SESSION_REDIS_URL":        "redis://127.0.0.1:6379/0",
		"FENGDA_SESSION_REDIS_KEY_PREFIX": prefix,
	})
	conversation(t, base)

	// The turns really are in Redis, under the tenant's hash tag.
	bank := client{t, base, tokenFor(t, base, bankAPIKey, "u9")}
	var r chatReply
	bank.do("POST", "/v1/chat", map[string]string{"message": "信用卡年费怎么收"}, &r)
	keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := prefix + "{qinghe-bank:" + r.SessionID + "}:"
	found := false
	for _, k := range keys {
		if strings.HasPrefix(k, want) {
			found = true
		}
		if !strings.HasPrefix(k, prefix+"{") {
			t.Errorf("key %q lacks the prefix and hash tag", k)
		}
	}
	if !found {
		t.Errorf("no key starting %q among %v", want, keys)
	}
}

func TestRedisDownAnswers503(t *testing.T) {
	// A port nothing listens on: chat must fail fast with 503, and readiness must fail.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	base := testServer(t, map[string]string{
		"FENGDA_SESSION_STORE":               "redis",
		"FENGDA_SESSION_REDIS_URL":           "redis://" + deadAddr + "/0",
		"FENGDA_SESSION_REDIS_DIAL_TIMEOUT":  "200ms",
		"FENGDA_SESSION_REDIS_READ_TIMEOUT":  "200ms",
		"FENGDA_SESSION_REDIS_WRITE_TIMEOUT": "200ms",
	})
	c := client{t, base, tokenFor(t, base, bankAPIKey, "u1")}
	start := time.Now()
	var e errorReply
	resp := c.do("POST", "/v1/chat", map[string]string{"message": "信用卡年费", "session_id": "abcdefgh12345678"}, &e)
	if resp.StatusCode != 503 || e.Error.Code != "unavailable" {
		t.Errorf("chat with redis down: status %d code %q, want 503 unavailable", resp.StatusCode, e.Error.Code)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("chat with redis down took %s", d)
	}
	if resp := c.do("GET", "/readyz", nil, nil); resp.StatusCode != 503 {
		t.Errorf("/readyz with redis down: status %d, want 503", resp.StatusCode)
	}
	if resp := c.do("GET", "/healthz", nil, nil); resp.StatusCode != 200 {
		t.Errorf("/healthz: status %d, want 200", resp.StatusCode)
	}
}

func TestHostileRequests(t *testing.T) {
	base := testServer(t, nil)
	good := tokenFor(t, base, bankAPIKey, "u1")

	// Correctly signed with the demo key, but an hour past its expiry.
	expiredTok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"tid": "qinghe-bank", "sub": "u1", "iss": "fengda", "aud": "fengda", "jti": "x1",
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
	})
	expiredTok.Header["kid"] = "demo-1"
	expired, err := expiredTok.SignedString([]byte("DEMO-ONLY-qinghe-bank-jwt-secret-not-for-production"))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	algNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"demo-1"}`)) + "." + parts[1] + "."
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("not-the-signature-at-all-00000000"))

	for _, tc := range []struct {
		name, token string
	}{
		{"no token", ""},
		{"garbage", "abc.def.ghi"},
		{"forged signature", forged},
		{"alg none", algNone},
		{"expired", expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e errorReply
			resp := client{t, base, tc.token}.do("POST", "/v1/chat", map[string]string{"message": "hi"}, &e)
			if resp.StatusCode != 401 || e.Error.Code != "unauthenticated" {
				t.Errorf("got %d %q, want 401 unauthenticated", resp.StatusCode, e.Error.Code)
			}
		})
	}

	c := client{t, base, good}
	for _, tc := range []struct {
		name       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"malformed json", `{"message": "hi"`, 400, "invalid_request"},
		{"wrong type", `{"message": 5}`, 400, "invalid_request"},
		{"empty message", `{"message": "   "}`, 400, "invalid_request"},
		{"NUL in message", "{\"message\": \"a\\u0000b\"}", 400, "invalid_request"},
		{"over-long message", map[string]string{"message": strings.Repeat("长", 2001)}, 400, "invalid_request"},
		{"bad session id", map[string]string{"message": "hi", "session_id": "../../etc"}, 400, "invalid_request"},
		{"unknown session", map[string]string{"message": "hi", "session_id": "abcdefgh12345678"}, 404, "not_found"},
		{"20 KiB body", `{"message":"` + strings.Repeat("a", 20<<10) + `"}`, 413, "too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e errorReply
			resp := c.do("POST", "/v1/chat", tc.body, &e)
			if resp.StatusCode != tc.wantStatus || e.Error.Code != tc.wantCode {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, e.Error.Code, tc.wantStatus, tc.wantCode)
			}
			if e.Error.RequestID == "" {
				t.Error("error without request_id")
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	base := testServer(t, nil)
	c := client{t, base, tokenFor(t, base, shopAPIKey, "burst")}
	var limited *http.Response
	for i := range 200 {
		resp := c.do("POST", "/v1/chat", map[string]string{"message": fmt.Sprintf("where is my order %d", i)}, nil)
		if resp.StatusCode == 429 {
			limited = resp
			break
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if limited == nil {
		t.Fatal("200 quick requests never got 429 (demo tenant: 20 rps, burst 40)")
	}
	if ra := limited.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("429 Retry-After = %q, want a positive number of seconds", ra)
	}

	// With rate limits off, the same burst passes.
	base = testServer(t, map[string]string{"FENGDA_RATELIMIT_ENABLED": "false"})
	c = client{t, base, tokenFor(t, base, shopAPIKey, "burst")}
	for i := range 100 {
		if resp := c.do("POST", "/v1/chat", map[string]string{"message": "payment options"}, nil); resp.StatusCode != 200 {
			t.Fatalf("ratelimit.enabled=false, request %d: status %d", i, resp.StatusCode)
		}
	}
}

func TestStreamingChat(t *testing.T) {
	base := testServer(t, nil)
	tok := tokenFor(t, base, bankAPIKey, "u1")
	req, _ := http.NewRequest("POST", base+"/v1/chat", strings.NewReader(`{"message":"借记卡丢了怎么挂失?"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	var events []string
	var text strings.Builder
	var done chatReply
	sc := bufio.NewScanner(resp.Body)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
			events = append(events, event)
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			switch event {
			case "token":
				var d struct{ Delta string }
				if err := json.Unmarshal([]byte(data), &d); err != nil {
					t.Fatal(err)
				}
				text.WriteString(d.Delta)
			case "done":
				if err := json.Unmarshal([]byte(data), &done); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(events) < 3 || events[0] != "meta" || events[len(events)-1] != "done" {
		t.Fatalf("events %v, want meta, token…, done", events)
	}
	if text.String() != done.Answer || citedID(done) != "debit-card-lost" {
		t.Errorf("streamed %q, done %+v", text.String(), done)
	}
}

func TestTokenCommand(t *testing.T) {
	out := mustRun(t, "token", "-tenant", "northwind-shop", "-user", "u1", "-ttl", "5m")
	if parts := strings.Split(strings.TrimSpace(out), "."); len(parts) != 3 {
		t.Fatalf("token output %q is not a JWT", out)
	}
	if err := runWith(context.Background(), []string{"token", "-tenant", "nope", "-user", "u1"}, process{getenv: func(string) string { return "" }, stdout: io.Discard}); err == nil {
		t.Error("token for an unknown tenant succeeded")
	}

	roleAndName := func(token string) (role, name any) {
		t.Helper()
		parsed, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(token), jwt.MapClaims{})
		if err != nil {
			t.Fatalf("token %q: %v", token, err)
		}
		c := parsed.Claims.(jwt.MapClaims)
		return c["role"], c["name"]
	}
	if role, name := roleAndName(out); role != tenant.RoleUser || name != nil {
		t.Errorf("default token: role %v, name %v; want user and no name", role, name)
	}
	agent := mustRun(t, "token", "-tenant", "northwind-shop", "-user", "agent-7", "-role", "agent", "-name", "Li Wei")
	if role, name := roleAndName(agent); role != tenant.RoleAgent || name != "Li Wei" {
		t.Errorf("agent token: role %v, name %v; want agent Li Wei", role, name)
	}
	for _, args := range [][]string{
		{"-role", "root"},
		{"-role", ""},
		{"-role", "agent", "-name", "Li\nWei"},
	} {
		err := runWith(context.Background(), append([]string{"token", "-tenant", "northwind-shop", "-user", "u1"}, args...), process{getenv: func(string) string { return "" }, stdout: io.Discard})
		if err == nil {
			t.Errorf("token %v succeeded", args)
		}
	}
	err := runWith(context.Background(), []string{"token", "-tenant", "northwind-shop", "-user", "u1", "-role", "root"}, process{getenv: func(string) string { return "" }, stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), `-role "root": must be user, agent or admin`) {
		t.Errorf("bad role: %v, want it named", err)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := runWith(context.Background(), args, process{getenv: func(string) string { return "" }, stdout: &out}); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String()
}

// requireRedis skips (or, in CI, fails) when Redis is not on 127.0.0.1:6379.
func requireRedis(t testing.TB) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("redis on 127.0.0.1:6379 not answering (%v); start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

func deletePrefix(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

func TestEvalCommand(t *testing.T) {
	out := mustRun(t, "eval", "-tenant", "qinghe-bank", "-json",
		"-queries", "nlpclient/faq/testdata/eval-dev/bank-zh-queries.json",
		"-followups", "nlpclient/faq/testdata/eval-dev/bank-zh-followups.json")
	var rep struct {
		InScope   int     `json:"in_scope"`
		Top1      float64 `json:"top1"`
		Rejection float64 `json:"rejection"`
		FollowUps int     `json:"follow_ups"`
		ByKind    map[string]struct {
			N int `json:"n"`
		} `json:"by_kind"`
		P99 int64 `json:"p99"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("eval -json output %q: %v", out, err)
	}
	if rep.InScope != 45 || rep.FollowUps != 5 || rep.ByKind["typo"].N != 8 || rep.P99 <= 0 {
		t.Errorf("eval report counts: got %+v", rep)
	}
	if rep.Top1 < 0.8 || rep.Rejection < 0.8 {
		t.Errorf("eval report: top-1 %.2f, rejection %.2f; want both ≥ 0.8", rep.Top1, rep.Rejection)
	}
	text := mustRun(t, "eval", "-tenant", "northwind-shop", "-queries", "nlpclient/faq/testdata/eval-dev/shop-en-queries.json")
	for _, want := range []string{"top-1 accuracy", "top-3 recall", "out-of-scope rejection", "follow-up accuracy", "p50 / p99", "paraphrase"} {
		if !strings.Contains(text, want) {
			t.Errorf("eval output lacks %q:\n%s", want, text)
		}
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// demoToken asks POST /v1/demo/token for a token of tenant, renewing prev when given.
func demoToken(t *testing.T, base, tenantID, prev string, header map[string]string) (token string, status int) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/demo/token", strings.NewReader(`{"tenant":"`+tenantID+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if prev != "" {
		req.Header.Set("Authorization", "Bearer "+prev)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
			t.Fatalf("demo token: %v", err)
		}
		if _, err := time.Parse(time.RFC3339, out.ExpiresAt); err != nil {
			t.Errorf("expires_at %q: %v", out.ExpiresAt, err)
		}
	}
	return out.Token, resp.StatusCode
}

// claimsOf reads a JWT's claims without checking it: the server under test does that.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDemoMode(t *testing.T) {
	base := testServer(t, nil) // the shipped config.yaml: demo mode on

	first, status := demoToken(t, base, "qinghe-bank", "", nil)
	if status != 200 {
		t.Fatalf("demo token: status %d", status)
	}
	c := claimsOf(t, first)
	user, _ := c["sub"].(string)
	if c["tid"] != "qinghe-bank" || !strings.HasPrefix(user, "demo-") {
		t.Fatalf("claims %v: want tid qinghe-bank and an anonymous demo- user", c)
	}
	if life := c["exp"].(float64) - c["iat"].(float64); life != 1800 {
		t.Errorf("token life %vs, want demo.token_ttl 30m", life)
	}

	// The token chats like any other.
	bank := client{t: t, base: base, token: first}
	var reply struct {
		SessionID string `json:"session_id"`
		Source    string `json:"source"`
	}
	if res := bank.do("POST", "/v1/chat", map[string]string{"message": "借记卡丢了怎么挂失?"}, &reply); res.StatusCode != 200 || reply.Source != "faq" {
		t.Fatalf("chat with a demo token: %d, source %q", res.StatusCode, reply.Source)
	}

	// Renewed, it is the same user: the history is still theirs.
	renewed, _ := demoToken(t, base, "qinghe-bank", first, nil)
	if got := claimsOf(t, renewed)["sub"]; got != user {
		t.Fatalf("renewed token's user %v, want %s", got, user)
	}
	var hist struct {
		Messages []struct{ Role, Content string } `json:"messages"`
	}
	if res := (client{t: t, base: base, token: renewed}).do("GET", "/v1/sessions/"+reply.SessionID+"/messages", nil, &hist); res.StatusCode != 200 || len(hist.Messages) != 2 {
		t.Fatalf("history with the renewed token: %d, %d messages; want 200 and 2", res.StatusCode, len(hist.Messages))
	}
	// Another visitor, and the same visitor at the other tenant, cannot read it.
	other, _ := demoToken(t, base, "qinghe-bank", "", nil)
	shop, _ := demoToken(t, base, "northwind-shop", first, nil)
	if claimsOf(t, shop)["sub"] == user {
		t.Errorf("a bank demo token renewed a shop user")
	}
	for name, tok := range map[string]string{"another visitor": other, "the shop": shop} {
		if res := (client{t: t, base: base, token: tok}).do("GET", "/v1/sessions/"+reply.SessionID+"/messages", nil, nil); res.StatusCode != 404 {
			t.Errorf("%s reads the session: %d, want 404", name, res.StatusCode)
		}
	}
	// A real user's token is never renewed by the demo endpoint.
	realUser := tokenFor(t, base, bankAPIKey, "u1")
	if tok, _ := demoToken(t, base, "qinghe-bank", realUser, nil); claimsOf(t, tok)["sub"] == "u1" {
		t.Errorf("the demo endpoint renewed a real user's token")
	}

	// Pages of the demo tenants' allowed origins may ask; others may not.
	if _, status := demoToken(t, base, "qinghe-bank", "", map[string]string{"Origin": "http://localhost:8000"}); status != 200 {
		t.Errorf("from an allowed origin: %d", status)
	}
	if _, status := demoToken(t, base, "qinghe-bank", "", map[string]string{"Origin": "https://evil.example"}); status != 403 {
		t.Errorf("from another origin: %d, want 403", status)
	}
	if _, status := demoToken(t, base, "no-such-tenant", "", nil); status != 404 {
		t.Errorf("unknown tenant: %d, want 404", status)
	}

	// The page: the chooser, and each tenant's chat framed only by its own origins.
	res, err := http.Get(base + "/?tenant=qinghe-bank")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `data-tenant="qinghe-bank"`) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'self' http://localhost:8000 http://127.0.0.1:8000") {
		t.Errorf("bank page: CSP %q, body %s", res.Header.Get("Content-Security-Policy"), body)
	}
}

func TestDemoModeOff(t *testing.T) {
	base := testServer(t, map[string]string{"FENGDA_DEMO_ENABLED": "false"})
	if _, status := demoToken(t, base, "qinghe-bank", "", nil); status != 404 {
		t.Errorf("POST /v1/demo/token with demo mode off: %d, want 404", status)
	}
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || strings.Contains(string(body), "?tenant=") {
		t.Errorf("GET / with demo mode off: %d, and it offers tenants: %s", res.StatusCode, body)
	}
	if res, err := http.Get(base + "/widget.js"); err != nil || res.StatusCode != 200 {
		t.Errorf("GET /widget.js with demo mode off: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}

// BenchmarkChatTurn is one whole JSON chat turn through the running program (built-in
// FAQ engine, JWT, rate limit, access log at info) over keep-alive HTTP, in
// conversations of ten turns as the faq bench scenario sends them: here to profile
// (-cpuprofile, -memprofile) and to hold an allocation budget (-benchmem). The
// client's cost is in the figures too.
func BenchmarkChatTurn(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) { benchChatTurn(b, nil) })
	b.Run("store=redis", func(b *testing.B) {
		requireRedis(b)
		benchChatTurn(b, redisEnv(b))
	})
}

// BenchmarkChatTurnModel is BenchmarkChatTurn with the model engine
// (examples/openai.yaml) in front of a stand-in that answers at once, and the Redis
// store: the llm bench scenario's turn.
func BenchmarkChatTurnModel(b *testing.B) {
	requireRedis(b)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"您好,信用卡挂失请拨打客服热线或在手机银行办理。"},"finish_reason":"stop"}]}`)
	}))
	b.Cleanup(model.Close)
	env := redisEnv(b)
	env["FENGDA_LLM_BASE_URL"] = model.URL + "/v1"
	env["FENGDA_LLM_MODEL"] = "bench-model"
	env["FENGDA_LLM_API_KEY"] = "sk-bench"
	benchChatTurnWith(b, "examples/openai.yaml", env)
}

func benchChatTurn(b *testing.B, env map[string]string) {
	benchChatTurnWith(b, "config.yaml", env)
}

func benchChatTurnWith(b *testing.B, config string, env map[string]string) {
	// The config, with the bank's rate limit out of the way (still checked).
	raw, err := os.ReadFile(config)
	if err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(b.TempDir(), "config.yaml")
	raw = bytes.ReplaceAll(raw, []byte("rate_limit: {rps: 20, burst: 40}"), []byte("rate_limit: {rps: 10000000, burst: 10000000}"))
	raw = bytes.ReplaceAll(raw, []byte("max_concurrent: 16 "), []byte("max_concurrent: 1000 "))
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	all := map[string]string{"FENGDA_QUEUE_MODE": "off", "FENGDA_LOG_LEVEL": "info"}
	for k, v := range env {
		all[k] = v
	}
	p := startProgram(b, all, []string{"-config", cfgPath}, nil)
	cfg, _, err := loadConfig(cfgPath, func(k string) string { return all[k] })
	if err != nil {
		b.Fatal(err)
	}
	reg, err := tenant.NewRegistry(cfg.Tenants, func(k string) string { return all[k] })
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := reg.Mint("qinghe-bank", "bench-user", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	questions := []string{"信用卡丢了怎么办?", "手机银行一天能转多少钱", "给他行转账要手续费吗", "怎么买你们的理财", "忘记登录密码了怎么办"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var session string
		for n := 0; pb.Next(); n++ {
			if n%10 == 0 {
				session = ""
			}
			body := `{"message":"` + questions[n%len(questions)] + `"`
			if session != "" {
				body += `,"session_id":"` + session + `"`
			}
			body += "}"
			req, _ := http.NewRequest("POST", p.base+"/v1/chat", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d: %s", resp.StatusCode, reply)
			}
			if session == "" {
				_, rest, _ := bytes.Cut(reply, []byte(`"session_id":"`))
				id, _, _ := bytes.Cut(rest, []byte(`"`))
				session = string(id)
			}
		}
	})
}
