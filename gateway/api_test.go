package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

func TestChatCreate(t *testing.T) {
	d := &fakeDialogue{}
	s, _ := newTestServer(t, testConfig(), d, nil)
	w := do(t, s.Handler(), request{
		method: "POST", path: "/v1/chat", header: bearer(tokenAcme),
		body: `{"message":"When are you open?","session_id":"sess-0001","client_msg_id":"m-1"}`,
	})
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("status = %d, want %d; body %s", got, want, w.Body)
	}
	if got, want := w.Header().Get("Content-Type"), "application/json; charset=utf-8"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"session_id":  "sess-0001",
		"turn_id":     "turn-0001",
		"answer":      "Opening hours are 9 to 5.",
		"source":      "faq",
		"confidence":  0.92,
		"citations":   []any{map[string]any{"id": "faq-7", "question": "When are you open?"}},
		"suggestions": []any{},
		"latency_ms":  1.5,
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("reply (-got +want):\n%s", diff)
	}
	wantTurn := dialogue.Turn{Tenant: "acme", User: "u1", SessionID: "sess-0001", Message: "When are you open?", ClientMsgID: "m-1",
		RequestID: w.Header().Get("X-Request-ID")}
	if diff := cmp.Diff(d.lastTurn(), wantTurn); diff != "" {
		t.Errorf("turn (-got +want):\n%s", diff)
	}
}

func TestChatCreateAccepts(t *testing.T) {
	tests := []struct {
		name string
		body string
		want dialogue.Turn
	}{
		{"new session", `{"message":"hi"}`, dialogue.Turn{Message: "hi"}},
		{"null session", `{"message":"hi","session_id":null}`, dialogue.Turn{Message: "hi"}},
		{"newlines and tabs", `{"message":"line 1\n\tline 2\r\n"}`, dialogue.Turn{Message: "line 1\n\tline 2\r\n"}},
		{"2000 runes", `{"message":"` + strings.Repeat("中", 2000) + `"}`, dialogue.Turn{Message: strings.Repeat("中", 2000)}},
		{"chinese", `{"message":"营业时间是几点?"}`, dialogue.Turn{Message: "营业时间是几点?"}},
		{"trailing whitespace", "{\"message\":\"hi\"}\n\n", dialogue.Turn{Message: "hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDialogue{}
			s, _ := newTestServer(t, testConfig(), d, nil)
			w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: tt.body})
			if got, want := w.Code, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d; body %s", got, want, w.Body)
			}
			tt.want.Tenant, tt.want.User, tt.want.RequestID = "acme", "u1", w.Header().Get("X-Request-ID")
			if diff := cmp.Diff(d.lastTurn(), tt.want); diff != "" {
				t.Errorf("turn (-got +want):\n%s", diff)
			}
		})
	}
}

