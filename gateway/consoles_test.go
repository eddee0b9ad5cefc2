package gateway

import (
	"compress/gzip"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	localRef        = regexp.MustCompile(`(?:src|href)="(/[^"]*)"`)
	demoTenantsAttr = regexp.MustCompile(`data-demo-tenants="([^"]*)"`)
	inlineCode      = regexp.MustCompile(`(?i)<style|\sstyle=|\son[a-z]+=|javascript:|<script(?:\s+type="[^"]*")?\s*>`)
)

// checkConsolePage checks what both consoles' pages (/agent, /admin) promise: their
// policy and headers, ETag, 304 and HEAD, gzip, nothing inline, and their files served,
// each at the version the page names. It returns the page.
func checkConsolePage(t *testing.T, s *Server, name string) string {
	t.Helper()
	h := s.Handler()
	w := do(t, h, request{method: "GET", path: "/" + name})
	if w.Code != http.StatusOK {
		t.Fatalf("GET /%s: status %d", name, w.Code)
	}
	page := w.Body.String()
	t.Run("headers", func(t *testing.T) {
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
				"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
			"Content-Type":               "text/html; charset=utf-8",
			"Referrer-Policy":            "same-origin",
			"Cross-Origin-Opener-Policy": "same-origin",
			"Cache-Control":              "no-cache",
			"X-Content-Type-Options":     "nosniff",
			"X-Frame-Options":            "DENY",
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
		for _, other := range []string{"/agent", "/admin"} {
			if other != "/"+name && etag == do(t, h, request{method: "GET", path: other}).Header().Get("ETag") {
				t.Errorf("/%s has the ETag of %s", name, other)
			}
		}
		nm := do(t, h, request{method: "GET", path: "/" + name, header: map[string]string{"If-None-Match": etag}})
		if nm.Code != http.StatusNotModified || nm.Body.Len() != 0 {
			t.Errorf("If-None-Match: status %d with %d bytes, want 304 and none", nm.Code, nm.Body.Len())
		}
		head := do(t, h, request{method: "HEAD", path: "/" + name})
		if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != etag {
			t.Errorf("HEAD: status %d, %d bytes, ETag %q; want 200, none, %q", head.Code, head.Body.Len(), head.Header().Get("ETag"), etag)
		}
	})

	t.Run("gzip", func(t *testing.T) {
		z := do(t, h, request{method: "GET", path: "/" + name, header: map[string]string{"Accept-Encoding": "gzip"}})
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
		for _, want := range []string{"/static/" + name + ".js", "/static/" + name + ".css", "/static/favicon.svg"} {
			if !slices.ContainsFunc(refs, func(r string) bool { return strings.Split(r, "?")[0] == want }) {
				t.Errorf("the page does not reference %s (it references %v)", want, refs)
			}
		}
		for _, ref := range refs {
			path, version, _ := strings.Cut(ref, "?v=")
			a := do(t, h, request{method: "GET", path: ref, header: map[string]string{"Accept-Encoding": "gzip"}})
			if a.Code != http.StatusOK {
				t.Errorf("GET %s: status %d", ref, a.Code)
				continue
			}
			if version != "" && `"`+version+`"` != a.Header().Get("ETag") {
				t.Errorf("%s: version %q, but the file's ETag is %s", path, version, a.Header().Get("ETag"))
			}
			if strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".css") {
				if got := a.Header().Get("Content-Encoding"); got != "gzip" {
					t.Errorf("%s: Content-Encoding %q, want gzip", path, got)
				}
			}
		}
		if s.web.assets["/"+name+".html"] != nil || s.web.assets["/index.html"] != nil {
			t.Error("a page template is served as a static file")
		}
	})

	return page
}
