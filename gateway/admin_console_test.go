package gateway

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

func TestAdminConsole(t *testing.T) {
	s, _ := newTestServer(t, demoConfig(), nil, nil) // no handoff: the console is there all the same
	page := checkConsolePage(t, s, "admin")

	t.Run("the script builds DOM nodes and documents its hooks", func(t *testing.T) {
		js := s.web.assets["/static/admin.js"]
		if js == nil || js.contentType != "text/javascript; charset=utf-8" {
			t.Fatalf("/static/admin.js: %+v", js)
		}
		src := string(js.body)
		for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "window.confirm", "confirm(\""} {
			if strings.Contains(src, banned) {
				t.Errorf("admin.js uses %s", banned)
			}
		}
		doc, code, _ := strings.Cut(src, "*/")
		for _, hook := range []string{"#fd-admin", "data-state", "data-tenant", "data-version", "#fd-admin-signin", "data-demo-tenant",
			".fd-token", ".fd-signin", ".fd-signout", ".fd-kb-version", ".fd-search", ".fd-count", ".fd-kb", ".fd-entry", "data-id",
			".fd-new", ".fd-edit", "data-mode", ".fd-id", ".fd-question", ".fd-alternates", ".fd-answer", ".fd-tags", ".fd-save",
			".fd-delete", ".fd-field-error", "data-field", ".fd-confirm", ".fd-confirm-yes", ".fd-confirm-no", ".fd-import",
			".fd-import-errors", ".fd-import-error", ".fd-line", ".fd-export", "data-format", ".fd-download", ".fd-versions",
			".fd-version", "data-current", ".fd-rollback", ".fd-notice", "data-error"} {
			bare := strings.TrimLeft(hook, "#.")
			inCode := strings.Contains(code, "'"+bare) || strings.Contains(code, " "+bare) || strings.Contains(code, "."+bare) ||
				strings.Contains(code, strings.TrimPrefix(bare, "data-"))
			if !strings.Contains(doc, hook) || !inCode {
				t.Errorf("hook %s: documented %v, in the code %v", hook, strings.Contains(doc, hook), inCode)
			}
		}
		for _, path := range []string{"'/v1/admin/kb'", "/entries/", "/import", "/export?format=", "/versions", "/rollback", "role: 'admin'"} {
			if !strings.Contains(code, path) {
				t.Errorf("admin.js does not call %s", path)
			}
		}
	})

	t.Run("the stylesheet", func(t *testing.T) {
		css := s.web.assets["/static/admin.css"]
		if css == nil || css.contentType != "text/css; charset=utf-8" || !bytes.Contains(css.body, []byte(".fd-kb")) {
			t.Fatalf("/static/admin.css: %+v", css)
		}
	})

	t.Run("demo admins in demo mode", func(t *testing.T) {
		m := demoTenantsAttr.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no data-demo-tenants in demo mode:\n%s", page)
		}
		var ts []struct{ ID, Name, Lang string }
		if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &ts); err != nil {
			t.Fatalf("data-demo-tenants %q: %v", m[1], err)
		}
		var ids []string
		for _, d := range ts {
			ids = append(ids, d.ID)
		}
		if !slices.Equal(ids, []string{"bank", "acme"}) || ts[0].Name != "Bank" || ts[0].Lang != "zh-CN" {
			t.Errorf("demo tenants %+v, want bank (Bank, zh-CN) then acme", ts)
		}
		if !strings.Contains(page, `data-token-url="/v1/demo/token"`) {
			t.Error("no data-token-url")
		}
	})

	t.Run("no demo admins without demo mode", func(t *testing.T) {
		off, _ := newTestServer(t, testConfig(), nil, nil)
		for _, method := range []string{"GET", "HEAD"} {
			w := do(t, off.Handler(), request{method: method, path: "/admin"})
			if w.Code != http.StatusOK || bytes.Contains(w.Body.Bytes(), []byte("data-demo-tenants")) {
				t.Errorf("%s /admin, demo mode off: status %d, body %s; want 200 and no demo tenants", method, w.Code, w.Body)
			}
		}
	})

	t.Run("with the handoff too", func(t *testing.T) {
		w := do(t, newConsoleServer(t, demoConfig()).Handler(), request{method: "GET", path: "/admin"})
		if w.Code != http.StatusOK || w.Body.String() != page {
			t.Errorf("GET /admin with the handoff: status %d, the same page %v", w.Code, w.Body.String() == page)
		}
	})
}

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