func TestChatCreateErrors(t *testing.T) {
	blockUntilDone := func(ctx context.Context, _ dialogue.Turn) (dialogue.Reply, error) {
		<-ctx.Done()
		return dialogue.Reply{}, fmt.Errorf("wait for worker: %w", ctx.Err())
	}
	fail := func(err error) func(context.Context, dialogue.Turn) (dialogue.Reply, error) {
		return func(context.Context, dialogue.Turn) (dialogue.Reply, error) { return dialogue.Reply{}, err }
	}
	tests := []struct {
		name       string
		header     map[string]string
		body       string
		submit     func(context.Context, dialogue.Turn) (dialogue.Reply, error)
		wantStatus int
		wantCode   string
		wantRetry  string
	}{
		{name: "malformed json", body: `{"message":`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "trailing garbage", body: `{"message":"hi"} {}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "wrong type", body: `{"message":42}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "array body", body: `[{"message":"hi"}]`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "null body", body: `null`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "empty body", body: ``, wantStatus: 400, wantCode: "invalid_request"},
		{name: "missing message", body: `{"session_id":"sess-0001"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "empty message", body: `{"message":""}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "blank message", body: `{"message":" \n\t 　"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "over-long message", body: `{"message":"` + strings.Repeat("中", 2001) + `"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "NUL in message", body: `{"message":"hi\u0000there"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "escape in message", body: `{"message":"hi\u001b[31m"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "C1 control in message", body: `{"message":"hi\u0085"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "invalid utf-8", body: "{\"message\":\"hi\xff\xfe\"}", wantStatus: 400, wantCode: "invalid_request"},
		{name: "bad session id", body: `{"message":"hi","session_id":"../../etc"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "short session id", body: `{"message":"hi","session_id":"abc"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "empty session id", body: `{"message":"hi","session_id":""}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "session id with brace", body: `{"message":"hi","session_id":"{abc}:12345"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "long client msg id", body: `{"message":"hi","client_msg_id":"` + strings.Repeat("x", 65) + `"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "non-ascii client msg id", body: `{"message":"hi","client_msg_id":"中"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "20 KiB body", body: `{"message":"` + strings.Repeat("a", 20<<10) + `"}`, wantStatus: 413, wantCode: "too_large"},
		{name: "missing token", header: map[string]string{}, body: `{"message":"hi"}`, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "forged token", header: bearer("forged.jwt.token"), body: `{"message":"hi"}`, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "basic auth", header: map[string]string{"Authorization": "Basic dTpw"}, body: `{"message":"hi"}`, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}, body: `{"message":"hi"}`, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "oversized authorization", header: bearer(strings.Repeat(".", 5000)), body: `{"message":"hi"}`, wantStatus: 401, wantCode: "unauthenticated"},
		// Only the token says who is asking: naming a tenant or user in the body is refused.
		{name: "tenant in body", body: `{"message":"hi","tenant":"bank","user":"u2"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown field", body: `{"message":"hi","sesion_id":"sess-0001"}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "unknown nested field name", body: `{"message":"hi","a\u0000b":1}`, wantStatus: 400, wantCode: "invalid_request"},
		{name: "form content type", header: withHeader(bearer(tokenAcme), "Content-Type", "application/x-www-form-urlencoded"), body: `{"message":"hi"}`, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "text content type", header: withHeader(bearer(tokenAcme), "Content-Type", "text/plain"), body: `{"message":"hi"}`, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "json in another charset", header: withHeader(bearer(tokenAcme), "Content-Type", "application/json; charset=gbk"), body: `{"message":"hi"}`, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "malformed content type", header: withHeader(bearer(tokenAcme), "Content-Type", "application/json; ;;"), body: `{"message":"hi"}`, wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "1 MiB bearer token", header: bearer(strings.Repeat("A", 1<<20)), body: `{"message":"hi"}`, wantStatus: 401, wantCode: "unauthenticated"},
		{name: "overloaded", body: `{"message":"hi"}`, submit: fail(dialogue.ErrOverloaded), wantStatus: 503, wantCode: "overloaded", wantRetry: "1"},
		{name: "queue full", body: `{"message":"hi"}`, submit: fail(dialogue.ErrQueueFull), wantStatus: 429, wantCode: "queue_full", wantRetry: "5"},
		{name: "unavailable", body: `{"message":"hi"}`, submit: fail(fmt.Errorf("load: %w", dialogue.ErrUnavailable)), wantStatus: 503, wantCode: "unavailable", wantRetry: "5"},
		{name: "draining", body: `{"message":"hi"}`, submit: fail(dialogue.ErrDraining), wantStatus: 503, wantCode: "unavailable", wantRetry: "5"},
		{name: "not found", body: `{"message":"hi","session_id":"sess-9999"}`, submit: fail(dialogue.ErrNotFound), wantStatus: 404, wantCode: "not_found"},
		{name: "engine refuses turn", body: `{"message":"hi"}`, submit: fail(dialogue.ErrInvalid), wantStatus: 400, wantCode: "invalid_request"},
		{name: "deadline", body: `{"message":"hi"}`, submit: blockUntilDone, wantStatus: 504, wantCode: "timeout"},
		{name: "internal", body: `{"message":"hi"}`, submit: fail(errors.New("redis: connection pool exhausted at 10.0.0.7")), wantStatus: 500, wantCode: "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &fakeDialogue{submit: tt.submit}
			s, _ := newTestServer(t, testConfig(func(c *Config) { c.RequestTimeout = 20 * time.Millisecond }), d, nil)
			header := tt.header
			if header == nil {
				header = bearer(tokenAcme)
			}
			w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: header, body: tt.body})
			if got := w.Code; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got, tt.wantStatus, w.Body)
			}
			e := errorOf(t, w.Body.Bytes())
			if got := e.Code; got != tt.wantCode {
				t.Errorf("code = %q, want %q", got, tt.wantCode)
			}
			if got, want := e.RequestID, w.Header().Get("X-Request-ID"); got != want || got == "" {
				t.Errorf("request_id = %q, want %q (the X-Request-ID header)", got, want)
			}
			if got := w.Header().Get("Retry-After"); got != tt.wantRetry {
				t.Errorf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if strings.Contains(e.Message, "10.0.0.7") || strings.Contains(e.Message, "redis") {
				t.Errorf("message %q shows internals", e.Message)
			}
			if tt.submit == nil && len(d.recorded()) != 0 {
				t.Errorf("a refused request reached the engine: %+v", d.recorded())
			}
		})
	}
}

// recorded returns the turns the fake engine was given.
func (f *fakeDialogue) recorded() []dialogue.Turn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dialogue.Turn(nil), f.turns...)
}

