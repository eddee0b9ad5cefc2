package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/fengda-ai/fengda/tenant"
)

// webFS holds the web assets: the pages (templates: the demo page, the agents' and the
// admin console), the embeddable widget and the pages' static files. Nothing is fetched from
// elsewhere at run time.
//
//go:embed web
var webFS embed.FS

// demoTokenPath is where the demo page's widget gets its tokens.
const demoTokenPath = "/v1/demo/token"

// assetMaxAge is how long browsers and proxies may reuse an asset without asking again.
// /widget.js has no version in its URL (tenants embed it as is), so it stays short.
const assetMaxAge = "public, max-age=300"

// asset is one static file, ready to serve.
type asset struct {
	body        []byte
	gzipped     []byte // nil when gzip does not make it smaller
	etag        string
	contentType string
}

func newAsset(name string, body []byte) *asset {
	sum := sha256.Sum256(body)
	a := &asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentTypeOf(name)}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	if buf.Len() < len(body) {
		a.gzipped = buf.Bytes()
	}
	return a
}

func contentTypeOf(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".ico":
		return "image/x-icon"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// pageTenant is a demo tenant as the demo page shows it.
type pageTenant struct {
	ID       string
	Name     string
	Lang     string // zh-CN | en
	Greeting string
}

// pageData is what web/index.html is rendered with.
type pageData struct {
	Tenants  []pageTenant // the demo tenants; empty when demo mode is off
	Selected *pageTenant  // the tenant chosen with ?tenant=<id>; nil shows the chooser
	TokenURL string
}

// page is a rendered demo page with its security policy.
type page struct {
	html *asset
	csp  string
}

// web is the server's web side: the rendered pages (one per demo tenant, and the
// chooser), the static assets by URL path, and every tenant's allowed origins.
type web struct {
	chooser  page
	byTenant map[string]page
	agent    *asset            // the agents' console
	admin    *asset            // the admin console
	demoIDs  []string          // the demo tenants, in page order
	assets   map[string]*asset // "/widget.js", "/static/demo.css", …
	demo     map[tenant.ID]*tenant.Tenant
	origins  map[tenant.ID]*tenant.Tenant // tenants that allow some cross-origin page
	anyAllow map[string]bool              // origins some tenant allows
	anyStar  bool                         // some tenant allows every origin
}

// newWeb renders the pages and loads the assets. demo lists the demo tenants in page
// order (nil when demo mode is off); all is every tenant.
func newWeb(demo, all []*tenant.Tenant) (*web, error) {
	w := &web{
		byTenant: make(map[string]page, len(demo)),
		assets:   make(map[string]*asset),
		demo:     make(map[tenant.ID]*tenant.Tenant, len(demo)),
		origins:  make(map[tenant.ID]*tenant.Tenant),
		anyAllow: make(map[string]bool),
	}
	for _, t := range all {
		if len(t.AllowedOrigins) > 0 {
			w.origins[t.ID] = t
		}
		for _, o := range t.AllowedOrigins {
			if o == tenant.AnyOrigin {
				w.anyStar = true
			}
			w.anyAllow[o] = true
		}
	}

	src, err := fs.ReadFile(webFS, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("web page: %w", err)
	}
	tmpl, err := template.New("index.html").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("web page: %w", err)
	}
	data := pageData{TokenURL: demoTokenPath}
	for _, t := range demo {
		w.demo[t.ID] = t
		w.demoIDs = append(w.demoIDs, string(t.ID))
		data.Tenants = append(data.Tenants, pageTenant{ID: string(t.ID), Name: t.Name, Lang: t.Widget.Lang, Greeting: t.Widget.Greeting})
	}
	render := func(d pageData, frameAncestors []string) (page, error) {
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, d); err != nil {
			return page{}, fmt.Errorf("web page: %w", err)
		}
		return page{html: newAsset("index.html", buf.Bytes()), csp: pagePolicy(frameAncestors)}, nil
	}
	if w.chooser, err = render(data, nil); err != nil {
		return nil, err
	}
	for i := range data.Tenants {
		d := data
		d.Selected = &data.Tenants[i]
		if w.byTenant[d.Selected.ID], err = render(d, demo[i].AllowedOrigins); err != nil {
			return nil, err
		}
	}

	err = fs.WalkDir(webFS, "web", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || path.Ext(name) == ".html" { // the pages are templates
			return err
		}
		body, err := fs.ReadFile(webFS, name)
		if err != nil {
			return err
		}
		w.assets[strings.TrimPrefix(name, "web")] = newAsset(name, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web assets: %w", err)
	}
	if w.assets["/widget.js"] == nil {
		return nil, fmt.Errorf("web assets: widget.js is missing")
	}
	// The agents' console offers demo agents of the demo tenants whose handoff is on.
	var staffed []*tenant.Tenant
	for _, t := range demo {
		if !t.Handoff.Disabled {
			staffed = append(staffed, t)
		}
	}
	if w.agent, err = newConsolePage("agent", staffed, w.assets); err != nil {
		return nil, err
	}
	if w.admin, err = newConsolePage("admin", demo, w.assets); err != nil {
		return nil, err
	}
	return w, nil
}

// DemoTenants returns the ids of the demo page's tenants, in page order; none when demo
// mode is off.
func (s *Server) DemoTenants() []string { return slices.Clone(s.web.demoIDs) }

// pagePolicy is the demo page's Content Security Policy: scripts, styles and API calls
// from this server only, nothing inline, and framing by this server's pages and the
// tenant's allowed origins only.
func pagePolicy(frameAncestors []string) string {
	fa := "'self'"
	for _, o := range frameAncestors {
		if o == tenant.AnyOrigin {
			fa = "*"
			break
		}
		fa += " " + o
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors " + fa
}

// handleIndex serves GET /: in demo mode, the chooser of demo tenants, or with
// ?tenant=<id> that tenant's chat page; otherwise a page saying where the API is.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	p, status := s.web.chooser, http.StatusOK
	if id := r.URL.Query().Get("tenant"); id != "" {
		var ok bool
		if p, ok = s.web.byTenant[id]; !ok {
			p, status = s.web.chooser, http.StatusNotFound
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-cache")
	serveAsset(w, r, p.html, status)
}

// handleAsset serves GET /widget.js and GET /static/{name}. The widget is loaded by
// other sites' pages, so any origin may fetch it.
func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) {
	a := s.web.assets[r.URL.Path]
	if a == nil {
		s.writeError(w, r, errRouteNotFound)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", assetMaxAge)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Content-Security-Policy", "default-src 'none'")
	serveAsset(w, r, a, http.StatusOK)
}

// serveAsset writes a with status, gzipped when the client takes it, or 304 when the
// client holds the same version.
func serveAsset(w http.ResponseWriter, r *http.Request, a *asset, status int) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", a.etag)
	h.Add("Vary", "Accept-Encoding")
	if status == http.StatusOK && etagMatches(r.Header.Get("If-None-Match"), a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gzipped != nil && acceptsGzip(r) {
		body = a.gzipped
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// etagMatches reports whether an If-None-Match header lists etag (or is "*").
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == etag || part == "*" {
			return true
		}
	}
	return false
}

// acceptsGzip reports whether the Accept-Encoding header takes gzip (and does not
// refuse it with q=0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q, ok := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
			weight, err := strconv.ParseFloat(q, 64)
			return !ok || err != nil || weight > 0
		}
	}
	return false
}
