package gateway

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// demoConfig is testConfig in demo mode, bank first on the page.
func demoConfig(fns ...func(*Config)) Config {
	return testConfig(append([]func(*Config){func(c *Config) {
		c.Demo.Enabled = true
		c.Demo.Tenants = []string{"bank", "acme"}
	}}, fns...)...)
}

func jsonHeader(extra ...string) map[string]string {
	h := map[string]string{"Content-Type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

func TestDemoPage(t *testing.T) {
	s, _ := newTestServer(t, demoConfig(), nil, nil)
	tests := []struct {
		name           string
		path           string
		wantStatus     int
		wantBody       []string
		frameAncestors string
	}{
		{name: "chooser", path: "/", wantStatus: 200, wantBody: []string{"/?tenant=bank", "/?tenant=acme", "Bank", "Acme"}, frameAncestors: "frame-ancestors 'self'"},
		{name: "bank", path: "/?tenant=bank", wantStatus: 200, wantBody: []string{`src="/widget.js"`, `data-tenant="bank"`, `data-token-url="/v1/demo/token"`}, frameAncestors: "frame-ancestors 'self' " + originBank},
		{name: "unknown tenant", path: "/?tenant=nope", wantStatus: 404, wantBody: []string{"/?tenant=bank"}, frameAncestors: "frame-ancestors 'self'"},
		{name: "not a demo tenant", path: "/?tenant=slow", wantStatus: 404, frameAncestors: "frame-ancestors 'self'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := do(t, s.Handler(), request{method: "GET", path: tt.path})
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", w.Code, tt.wantStatus)
			}
			body := w.Body.String()
			for _, want := range tt.wantBody {
				if !strings.Contains(body, want) {
					t.Errorf("page does not hold %s:\n%s", want, body)
				}
			}
			if strings.Contains(body, "?tenant=slow") {
				t.Errorf("page offers slow, which is not a demo tenant")
			}
			csp := w.Header().Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", tt.frameAncestors} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP %q allows inline code", csp)
			}
		})
	}
}

func TestIndexWithoutDemo(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	w := do(t, s.Handler(), request{method: "GET", path: "/"})
	if w.Code != 200 || strings.Contains(w.Body.String(), "?tenant=") {
		t.Fatalf("status %d, body %s: want 200 and no tenant chooser", w.Code, w.Body)
	}
	w = do(t, s.Handler(), request{method: "POST", path: "/v1/demo/token", body: `{"tenant":"bank"}`, header: jsonHeader()})
	if w.Code != 404 || errorOf(t, w.Body.Bytes()).Code != "not_found" {
		t.Fatalf("POST /v1/demo/token without demo mode: %d %s, want 404 not_found", w.Code, w.Body)
	}
}

func TestWidgetAsset(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	w := do(t, s.Handler(), request{method: "GET", path: "/widget.js"})
	if w.Code != 200 {
		t.Fatalf("status = %d", w.Code)
	}
	h := w.Header()
	for k, want := range map[string]string{
		"Content-Type":                 "text/javascript; charset=utf-8",
		"Access-Control-Allow-Origin":  "*",
		"Cross-Origin-Resource-Policy": "cross-origin",
		"X-Content-Type-Options":       "nosniff",
		"Cache-Control":                assetMaxAge,
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	plain := w.Body.String()
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}

	w = do(t, s.Handler(), request{method: "GET", path: "/widget.js", header: map[string]string{"If-None-Match": etag}})
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: status %d with %d bytes, want 304 and none", w.Code, w.Body.Len())
	}

	w = do(t, s.Handler(), request{method: "GET", path: "/widget.js", header: map[string]string{"Accept-Encoding": "br, gzip"}})
	if got := w.Header().Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding = %q, want gzip", got)
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || string(unzipped) != plain {
		t.Errorf("gzipped widget.js differs from the plain one (err %v)", err)
	}
	if w.Body.Len() >= len(plain) {
		t.Errorf("gzipped size %d, plain %d", w.Body.Len(), len(plain))
	}
	for ae, want := range map[string]string{"gzip;q=0": "", "gzip; q=0.000": "", "gzip;q=0.5": "gzip", "identity": ""} {
		w = do(t, s.Handler(), request{method: "GET", path: "/widget.js", header: map[string]string{"Accept-Encoding": ae}})
		if got := w.Header().Get("Content-Encoding"); got != want {
			t.Errorf("Accept-Encoding %q: Content-Encoding = %q, want %q", ae, got, want)
		}
	}

	for _, p := range []string{"/static/demo.css"} {
		if w := do(t, s.Handler(), request{method: "GET", path: p}); w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
			t.Errorf("GET %s: %d %q", p, w.Code, w.Header().Get("Content-Type"))
		}
	}
	for _, p := range []string{"/static/nope.js", "/static/..%2Findex.html", "/static/index.html", "/web/widget.js"} {
		if w := do(t, s.Handler(), request{method: "GET", path: p}); w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
}