// withHeader returns h with one more header.
func withHeader(h map[string]string, k, v string) map[string]string {
	h[k] = v
	return h
}

func TestChatCreateAcceptsJSONContentTypes(t *testing.T) {
	for _, ct := range []string{"", "application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
		d := &fakeDialogue{}
		s, _ := newTestServer(t, testConfig(), d, nil)
		header := bearer(tokenAcme)
		if ct != "" {
			header["Content-Type"] = ct
		}
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: header, body: `{"message":"hi"}`})
		if w.Code != http.StatusOK {
			t.Errorf("Content-Type %q: status %d, want 200; body %s", ct, w.Code, w.Body)
		}
	}
}

func TestChatCreateContentLengthOverLimit(t *testing.T) {
	d := &fakeDialogue{}
	s, _ := newTestServer(t, testConfig(), d, nil)
	r := request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"` + strings.Repeat("a", 17<<10) + `"}`}
	w := do(t, s.Handler(), r)
	if got, want := w.Code, http.StatusRequestEntityTooLarge; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got := len(d.turns); got != 0 {
		t.Errorf("engine got %d turns, want 0", got)
	}
}

func TestSessionMessages(t *testing.T) {
	at := time.Date(2025, 3, 1, 9, 30, 0, 123_000_000, time.FixedZone("CST", 8*3600))
	owned := func(_ context.Context, ref dialogue.Ref) ([]dialogue.HistoryTurn, error) {
		if ref.Tenant != "acme" || ref.User != "u1" || ref.Session != "sess-0001" {
			return nil, dialogue.ErrNotFound
		}
		return []dialogue.HistoryTurn{
			{ID: "t1", User: "hello", Answer: "Hi, how can I help?", At: at, AnsweredAt: at.Add(250 * time.Millisecond)},
			{ID: "t2", User: "hours?", Answer: "9 to 5.", At: at.Add(time.Minute), AnsweredAt: at.Add(time.Minute + time.Second)},
		}, nil
	}
	tests := []struct {
		name       string
		path       string
		token      string
		history    func(context.Context, dialogue.Ref) ([]dialogue.HistoryTurn, error)
		wantStatus int
		wantBody   string
	}{
		{
			name: "own session", path: "/v1/sessions/sess-0001/messages", token: tokenAcme, history: owned, wantStatus: 200,
			wantBody: `{"session_id":"sess-0001","messages":[` +
				`{"role":"user","content":"hello","turn_id":"t1","at":"2025-03-01T01:30:00.123Z"},` +
				`{"role":"assistant","content":"Hi, how can I help?","turn_id":"t1","at":"2025-03-01T01:30:00.373Z"},` +
				`{"role":"user","content":"hours?","turn_id":"t2","at":"2025-03-01T01:31:00.123Z"},` +
				`{"role":"assistant","content":"9 to 5.","turn_id":"t2","at":"2025-03-01T01:31:01.123Z"}]}`,
		},
		{
			name: "empty session", path: "/v1/sessions/sess-0002/messages", token: tokenAcme, wantStatus: 200,
			history:  func(context.Context, dialogue.Ref) ([]dialogue.HistoryTurn, error) { return nil, nil },
			wantBody: `{"session_id":"sess-0002","messages":[]}`,
		},
		{name: "another tenant's session", path: "/v1/sessions/sess-0001/messages", token: tokenBank, history: owned, wantStatus: 404},
		{name: "unknown session", path: "/v1/sessions/sess-4242/messages", token: tokenAcme, history: owned, wantStatus: 404},
		{name: "malformed id", path: "/v1/sessions/a%7Bb%7D/messages", token: tokenAcme, history: owned, wantStatus: 400},
		{name: "short id", path: "/v1/sessions/abc/messages", token: tokenAcme, history: owned, wantStatus: 400},
		{name: "no token", path: "/v1/sessions/sess-0001/messages", history: owned, wantStatus: 401},
		{
			name: "store down", path: "/v1/sessions/sess-0001/messages", token: tokenAcme, wantStatus: 503,
			history: func(context.Context, dialogue.Ref) ([]dialogue.HistoryTurn, error) {
				return nil, dialogue.ErrUnavailable
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, testConfig(), &fakeDialogue{history: tt.history}, nil)
			var header map[string]string
			if tt.token != "" {
				header = bearer(tt.token)
			}
			w := do(t, s.Handler(), request{method: "GET", path: tt.path, header: header})
			if got := w.Code; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got, tt.wantStatus, w.Body)
			}
			if tt.wantBody != "" {
				if got := strings.TrimSpace(w.Body.String()); got != tt.wantBody {
					t.Errorf("body =\n%s\nwant\n%s", got, tt.wantBody)
				}
			}
		})
	}
}

func TestSessionDelete(t *testing.T) {
	del := func(_ context.Context, ref dialogue.Ref) error {
		if ref != (dialogue.Ref{Tenant: "acme", Session: "sess-0001", User: "u1"}) {
			return dialogue.ErrNotFound
		}
		return nil
	}
	tests := []struct {
		name       string
		path       string
		token      string
		wantStatus int
	}{
		{"own session", "/v1/sessions/sess-0001", tokenAcme, 204},
		{"another tenant's session", "/v1/sessions/sess-0001", tokenBank, 404},
		{"unknown session", "/v1/sessions/sess-0002", tokenAcme, 404},
		{"malformed id", "/v1/sessions/bad:id", tokenAcme, 400},
		{"forged token", "/v1/sessions/sess-0001", "forged", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, testConfig(), &fakeDialogue{del: del}, nil)
			w := do(t, s.Handler(), request{method: "DELETE", path: tt.path, header: bearer(tt.token)})
			if got := w.Code; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got, tt.wantStatus, w.Body)
			}
			if tt.wantStatus == 204 && w.Body.Len() != 0 {
				t.Errorf("204 with body %q", w.Body)
			}
		})
	}
}

func TestTokenCreate(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	key := map[string]string{"X-API-Key": keyAcme}
	tests := []struct {
		name       string
		header     map[string]string
		body       string
		wantStatus int
		wantTTL    time.Duration
		wantBody   string
	}{
		{name: "default ttl", header: key, body: `{"user_id":"u1"}`, wantStatus: 201, wantTTL: time.Hour,
			wantBody: `{"token":"minted.acme.u1","expires_at":"2025-03-01T13:00:00Z","role":"user"}`},
		{name: "explicit ttl", header: key, body: `{"user_id":"用户-7","ttl_seconds":60}`, wantStatus: 201, wantTTL: time.Minute},
		{name: "max ttl", header: key, body: `{"user_id":"u1","ttl_seconds":86400}`, wantStatus: 201, wantTTL: 24 * time.Hour},
		{name: "ttl over max", header: key, body: `{"user_id":"u1","ttl_seconds":86401}`, wantStatus: 400},
		{name: "zero ttl", header: key, body: `{"user_id":"u1","ttl_seconds":0}`, wantStatus: 400},
		{name: "negative ttl", header: key, body: `{"user_id":"u1","ttl_seconds":-5}`, wantStatus: 400},
		{name: "fractional ttl", header: key, body: `{"user_id":"u1","ttl_seconds":1.5}`, wantStatus: 400},
		{name: "huge ttl", header: key, body: `{"user_id":"u1","ttl_seconds":99999999999999999999}`, wantStatus: 400},
		{name: "missing user", header: key, body: `{"ttl_seconds":60}`, wantStatus: 400},
		{name: "empty user", header: key, body: `{"user_id":""}`, wantStatus: 400},
		{name: "long user", header: key, body: `{"user_id":"` + strings.Repeat("u", 129) + `"}`, wantStatus: 400},
		{name: "user with newline", header: key, body: `{"user_id":"u1\nadmin"}`, wantStatus: 400},
		{name: "malformed", header: key, body: `{"user_id":`, wantStatus: 400},
		{name: "missing key", body: `{"user_id":"u1"}`, wantStatus: 401},
		{name: "unknown key", header: map[string]string{"X-API-Key": "guess"}, body: `{"user_id":"u1"}`, wantStatus: 401},
		{name: "bearer is not a key", header: bearer(tokenAcme), body: `{"user_id":"u1"}`, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tenants := newTestServer(t, testConfig(), nil, nil)
			s.now = func() time.Time { return now }
			w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: tt.header, body: tt.body})
			if got := w.Code; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got, tt.wantStatus, w.Body)
			}
			if tt.wantStatus != 201 {
				if got := len(tenants.minted); got != 0 {
					t.Errorf("minted %d tokens, want 0", got)
				}
				return
			}
			if got := tenants.minted[0].ttl; got != tt.wantTTL {
				t.Errorf("ttl = %v, want %v", got, tt.wantTTL)
			}
			if got := tenants.minted[0].tenant; got != "acme" {
				t.Errorf("tenant = %q, want acme", got)
			}
			if got, want := w.Header().Get("Cache-Control"), "no-store"; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
			if tt.wantBody != "" {
				if got := strings.TrimSpace(w.Body.String()); got != tt.wantBody {
					t.Errorf("body = %s, want %s", got, tt.wantBody)
				}
			}
		})
	}
}

func TestTokenCreateMintFailure(t *testing.T) {
	s, tenants := newTestServer(t, testConfig(), nil, nil)
	tenants.mintErr = errors.New("no signing key")
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: map[string]string{"X-API-Key": keyAcme}, body: `{"user_id":"u1"}`})
	if got, want := w.Code, 500; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got := errorOf(t, w.Body.Bytes()).Message; strings.Contains(got, "signing") {
		t.Errorf("message %q shows internals", got)
	}

	// A tenant whose tokens come from its identity provider: the request cannot work.
	tenants.mintErr = fmt.Errorf("mint for acme: %w", tenant.ErrNoSigningKey)
	w = do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: map[string]string{"X-API-Key": keyAcme}, body: `{"user_id":"u1"}`})
	if got := errorOf(t, w.Body.Bytes()); w.Code != 400 || got.Code != "invalid_request" {
		t.Errorf("no signing key: %d %q, want 400 invalid_request", w.Code, got.Code)
	}
}

func TestOperationalRoutes(t *testing.T) {
	notReady := func(context.Context) error { return errors.New("redis: dial tcp: refused") }
	tests := []struct {
		name        string
		method      string
		path        string
		ready       func(context.Context) error
		draining    bool
		wantStatus  int
		wantBody    string // exact JSON, or a substring for non-JSON
		wantContent string
	}{
		{name: "healthz", method: "GET", path: "/healthz", wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "healthz while draining", method: "GET", path: "/healthz", draining: true, wantStatus: 200, wantBody: `{"status":"ok"}`},
		{name: "readyz", method: "GET", path: "/readyz", wantStatus: 200, wantBody: `{"status":"ready"}`},
		{name: "readyz store down", method: "GET", path: "/readyz", ready: notReady, wantStatus: 503, wantBody: `{"status":"unavailable"}`},
		{name: "readyz draining", method: "GET", path: "/readyz", draining: true, wantStatus: 503, wantBody: `{"status":"unavailable"}`},
		{name: "index", method: "GET", path: "/", wantStatus: 200, wantBody: "<html", wantContent: "text/html; charset=utf-8"},
		{name: "metrics", method: "GET", path: "/metrics", wantStatus: 200, wantBody: "# TYPE go_goroutines gauge"},
		{name: "unknown route", method: "GET", path: "/v2/chat", wantStatus: 404, wantBody: `"code":"not_found"`},
		{name: "wrong method", method: "GET", path: "/v1/chat", wantStatus: 405, wantBody: `"code":"method_not_allowed"`},
		{name: "wrong method on tokens", method: "DELETE", path: "/v1/tokens", wantStatus: 405, wantBody: `"code":"method_not_allowed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, testConfig(), &fakeDialogue{ready: tt.ready}, nil)
			s.draining.Store(tt.draining)
			w := do(t, s.Handler(), request{method: tt.method, path: tt.path})
			if got := w.Code; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", got, tt.wantStatus, w.Body)
			}
			if got := w.Body.String(); !strings.Contains(got, tt.wantBody) {
				t.Errorf("body = %s, want it to hold %s", got, tt.wantBody)
			}
			if tt.wantContent != "" {
				if got := w.Header().Get("Content-Type"); got != tt.wantContent {
					t.Errorf("Content-Type = %q, want %q", got, tt.wantContent)
				}
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	tests := []struct {
		name     string
		incoming string
		wantSame bool
	}{
		{"none", "", false},
		{"sane", "req-123_ABC", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"65 chars", strings.Repeat("a", 65), false},
		{"injection", "abc\"}{", false},
		{"spaces", "a b", false},
	}
	s, _ := newTestServer(t, testConfig(), nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, s.Handler(), request{method: "GET", path: "/nope", header: map[string]string{"X-Request-ID": tt.incoming}})
			got := w.Header().Get("X-Request-ID")
			if (got == tt.incoming) != tt.wantSame {
				t.Errorf("X-Request-ID = %q for incoming %q, want same = %v", got, tt.incoming, tt.wantSame)
			}
			if !validRequestID(got) {
				t.Errorf("X-Request-ID = %q is not a sane id", got)
			}
			if body := errorOf(t, w.Body.Bytes()); body.RequestID != got {
				t.Errorf("body request_id = %q, want %q", body.RequestID, got)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	chat := func(token string) (int, string) {
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(token), body: `{"message":"hi"}`})
		return w.Code, w.Header().Get("Retry-After")
	}
	// slow: 1 request per second, burst 2.
	for i := range 2 {
		if got, _ := chat(tokenSlow); got != 200 {
			t.Fatalf("request %d: status = %d, want 200", i, got)
		}
	}
	got, retry := chat(tokenSlow)
	if got != http.StatusTooManyRequests {
		t.Fatalf("over burst: status = %d, want 429", got)
	}
	if retry != "1" {
		t.Errorf("Retry-After = %q, want 1", retry)
	}
	// Another tenant is not affected.
	if got, _ := chat(tokenAcme); got != 200 {
		t.Errorf("other tenant: status = %d, want 200", got)
	}
	now = now.Add(1100 * time.Millisecond)
	if got, _ := chat(tokenSlow); got != 200 {
		t.Errorf("after 1.1s: status = %d, want 200", got)
	}
	if got, _ := chat(tokenSlow); got != 429 {
		t.Errorf("right after: status = %d, want 429", got)
	}
	w := do(t, s.Handler(), request{method: "GET", path: "/metrics"})
	if want := `fengda_rate_limited_total{tenant="slow"} 2`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("metrics lack %s", want)
	}
}

