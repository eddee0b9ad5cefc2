package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fengda-ai/fengda/tenant"
)

// The customer API takes user tokens only: an agent's or an administrator's token is
// refused with 403 forbidden, before the engine sees anything.
func TestUserRoutesRequireUserRole(t *testing.T) {
	routes := []request{
		{method: "POST", path: "/v1/chat", body: `{"message":"hi","session_id":"sess-0001"}`},
		{method: "GET", path: "/v1/turns/turn-0001"},
		{method: "GET", path: "/v1/sessions/sess-0001/messages"},
		{method: "DELETE", path: "/v1/sessions/sess-0001"},
	}
	for _, route := range routes {
		for _, token := range []string{tokenAcmeAgent, "minted-agent.acme.agent-2", "minted-admin.acme.ops-1"} {
			t.Run(route.method+" "+route.path+" "+token, func(t *testing.T) {
				d := &fakeDialogue{}
				s, _ := newTestServer(t, testConfig(), d, nil)
				req := route
				req.header = bearer(token)
				w := do(t, s.Handler(), req)
				if w.Code != http.StatusForbidden {
					t.Fatalf("status = %d, want 403; body %s", w.Code, w.Body)
				}
				var got map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatalf("body %s: %v", w.Body, err)
				}
				want := map[string]any{"error": map[string]any{
					"code":       "forbidden",
					"message":    "This credential may not call this route.",
					"request_id": w.Header().Get("X-Request-ID"),
				}}
				if diff := cmp.Diff(got, want); diff != "" {
					t.Errorf("error body (-got +want):\n%s", diff)
				}
				if n := len(d.recorded()); n != 0 {
					t.Errorf("the engine got %d turns, want 0", n)
				}
			})
		}
	}

	// Users get through: a token without a role claim and one minted as a user.
	for _, token := range []string{tokenAcme, "minted.acme.u9"} {
		s, _ := newTestServer(t, testConfig(), nil, nil)
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(token), body: `{"message":"hi"}`})
		if w.Code != http.StatusOK {
			t.Errorf("user token %s on /v1/chat: %d %s, want 200", token, w.Code, w.Body)
		}
	}
}

func TestRequireRole(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tests := []struct {
		name      string
		principal *tenant.Principal // nil: none in the context
		role      string
		want      int
	}{
		{"user on a user route", &tenant.Principal{Tenant: "acme", User: "u1", Role: tenant.RoleUser}, tenant.RoleUser, 204},
		{"no role is a user", &tenant.Principal{Tenant: "acme", User: "u1"}, tenant.RoleUser, 204},
		{"no role on an agent route", &tenant.Principal{Tenant: "acme", User: "u1"}, tenant.RoleAgent, 403},
		{"agent on an agent route", &tenant.Principal{Tenant: "acme", User: "a1", Role: tenant.RoleAgent}, tenant.RoleAgent, 204},
		{"agent on a user route", &tenant.Principal{Tenant: "acme", User: "a1", Role: tenant.RoleAgent}, tenant.RoleUser, 403},
		{"admin on an agent route", &tenant.Principal{Tenant: "acme", User: "x", Role: tenant.RoleAdmin}, tenant.RoleAgent, 403},
		{"no principal", nil, tenant.RoleUser, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x", nil)
			if tt.principal != nil {
				r = r.WithContext(tenant.NewContext(r.Context(), *tt.principal))
			}
			w := httptest.NewRecorder()
			s.requireRole(tt.role)(ok).ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("status = %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
		})
	}
}

