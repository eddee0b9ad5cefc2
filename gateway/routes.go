package gateway

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/fengda-ai/fengda/tenant"
)

// routes lists the whole API. Middleware, outermost first: request id and access log →
// recover → header and body limits → CORS (browser routes) → (API routes)
// authentication → origin check → tenant rate limit → the token's role.
//
// No route sits behind chi's middleware.Timeout or Throttle: they cut SSE streams or hold
// a slot for a stream's whole life. The chat turn's deadline is set in its handler.
func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.observe, s.recoverPanic, s.limit, s.cors)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, errRouteNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { s.writeError(w, r, errMethodNotAllowed) })

	// The web side: the demo page, the embeddable widget and the page's files.
	r.Get("/", s.handleIndex)
	r.Get("/widget.js", s.handleAsset)
	r.Get("/static/{name}", s.handleAsset)
	r.Head("/", s.handleIndex)
	r.Head("/widget.js", s.handleAsset)
	r.Head("/static/{name}", s.handleAsset)
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.handleReadyz)
	r.Get("/metrics", s.handleMetrics)
	r.Get("/admin", s.handleAdminPage)
	r.Head("/admin", s.handleAdminPage)
	// The agents' console, with the agents' API it calls.
	if s.handoff != nil {
		r.Get("/agent", s.handleAgentPage)
		r.Head("/agent", s.handleAgentPage)
	}

	// A tenant's backend authenticates with its API key here; the handler applies the
	// tenant's rate limit itself, as the tenant is known only after the key is checked.
	r.Post("/v1/tokens", s.handleTokenCreate)
	// The same key revokes tokens of the tenant's users.
	r.Post("/v1/admin/revocations", s.handleRevocationCreate)
	// Demo mode only: anonymous tokens for the demo page.
	if s.cfg.Demo.Enabled {
		r.Post(demoTokenPath, s.handleDemoToken)
	}

	r.Group(func(r chi.Router) {
		r.Use(s.authenticate, s.checkOrigin, s.rateLimit)

		// The customer API: tokens of role user only.
		r.Group(func(r chi.Router) {
			r.Use(s.requireRole(tenant.RoleUser))
			r.Post("/v1/chat", s.handleChatCreate)
			r.Get("/v1/turns/{turn_id}", s.handleTurnGet)
			if s.feedback != nil {
				r.Post("/v1/turns/{turn_id}/feedback", s.handleFeedback)
			}
			r.Get("/v1/sessions/{id}/messages", s.handleSessionMessages)
			r.Delete("/v1/sessions/{id}", s.handleSessionDelete)
			if s.handoff != nil {
				r.Post("/v1/sessions/{id}/handoff", s.handleHandoffCreate)
				r.Get("/v1/sessions/{id}/handoff", s.handleHandoffGet)
				r.Get("/v1/sessions/{id}/events", s.handleSessionEvents)
			}
		})

		// The tenant's admins: its live knowledge base. Tokens of role admin only.
		if s.kb != nil {
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(tenant.RoleAdmin))
				r.Get("/v1/admin/kb", s.handleKBGet)
				r.Put("/v1/admin/kb/entries/{id}", s.handleKBEntryPut)
				r.Delete("/v1/admin/kb/entries/{id}", s.handleKBEntryDelete)
				r.Post("/v1/admin/kb/import", s.handleKBImport)
				r.Get("/v1/admin/kb/versions", s.handleKBVersions)
				r.Post("/v1/admin/kb/rollback", s.handleKBRollback)
				r.Get("/v1/admin/kb/export", s.handleKBExport)
			})
		}

		// The agents' API: tokens of role agent only.
		if s.handoff != nil {
			r.Group(func(r chi.Router) {
				r.Use(s.requireRole(tenant.RoleAgent))
				r.Get("/v1/agent/conversations", s.handleAgentConversations)
				r.Post("/v1/agent/conversations/{id}/claim", s.handleAgentClaim)
				r.Get("/v1/agent/conversations/{id}/messages", s.handleAgentMessages)
				r.Post("/v1/agent/conversations/{id}/messages", s.handleAgentPost)
				r.Post("/v1/agent/conversations/{id}/close", s.handleAgentClose)
				r.Get("/v1/agent/events", s.handleAgentEvents)
			})
		}
	})
	return r
}