func TestRateLimitTokens(t *testing.T) {
	s, err := New(testConfig(), testDeps(t, &fakeDialogue{}, &acmeLimited{limit: tenant.RateLimit{RPS: 0.5, Burst: 1}}, ratelimit.Config{}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	statuses := make([]int, 0, 2)
	for range 2 {
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: map[string]string{"X-API-Key": keyAcme}, body: `{"user_id":"u1"}`})
		statuses = append(statuses, w.Code)
		if w.Code == 429 {
			if got := w.Header().Get("Retry-After"); got != "2" {
				t.Errorf("Retry-After = %q, want 2", got)
			}
		}
	}
	if diff := cmp.Diff(statuses, []int{201, 429}); diff != "" {
		t.Errorf("statuses (-got +want):\n%s", diff)
	}
}

func TestRateLimitDisabled(t *testing.T) {
	s, err := New(testConfig(), Deps{Dialogue: &fakeDialogue{}, Tenants: &fakeTenants{}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenSlow), body: `{"message":"hi"}`})
		if w.Code != 200 {
			t.Fatalf("request %d: status = %d, want 200", i, w.Code)
		}
	}
}

func TestHeaderTooLarge(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	header := bearer(tokenAcme)
	header["X-Padding"] = strings.Repeat("p", 9<<10)
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: header, body: `{"message":"hi"}`})
	if got, want := w.Code, http.StatusRequestHeaderFieldsTooLarge; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got := errorOf(t, w.Body.Bytes()).Code; got != "too_large" {
		t.Errorf("code = %q, want too_large", got)
	}
}