func TestTokenCreateRole(t *testing.T) {
	key := map[string]string{"X-API-Key": keyAcme}
	tests := []struct {
		name     string
		body     string
		wantRole string
		wantName string
	}{
		{"role absent", `{"user_id":"u1"}`, tenant.RoleUser, ""},
		{"user", `{"user_id":"u1","role":"user"}`, tenant.RoleUser, ""},
		{"agent with a name", `{"user_id":"agent-7","role":"agent","name":"李伟 Li Wei"}`, tenant.RoleAgent, "李伟 Li Wei"},
		{"agent without a name", `{"user_id":"agent-7","role":"agent"}`, tenant.RoleAgent, ""},
		{"admin", `{"user_id":"ops-1","role":"admin","name":"Ops"}`, tenant.RoleAdmin, "Ops"},
		{"null role", `{"user_id":"u1","role":null}`, tenant.RoleUser, ""},
		{"name of 64 runes", `{"user_id":"a","role":"agent","name":"` + strings.Repeat("名", 64) + `"}`, tenant.RoleAgent, strings.Repeat("名", 64)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, tenants := newTestServer(t, testConfig(), nil, nil)
			w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: key, body: tt.body})
			if w.Code != http.StatusCreated {
				t.Fatalf("status = %d, want 201; body %s", w.Code, w.Body)
			}
			var got tokenJSON
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Role != tt.wantRole {
				t.Errorf("role = %q, want %q", got.Role, tt.wantRole)
			}
			if len(tenants.minted) != 1 {
				t.Fatalf("minted %d tokens, want 1", len(tenants.minted))
			}
			if c := tenants.minted[0]; c.role != tt.wantRole || c.name != tt.wantName || c.tenant != "acme" {
				t.Errorf("minted %+v, want role %q name %q of acme", c, tt.wantRole, tt.wantName)
			}
			// The token is of the role asked for: an agent's may not chat.
			chat := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(got.Token), body: `{"message":"hi"}`})
			if wantChat := map[bool]int{true: 200, false: 403}[tt.wantRole == tenant.RoleUser]; chat.Code != wantChat {
				t.Errorf("chat with the token: %d, want %d", chat.Code, wantChat)
			}
		})
	}

	refused := []struct {
		name        string
		body        string
		wantMessage string // "": any
	}{
		{"unknown role", `{"user_id":"u1","role":"root"}`, `Field "role" must be "user", "agent" or "admin".`},
		{"empty role", `{"user_id":"u1","role":""}`, `Field "role" must be "user", "agent" or "admin".`},
		{"role in capitals", `{"user_id":"u1","role":"Agent"}`, `Field "role" must be "user", "agent" or "admin".`},
		{"role as a number", `{"user_id":"u1","role":1}`, `Field "role" has the wrong type.`},
		{"empty name", `{"user_id":"u1","role":"agent","name":""}`, "name must not be empty."},
		{"blank name", `{"user_id":"u1","role":"agent","name":"  "}`, "name must not be empty."},
		{"name with a newline", `{"user_id":"u1","role":"agent","name":"Li\nWei"}`, "name must not contain control characters."},
		{"name of 65 runes", `{"user_id":"u1","role":"agent","name":"` + strings.Repeat("名", 65) + `"}`, "name must be at most 64 characters."},
		{"name as a number", `{"user_id":"u1","role":"agent","name":7}`, `Field "name" has the wrong type.`},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			s, tenants := newTestServer(t, testConfig(), nil, nil)
			w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: key, body: tt.body})
			e := errorOf(t, w.Body.Bytes())
			if w.Code != http.StatusBadRequest || e.Code != "invalid_request" {
				t.Fatalf("%d %s, want 400 invalid_request", w.Code, e.Code)
			}
			if tt.wantMessage != "" && e.Message != tt.wantMessage {
				t.Errorf("message = %q, want %q", e.Message, tt.wantMessage)
			}
			if n := len(tenants.minted); n != 0 {
				t.Errorf("minted %d tokens, want 0", n)
			}
		})
	}
}

// A role or name the registry refuses is the caller's mistake: 400, not 500.
func TestTokenCreateInvalidClaim(t *testing.T) {
	s, tenants := newTestServer(t, testConfig(), nil, nil)
	tenants.mintErr = tenant.ErrInvalidClaim
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: map[string]string{"X-API-Key": keyAcme}, body: `{"user_id":"u1","role":"agent"}`})
	if e := errorOf(t, w.Body.Bytes()); w.Code != 400 || e.Code != "invalid_request" {
		t.Errorf("%d %s, want 400 invalid_request", w.Code, e.Code)
	}
}

