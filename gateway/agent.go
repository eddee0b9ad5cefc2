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

// agentPolicy is the agents' console's Content Security Policy: its script, style and
// API calls from this server only, nothing inline, and no framing at all (a console
// that acts for an agent must not be clickjacked).
const agentPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// agentDemoTenant is a demo tenant as the console's "Demo agent" buttons show it.
type agentDemoTenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Lang string `json:"lang"`
}

// agentPageData is what web/agent.html is rendered with.
type agentPageData struct {
	// Demo is the JSON list of demo tenants whose handoff is on; "" when demo mode is off.
	Demo     string
	TokenURL string
	// Script and Style are the URLs of the console's files, with their version, so
	// that a new binary's page never runs an old cached script.
	Script, Style string
}

// newAgentPage renders the console from web/agent.html. demo lists the demo tenants
// (nil when demo mode is off); assets holds the loaded static files.
func newAgentPage(demo []*tenant.Tenant, assets map[string]*asset) (*asset, error) {
	src, err := fs.ReadFile(webFS, "web/agent.html")
	if err != nil {
		return nil, fmt.Errorf("agent page: %w", err)
	}
	tmpl, err := template.New("agent.html").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("agent page: %w", err)
	}
	versioned := func(p string) (string, error) {
		a := assets[p]
		if a == nil {
			return "", fmt.Errorf("agent page: %s is missing", p)
		}
		return p + "?v=" + strings.Trim(a.etag, `"`), nil
	}
	data := agentPageData{TokenURL: demoTokenPath}
	if data.Script, err = versioned("/static/agent.js"); err != nil {
		return nil, err
	}
	if data.Style, err = versioned("/static/agent.css"); err != nil {
		return nil, err
	}
	var ts []agentDemoTenant
	for _, t := range demo {
		if !t.Handoff.Disabled {
			ts = append(ts, agentDemoTenant{ID: string(t.ID), Name: t.Name, Lang: t.Widget.Lang})
		}
	}
	if len(ts) > 0 {
		b, err := json.Marshal(ts)
		if err != nil {
			return nil, fmt.Errorf("agent page: %w", err)
		}
		data.Demo = string(b)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("agent page: %w", err)
	}
	return newAsset("agent.html", buf.Bytes()), nil
}

// handleAgentPage serves GET /agent: the agents' console, present when the handoff
// is. The page signs in with an agent's token (in demo mode, with a demo agent's) and
// does everything else through the agents' API.
func (s *Server) handleAgentPage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", agentPolicy)
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-cache")
	serveAsset(w, r, s.web.agent, http.StatusOK)
}
