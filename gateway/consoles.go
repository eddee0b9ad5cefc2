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

// consolePolicy is the consoles' Content Security Policy (the agents' at /agent, the
// admins' at /admin): script, style and API calls from this server only, nothing
// inline, and no framing at all (a page that acts for an agent or an admin must not be
// clickjacked). The admin console offers an export as a blob: URL through
// <a download>, a download the policy does not govern, so it needs nothing more.
const consolePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consoleDemoTenant is a demo tenant as a console's demo sign-in buttons show it.
type consoleDemoTenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Lang string `json:"lang"`
}

// consolePageData is what a console's page (web/agent.html, web/admin.html) is
// rendered with.
type consolePageData struct {
	// Demo is the JSON list of the demo tenants to sign in to; "" when there is none.
	Demo     string
	TokenURL string
	// Script and Style are the URLs of the console's files, with their version, so
	// that a new binary's page never runs an old cached script.
	Script, Style string
}

// newConsolePage renders the console called name from web/<name>.html, with its
// static/<name>.js and static/<name>.css and one demo sign-in button for each of demo
// (none when demo mode is off); assets holds the loaded static files.
func newConsolePage(name string, demo []*tenant.Tenant, assets map[string]*asset) (*asset, error) {
	src, err := fs.ReadFile(webFS, "web/"+name+".html")
	if err != nil {
		return nil, fmt.Errorf("%s page: %w", name, err)
	}
	tmpl, err := template.New(name + ".html").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("%s page: %w", name, err)
	}
	versioned := func(p string) (string, error) {
		a := assets[p]
		if a == nil {
			return "", fmt.Errorf("%s page: %s is missing", name, p)
		}
		return p + "?v=" + strings.Trim(a.etag, `"`), nil
	}
	data := consolePageData{TokenURL: demoTokenPath}
	if data.Script, err = versioned("/static/" + name + ".js"); err != nil {
		return nil, err
	}
	if data.Style, err = versioned("/static/" + name + ".css"); err != nil {
		return nil, err
	}
	if len(demo) > 0 {
		ts := make([]consoleDemoTenant, 0, len(demo))
		for _, t := range demo {
			ts = append(ts, consoleDemoTenant{ID: string(t.ID), Name: t.Name, Lang: t.Widget.Lang})
		}
		b, err := json.Marshal(ts)
		if err != nil {
			return nil, fmt.Errorf("%s page: %w", name, err)
		}
		data.Demo = string(b)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("%s page: %w", name, err)
	}
	return newAsset(name+".html", buf.Bytes()), nil
}

// serveConsole serves a console's page under the consoles' policy.
func serveConsole(w http.ResponseWriter, r *http.Request, page *asset) {
	h := w.Header()
	h.Set("Content-Security-Policy", consolePolicy)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	serveAsset(w, r, page, http.StatusOK)
}

// handleAgentPage serves GET /agent: the agents' console, present when the handoff
// is. The page signs in with an agent's token (in demo mode, with a demo agent's) and
// does everything else through the agents' API.
func (s *Server) handleAgentPage(w http.ResponseWriter, r *http.Request) {
	serveConsole(w, r, s.web.agent)
}

// handleAdminPage serves GET /admin: the admin console, where a tenant's admins edit
// its knowledge base. The page signs in with an admin's token (in demo mode, with a
// demo admin's) and does everything else through the knowledge base's admin API.
func (s *Server) handleAdminPage(w http.ResponseWriter, r *http.Request) {
	serveConsole(w, r, s.web.admin)
}
