package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

func TestDemoAdminToken(t *testing.T) {
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
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
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

	admin, code, _ := post(`{"tenant":"bank","role":"admin"}`, "")
	if code != 200 || !strings.HasPrefix(admin.Token, "minted-admin.bank."+demoAdminPrefix) || admin.Role != tenant.RoleAdmin {
		t.Fatalf("admin token: %d %+v", code, admin)
	}
	if got := strings.TrimPrefix(userOf(admin.Token), "demo-admin-"); len(got) != 20 || strings.Contains(got, "-") {
		t.Errorf("admin user %q: want demo-admin- and 20 random letters and digits", userOf(admin.Token))
	}
	if c := lastMint(); c.tenant != "bank" || c.role != tenant.RoleAdmin || c.name != "Demo admin" || c.ttl != 30*time.Minute {
		t.Errorf("minted %+v, want an admin of bank named Demo admin for 30m", c)
	}
	if exp, err := time.Parse(time.RFC3339, admin.ExpiresAt); err != nil || time.Until(exp) < 29*time.Minute || time.Until(exp) > 31*time.Minute {
		t.Errorf("expires_at = %q (%v), want 30 minutes ahead", admin.ExpiresAt, err)
	}
	other, _, _ := post(`{"tenant":"bank","role":"admin"}`, "")
	if userOf(other.Token) == userOf(admin.Token) {
		t.Errorf("two demo admins got the same user %s", userOf(admin.Token))
	}

	// Renewal keeps the admin, of the same tenant only. No other role's token renews as
	// an admin, and an admin's token renews as no other role.
	renewed, code, _ := post(`{"tenant":"bank","role":"admin"}`, admin.Token)
	if code != 200 || userOf(renewed.Token) != userOf(admin.Token) || renewed.Role != tenant.RoleAdmin {
		t.Errorf("admin renewal: %d %+v, want admin %s", code, renewed, userOf(admin.Token))
	}
	if got, _, _ := post(`{"tenant":"acme","role":"admin"}`, admin.Token); userOf(got.Token) == userOf(admin.Token) || !strings.HasPrefix(got.Token, "minted-admin.acme.demo-admin-") {
		t.Errorf("bank's admin renewed for acme: %+v, want a new admin of acme", got)
	}
	user, _, _ := post(`{"tenant":"bank"}`, "")
	agent, _, _ := post(`{"tenant":"bank","role":"agent"}`, "")
	for name, tok := range map[string]string{"a user's": user.Token, "an agent's": agent.Token} {
		if got, _, _ := post(`{"tenant":"bank","role":"admin"}`, tok); userOf(got.Token) == userOf(tok) || !strings.HasPrefix(userOf(got.Token), demoAdminPrefix) {
			t.Errorf("admin token renewed with %s token: user %q, want a new demo admin", name, userOf(got.Token))
		}
	}
	for _, role := range []string{"user", "agent"} {
		got, code, _ := post(`{"tenant":"bank","role":"`+role+`"}`, admin.Token)
		if code != 200 || userOf(got.Token) == userOf(admin.Token) || strings.HasPrefix(userOf(got.Token), demoAdminPrefix) || got.Role != role {
			t.Errorf("%s token renewed with an admin's: %d %+v, want a new %s", role, code, got, role)
		}
	}

	// The demo admin may not chat as a customer.
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(admin.Token), body: `{"message":"hi"}`})
	if e := errorOf(t, w.Body.Bytes()); w.Code != 403 || e.Code != "forbidden" {
		t.Errorf("demo admin on /v1/chat: %d %s, want 403 forbidden", w.Code, e.Code)
	}

	if _, code, e := post(`{"tenant":"nope","role":"admin"}`, ""); code != 404 || e.Code != "not_found" {
		t.Errorf("admin of a tenant not on the demo page: %d %s, want 404 not_found", code, e.Code)
	}

	t.Run("demo mode off", func(t *testing.T) {
		off, fake := newTestServer(t, testConfig(), nil, nil)
		w := do(t, off.Handler(), request{method: "POST", path: "/v1/demo/token", body: `{"tenant":"bank","role":"admin"}`, header: jsonHeader()})
		if e := errorOf(t, w.Body.Bytes()); w.Code != 404 || e.Code != "not_found" || len(fake.minted) != 0 {
			t.Errorf("demo mode off: %d %s, %d minted; want 404 not_found and none", w.Code, e.Code, len(fake.minted))
		}
	})
}