func TestDemoToken(t *testing.T) {
	s, fake := newTestServer(t, demoConfig(), nil, nil)
	post := func(body string, header map[string]string) (tokenJSON, int, errorDetail) {
		t.Helper()
		if header == nil {
			header = jsonHeader()
		}
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/demo/token", body: body, header: header})
		var tok tokenJSON
		var e errorDetail
		if w.Code == 200 {
			if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil {
				t.Fatalf("reply %s: %v", w.Body, err)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		} else {
			e = errorOf(t, w.Body.Bytes())
		}
		return tok, w.Code, e
	}
	userOf := func(token string) string {
		parts := strings.SplitN(token, ".", 3) // minted.<tenant>.<user>
		return parts[2]
	}

	first, code, _ := post(`{"tenant":"bank"}`, nil)
	if code != 200 || !strings.HasPrefix(first.Token, "minted.bank.demo-") {
		t.Fatalf("first token: %d %+v", code, first)
	}
	exp, err := time.Parse(time.RFC3339, first.ExpiresAt)
	if err != nil || time.Until(exp) < 29*time.Minute || time.Until(exp) > 31*time.Minute {
		t.Errorf("expires_at = %q (%v), want 30 minutes ahead", first.ExpiresAt, err)
	}
	second, _, _ := post(`{"tenant":"bank"}`, nil)
	if userOf(second.Token) == userOf(first.Token) {
		t.Errorf("two visitors got the same user %s", userOf(first.Token))
	}

	// Renewal keeps the user; another tenant's token, a real user's or a forged one
	// gets a new anonymous user.
	renewed, code, _ := post(`{"tenant":"bank"}`, jsonHeader("Authorization", "Bearer "+first.Token))
	if code != 200 || userOf(renewed.Token) != userOf(first.Token) {
		t.Errorf("renewal: %d, user %s, want %s", code, userOf(renewed.Token), userOf(first.Token))
	}
	for name, auth := range map[string]string{
		"another tenant's demo user": "Bearer minted.acme." + userOf(first.Token),
		"a real user":                "Bearer " + tokenBank,
		"a forged token":             "Bearer not-a-token",
		"not bearer":                 "Basic abc",
	} {
		got, code, _ := post(`{"tenant":"bank"}`, jsonHeader("Authorization", auth))
		if code != 200 || userOf(got.Token) == userOf(first.Token) || userOf(got.Token) == "u2" || !strings.HasPrefix(userOf(got.Token), demoUserPrefix) {
			t.Errorf("%s: %d, user %q, want a new anonymous user", name, code, userOf(got.Token))
		}
	}
	for _, c := range fake.minted {
		if c.ttl != 30*time.Minute {
			t.Errorf("minted with ttl %v, want 30m", c.ttl)
		}
	}

	bad := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"unknown tenant", `{"tenant":"nope"}`, nil, 404, "not_found"},
		{"not a demo tenant", `{"tenant":"slow"}`, nil, 404, "not_found"},
		{"no tenant", `{}`, nil, 400, "invalid_request"},
		{"tenant not a string", `{"tenant":7}`, nil, 400, "invalid_request"},
		{"unknown field", `{"tenant":"bank","user_id":"admin"}`, nil, 400, "invalid_request"},
		{"not JSON", `tenant=bank`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"origin not allowed", `{"tenant":"bank"}`, jsonHeader("Origin", "https://evil.example"), 403, "origin_not_allowed"},
		{"origin of another tenant", `{"tenant":"acme"}`, jsonHeader("Origin", originBank), 403, "origin_not_allowed"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, code, e := post(tt.body, tt.header)
			if code != tt.wantStatus || e.Code != tt.wantCode {
				t.Errorf("%d %s, want %d %s", code, e.Code, tt.wantStatus, tt.wantCode)
			}
		})
	}
	if _, code, _ := post(`{"tenant":"bank"}`, jsonHeader("Origin", originBank)); code != 200 {
		t.Errorf("from the bank's own origin: %d, want 200", code)
	}
}

