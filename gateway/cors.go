package gateway

import (
	"errors"
	"net/http"
	"strings"

	"github.com/fengda-ai/fengda/tenant"
)

// errOriginNotAllowed is a browser request from a page whose origin the tenant has not
// listed in its allowed_origins.
var errOriginNotAllowed = errors.New("origin not allowed")

// What a cross-origin page may send and read. No credentials mode: the API takes bearer
// tokens, never cookies. Last-Event-ID is how the widget resumes a session's events
// stream (GET /v1/sessions/{id}/events) where it left off.
const (
	corsAllowMethods  = "GET, POST, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, Accept, X-Request-ID, Last-Event-ID"
	corsExposeHeaders = "Retry-After, X-Request-ID"
	corsMaxAge        = "600" // seconds a browser may reuse a preflight
)

// browserAPI reports whether path is one of the routes a web page calls: the chat, a
// queued turn, a session's history, erasure, handoff and events, and the demo token.
func browserAPI(path string) bool {
	return path == "/v1/chat" || path == demoTokenPath ||
		strings.HasPrefix(path, "/v1/turns/") || strings.HasPrefix(path, "/v1/sessions/")
}

// cors answers preflights and marks the responses of the browser API for pages of other
// origins. A page's origin must be allowed by the tenant it acts for; as a preflight
// carries no token, it is answered for an origin any tenant allows, and the request
// itself is then checked against its own tenant (checkOrigin, or the demo token
// handler). A cross-origin request from an origin no tenant allows is refused here.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !browserAPI(r.URL.Path) || sameOrigin(r, origin) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
		}
		if !s.web.anyStar && !s.web.anyAllow[origin] {
			s.writeError(w, r, errOriginNotAllowed)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if preflight {
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		next.ServeHTTP(w, r)
	})
}

// checkOrigin refuses a cross-origin request whose authenticated tenant does not allow
// the page's origin. It runs after authenticate.
func (s *Server) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.Header["Origin"]) == 0 { // not a browser's cross-origin call: nothing to check
			next.ServeHTTP(w, r)
			return
		}
		p, _ := tenant.FromContext(r.Context())
		if !s.originAllowed(r, p.Tenant) {
			s.writeError(w, r, errOriginNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// originAllowed reports whether the request may act for tenant id as far as its origin
// goes: it names none (not a browser, or a same-origin GET), it is this server's own,
// or the tenant lists it.
func (s *Server) originAllowed(r *http.Request, id tenant.ID) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || sameOrigin(r, origin) {
		return true
	}
	t := s.web.origins[id]
	return t != nil && t.AllowsOrigin(origin)
}

// sameOrigin reports whether origin is the host the request was sent to: its Host
// header, or X-Forwarded-Host behind a proxy that rewrites Host (a page cannot set that
// header on a cross-origin request: it is not among corsAllowHeaders).
func sameOrigin(r *http.Request, origin string) bool {
	host, ok := strings.CutPrefix(origin, "https://")
	if !ok {
		host, ok = strings.CutPrefix(origin, "http://")
	}
	if !ok || host == "" {
		return false
	}
	if strings.EqualFold(host, r.Host) {
		return true
	}
	fwd, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Host"), ",")
	fwd = strings.TrimSpace(fwd)
	return fwd != "" && strings.EqualFold(host, fwd)
}
