package gateway

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/ratelimit"
)

// pageOnlyDesk is a Handoff for tests of the console's page, which calls none of its
// methods: the routes exist, and any call would panic.
type pageOnlyDesk struct{ Handoff }

// newConsoleServer is a test server with the handoff's routes on.
func newConsoleServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	deps := testDeps(t, &fakeDialogue{}, &fakeTenants{}, ratelimit.Config{}, nil, nil)
	deps.Handoff = pageOnlyDesk{}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestAgentConsole(t *testing.T) {
	s := newConsoleServer(t, demoConfig())
	page := checkConsolePage(t, s, "agent")

	t.Run("the script builds DOM nodes and documents its hooks", func(t *testing.T) {
		js := s.web.assets["/static/agent.js"]
		if js == nil || js.contentType != "text/javascript; charset=utf-8" {
			t.Fatalf("/static/agent.js: %+v", js)
		}
		src := string(js.body)
		for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(src, banned) {
				t.Errorf("agent.js uses %s: not Trusted-Types-safe", banned)
			}
		}
		doc, code, _ := strings.Cut(src, "*/")
		for _, hook := range []string{"#fd-agent-signin", "data-demo-tenant", ".fd-signout", ".fd-queue", ".fd-conv", "data-session-id",
			"data-status", ".fd-claim", ".fd-log", ".fd-msg", "data-turn-id", ".fd-input", ".fd-send", ".fd-count",
			".fd-resolution", ".fd-close-conv", ".fd-notice", "data-error"} {
			if !strings.Contains(doc, hook) || !strings.Contains(code, strings.TrimLeft(hook, "#.")) {
				t.Errorf("hook %s: documented %v, in the code %v", hook, strings.Contains(doc, hook), strings.Contains(code, strings.TrimLeft(hook, "#.")))
			}
		}
		for _, role := range []string{"user", "assistant", "agent"} {
			if !strings.Contains(doc, ".fd-msg-"+role) {
				t.Errorf("hook .fd-msg-%s is not documented", role)
			}
		}
	})

	t.Run("demo agents in demo mode", func(t *testing.T) {
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

	t.Run("no demo agents without demo mode", func(t *testing.T) {
		off := do(t, newConsoleServer(t, testConfig()).Handler(), request{method: "GET", path: "/agent"})
		if off.Code != http.StatusOK || bytes.Contains(off.Body.Bytes(), []byte("data-demo-tenants")) {
			t.Errorf("demo mode off: status %d, body %s; want 200 and no demo tenants", off.Code, off.Body)
		}
	})

	t.Run("absent without the handoff", func(t *testing.T) {
		noDesk, _ := newTestServer(t, demoConfig(), nil, nil)
		for _, method := range []string{"GET", "HEAD"} {
			w := do(t, noDesk.Handler(), request{method: method, path: "/agent"})
			if w.Code != http.StatusNotFound {
				t.Errorf("%s /agent without the handoff: status %d, want 404", method, w.Code)
			}
		}
	})
}