func TestDemoTenantsConfig(t *testing.T) {
	tests := []struct {
		name    string
		demo    DemoConfig
		wantErr string
	}{
		{"all that mint", DemoConfig{Enabled: true}, ""},
		{"unknown", DemoConfig{Enabled: true, Tenants: []string{"nope"}}, `demo.tenants[0]: no tenant "nope"`},
		{"cannot mint", DemoConfig{Enabled: true, Tenants: []string{"slow"}}, `demo.tenants[0]: tenant "slow" has no HS256 key`},
		{"twice", DemoConfig{Enabled: true, Tenants: []string{"bank", "bank"}}, `demo.tenants[1]: "bank" is listed twice`},
		{"ttl too long", DemoConfig{Enabled: true, TokenTTL: 48 * time.Hour}, "demo.token_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(testConfig(func(c *Config) { c.Demo = tt.demo }), Deps{Dialogue: &fakeDialogue{}, Tenants: &fakeTenants{}})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("New: %v, want an error holding %q", err, tt.wantErr)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	s, _ := newTestServer(t, demoConfig(), nil, nil)
	preflight := func(path, origin string) *http.Response {
		t.Helper()
		return do(t, s.Handler(), request{method: "OPTIONS", path: path, header: map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type",
		}}).Result()
	}

	for _, path := range []string{"/v1/chat", "/v1/demo/token", "/v1/sessions/abcdefgh/messages", "/v1/turns/t1"} {
		res := preflight(path, originBank)
		if res.StatusCode != 204 || res.Header.Get("Access-Control-Allow-Origin") != originBank {
			t.Errorf("preflight %s from the bank's origin: %d, ACAO %q", path, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
		for k, want := range map[string]string{
			"Access-Control-Allow-Methods": corsAllowMethods,
			"Access-Control-Allow-Headers": corsAllowHeaders,
			"Access-Control-Max-Age":       corsMaxAge,
		} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("preflight %s: %s = %q, want %q", path, k, got, want)
			}
		}
		if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("preflight allows credentials: %q", got)
		}
	}
	if res := preflight("/v1/chat", "https://evil.example"); res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from an unknown origin: %d, ACAO %q; want 403 and none", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
	// Server-to-server routes take no part in CORS.
	if res := preflight("/v1/tokens", originBank); res.StatusCode != 405 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of /v1/tokens: %d, ACAO %q; want 405 and none", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}

	chat := func(token, origin, host string) *http.Response {
		t.Helper()
		h := bearer(token)
		if origin != "" {
			h["Origin"] = origin
		}
		if host != "" {
			h["X-Forwarded-Host"] = host
		}
		return do(t, s.Handler(), request{method: "POST", path: "/v1/chat", body: `{"message":"hi"}`, header: h}).Result()
	}
	tests := []struct {
		name       string
		token      string
		origin     string
		fwdHost    string
		wantStatus int
		wantACAO   string
	}{
		{"no origin", tokenBank, "", "", 200, ""},
		{"allowed origin", tokenBank, originBank, "", 200, originBank},
		{"same origin", tokenAcme, "http://example.com", "", 200, ""},
		{"same origin behind a proxy", tokenAcme, "https://chat.example.org", "chat.example.org", 200, ""},
		{"origin another tenant allows", tokenAcme, originBank, "", 403, originBank},
		{"unknown origin", tokenBank, "https://evil.example", "", 403, ""},
		{"null origin", tokenBank, "null", "", 403, ""},
		{"lookalike origin", tokenBank, originBank + ".evil.example", "", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := chat(tt.token, tt.origin, tt.fwdHost)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tt.wantACAO {
				t.Errorf("ACAO = %q, want %q", got, tt.wantACAO)
			}
			if tt.wantACAO != "" && res.Header.Get("Access-Control-Expose-Headers") != corsExposeHeaders {
				t.Errorf("Expose-Headers = %q", res.Header.Get("Access-Control-Expose-Headers"))
			}
			if tt.wantStatus == 403 {
				var e errorBody
				_ = json.NewDecoder(res.Body).Decode(&e)
				if e.Error.Code != "origin_not_allowed" {
					t.Errorf("code = %q, want origin_not_allowed", e.Error.Code)
				}
			}
		})
	}

	// A page can read why it was refused: a 401 from an allowed origin carries ACAO.
	res := chat("bad-token", originBank, "")
	if res.StatusCode != 401 || res.Header.Get("Access-Control-Allow-Origin") != originBank {
		t.Errorf("401 from an allowed origin: %d, ACAO %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}
