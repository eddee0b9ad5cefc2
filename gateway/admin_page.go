package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/fengda-ai/fengda/tenant"
)

// adminPolicy is the admin console's Content Security Policy, the agents' console's:
// its script, style and API calls from this server only, nothing inline, no framing. An
// export is offered as a blob: URL through <a download>, which is a download, not a
// fetch or a navigation the policy governs, so it needs nothing more.
const adminPolicy = agentPolicy

// adminPageData is what web/admin.html is rendered with.
type adminPageData struct {
	// Demo is the JSON list of the demo tenants; "" when demo mode is off.
	Demo     string
	TokenURL string
	// Script and Style are the URLs of the console's files, with their version, so
	// that a new binary's page never runs an old cached script.
	Script, Style string
}

// newAdminPage renders the admin console from web/admin.html. demo lists the demo
// tenants (nil when demo mode is off), one "Demo admin" button each; assets holds the
// loaded static files.
func newAdminPage(demo []*tenant.Tenant, assets map[string]*asset) (*asset, error) {
	src, err := fs.ReadFile(webFS, "web/admin.html")
	if err != nil {
		return nil, fmt.Errorf("admin page: %w", err)
	}
	tmpl, err := template.New("admin.html").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("admin page: %w", err)
	}
	versioned := func(p string) (string, error) {
		a := assets[p]
		if a == nil {
			return "", fmt.Errorf("admin page: %s is missing", p)
		}
		return p + "?v=" + strings.Trim(a.etag, `"`), nil
	}
	data := adminPageData{TokenURL: demoTokenPath}
	if data.Script, err = versioned("/static/admin.js"); err != nil {
		return nil, err
	}
	if data.Style, err = versioned("/static/admin.css"); err != nil {
		return nil, err
	}
	if len(demo) > 0 {
		ts := make([]agentDemoTenant, 0, len(demo))
		for _, t := range demo {
			ts = append(ts, agentDemoTenant{ID: string(t.ID), Name: t.Name, Lang: t.Widget.Lang})
		}
		b, err := json.Marshal(ts)
		if err != nil {
			return nil, fmt.Errorf("admin page: %w", err)
		}
		data.Demo = string(b)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("admin page: %w", err)
	}
	return newAsset("admin.html", buf.Bytes()), nil
}

// handleAdminPage serves GET /admin: the admin console, where a tenant's admins edit
// its knowledge base. The page signs in with an admin's token (in demo mode, with a
// demo admin's) and does everything else through the knowledge base's admin API.
func (s *Server) handleAdminPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", adminPolicy)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	serveAsset(w, r, s.web.admin, http.StatusOK)
}