func TestDemoAgentToken(t *testing.T) {
	s, fake := newTestServer(t, demoConfig(), nil, nil)
	post := func(body, auth string) (tokenJSON, int, errorDetail) {
		t.Helper()
		header := jsonHeader()
		if auth != "" {
			header["Authorization"] = "Bearer " + auth
		}
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/demo/token", body: body, header: header})
		var tok tokenJSON
		var e errorDetail
		if w.Code == 200 {
			if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil {
				t.Fatalf("reply %s: %v", w.Body, err)
			}
		} else {
			e = errorOf(t, w.Body.Bytes())
		}
		return tok, w.Code, e
	}
	userOf := func(token string) string {
		parts := strings.SplitN(token, ".", 3) // minted[-role].<tenant>.<user>
		return parts[len(parts)-1]
	}
	lastMint := func() mintCall {
		fake.mu.Lock()
		defer fake.mu.Unlock()
		return fake.minted[len(fake.minted)-1]
	}

	agent, code, _ := post(`{"tenant":"bank","role":"agent"}`, "")
	if code != 200 || !strings.HasPrefix(agent.Token, "minted-agent.bank."+demoAgentPrefix) || agent.Role != tenant.RoleAgent {
		t.Fatalf("agent token: %d %+v", code, agent)
	}
	if got := strings.TrimPrefix(userOf(agent.Token), demoAgentPrefix); len(got) != 20 {
		t.Errorf("agent user %q: want %s and 20 random characters", userOf(agent.Token), demoAgentPrefix)
	}
	if c := lastMint(); c.role != tenant.RoleAgent || c.name != "Demo agent" || c.ttl != 30*time.Minute {
		t.Errorf("minted %+v, want an agent named Demo agent for 30m", c)
	}
	other, _, _ := post(`{"tenant":"bank","role":"agent"}`, "")
	if userOf(other.Token) == userOf(agent.Token) {
		t.Errorf("two demo agents got the same user %s", userOf(agent.Token))
	}

	// Renewal keeps the agent; a user's token does not make an agent of that user, nor
	// an agent's token a user of that agent.
	renewed, code, _ := post(`{"tenant":"bank","role":"agent"}`, agent.Token)
	if code != 200 || userOf(renewed.Token) != userOf(agent.Token) || renewed.Role != tenant.RoleAgent {
		t.Errorf("agent renewal: %d %+v, want agent %s", code, renewed, userOf(agent.Token))
	}
	user, code, _ := post(`{"tenant":"bank"}`, "")
	if code != 200 || !strings.HasPrefix(user.Token, "minted.bank.demo-") || strings.HasPrefix(userOf(user.Token), demoAgentPrefix) || user.Role != tenant.RoleUser {
		t.Fatalf("user token: %d %+v", code, user)
	}
	if c := lastMint(); c.role != tenant.RoleUser || c.name != "" {
		t.Errorf("minted %+v, want a user without a name", c)
	}
	if got, _, _ := post(`{"tenant":"bank","role":"agent"}`, user.Token); userOf(got.Token) == userOf(user.Token) || !strings.HasPrefix(userOf(got.Token), demoAgentPrefix) {
		t.Errorf("agent token renewed with a user's: user %q, want a new demo agent", userOf(got.Token))
	}
	if got, _, _ := post(`{"tenant":"bank"}`, agent.Token); userOf(got.Token) == userOf(agent.Token) || got.Role != tenant.RoleUser {
		t.Errorf("user token renewed with an agent's: %+v, want a new user", got)
	}
	if got, _, _ := post(`{"tenant":"bank","role":"user"}`, user.Token); userOf(got.Token) != userOf(user.Token) {
		t.Errorf("user renewal with role user: user %q, want %q", userOf(got.Token), userOf(user.Token))
	}

	// The demo agent may not chat as a customer.
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(agent.Token), body: `{"message":"hi"}`})
	if e := errorOf(t, w.Body.Bytes()); w.Code != 403 || e.Code != "forbidden" {
		t.Errorf("demo agent on /v1/chat: %d %s, want 403 forbidden", w.Code, e.Code)
	}

	const roles = `Field "role" must be "user", "agent" or "admin".`
	for name, tt := range map[string]struct{ body, message string }{
		"unknown role":     {`{"tenant":"bank","role":"boss"}`, roles},
		"empty role":       {`{"tenant":"bank","role":""}`, roles},
		"role in capitals": {`{"tenant":"bank","role":"Admin"}`, roles},
		"role a number":    {`{"tenant":"bank","role":2}`, ""},
		"a name":           {`{"tenant":"bank","role":"agent","name":"Mallory"}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(fake.minted)
			_, code, e := post(tt.body, "")
			if code != 400 || e.Code != "invalid_request" {
				t.Errorf("%d %s, want 400 invalid_request", code, e.Code)
			}
			if tt.message != "" && e.Message != tt.message {
				t.Errorf("message %q, want %q", e.Message, tt.message)
			}
			if len(fake.minted) != before {
				t.Error("a token was minted")
			}
		})
	}
}