func TestPanicIsInternal(t *testing.T) {
	d := &fakeDialogue{submit: func(context.Context, dialogue.Turn) (dialogue.Reply, error) { panic("nil map write") }}
	log, logs := observedLogger()
	s, _ := newTestServer(t, testConfig(), d, log)
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"hi"}`})
	if got, want := w.Code, 500; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got := errorOf(t, w.Body.Bytes()).Code; got != "internal" {
		t.Errorf("code = %q, want internal", got)
	}
	entries := logs.FilterMessage("panic").All()
	if len(entries) != 1 {
		t.Fatalf("%d panic log entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if got, want := fields["tenant"], "acme"; got != want {
		t.Errorf("tenant = %v, want %v", got, want)
	}
	if got := fields["stack"]; got == nil || !strings.Contains(got.(string), "handleChatCreate") {
		t.Errorf("stack = %v, want one through handleChatCreate", got)
	}
	if got := logs.FilterMessage("request").All(); len(got) != 1 || got[0].ContextMap()["status"] != int64(500) {
		t.Errorf("access log = %v, want one line with status 500", got)
	}
}

func TestUnknownTenantOfValidToken(t *testing.T) {
	s, err := New(testConfig(), testDeps(t, &fakeDialogue{}, &goneTenant{fakeTenants: &fakeTenants{}}, ratelimit.Config{}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"hi"}`})
	if got, want := w.Code, 401; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
}

// goneTenant verifies tokens of a tenant that is no longer configured.
type goneTenant struct{ *fakeTenants }

func (g *goneTenant) Get(id tenant.ID) (*tenant.Tenant, error) { return nil, tenant.ErrUnknown }
