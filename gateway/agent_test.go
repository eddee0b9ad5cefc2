package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"regexp"
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

var (
	localRef        = regexp.MustCompile(`(?:src|href)="(/[^"]*)"`)
	demoTenantsAttr = regexp.MustCompile(`data-demo-tenants="([^"]*)"`)
	inlineCode      = regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=|javascript:|<script(?:\s+type="[^"]*")?\s*>`)
)

func TestAgentConsole(t *testing.T) {
	s := newConsoleServer(t, demoConfig())
	h := s.Handler()

	w := do(t, h, request{method: "GET", path: "/agent"})
	if w.Code != http.StatusOK {
		t.Fatalf("GET /agent: status %d", w.Code)
	}
	page := w.Body.String()
	t.Run("headers", func(t *testing.T) {
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
				"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
			"Content-Type":           "text/html; charset=utf-8",
			"Referrer-Policy":        "same-origin",
			"Cache-Control":          "no-cache",
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
		} {
			if got := w.Header().Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})

	t.Run("ETag, 304 and HEAD", func(t *testing.T) {
		etag := w.Header().Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		nm := do(t, h, request{method: "GET", path: "/agent", header: map[string]string{"If-None-Match": etag}})
		if nm.Code != http.StatusNotModified || nm.Body.Len() != 0 {
			t.Errorf("If-None-Match: status %d with %d bytes, want 304 and none", nm.Code, nm.Body.Len())
		}
		head := do(t, h, request{method: "HEAD", path: "/agent"})
		if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != etag {
			t.Errorf("HEAD: status %d, %d bytes, ETag %q; want 200, none, %q", head.Code, head.Body.Len(), head.Header().Get("ETag"), etag)
		}
	})

	t.Run("gzip", func(t *testing.T) {
		z := do(t, h, request{method: "GET", path: "/agent", header: map[string]string{"Accept-Encoding": "gzip"}})
		if got := z.Header().Get("Content-Encoding"); got != "gzip" {
			t.Fatalf("Content-Encoding = %q, want gzip", got)
		}
		zr, err := gzip.NewReader(z.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(zr); err != nil || string(got) != page {
			t.Errorf("gzipped page differs from the plain one (err %v)", err)
		}
	})

	t.Run("nothing inline", func(t *testing.T) {
		if m := inlineCode.FindString(page); m != "" {
			t.Errorf("the page holds inline code or style (%q):\n%s", m, page)
		}
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
			if !strings.Contains(tag, ` src="/`) {
				t.Errorf("script %s does not load a file of this server", tag)
			}
		}
	})

	t.Run("its files", func(t *testing.T) {
		var refs []string
		for _, m := range localRef.FindAllStringSubmatch(page, -1) {
			refs = append(refs, m[1])
		}
		for _, want := range []string{"/static/agent.js", "/static/agent.css", "/static/favicon.svg"} {
			if !slices.ContainsFunc(refs, func(r string) bool { return strings.Split(r, "?")[0] == want }) {
				t.Errorf("the page does not reference %s (it references %v)", want, refs)
			}
		}
		for _, ref := range refs {
			path, version, _ := strings.Cut(ref, "?v=")
			a := do(t, h, request{method: "GET", path: ref})
			if a.Code != http.StatusOK {
				t.Errorf("GET %s: status %d", ref, a.Code)
				continue
			}
			if version != "" && `"`+version+`"` != a.Header().Get("ETag") {
				t.Errorf("%s: version %q, but the file's ETag is %s", path, version, a.Header().Get("ETag"))
			}
		}
		if s.web.assets["/agent.html"] != nil || s.web.assets["/index.html"] != nil {
			t.Error("a page template is served as a static file")
		}
	})

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
