package gateway

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// readyTimeout bounds the engine's readiness check, so a hung store fails /readyz
// instead of hanging it.
const readyTimeout = 2 * time.Second

type statusBody struct {
	Status  string `json:"status"`
	Version string `json:"version,omitempty"` // /healthz only: the build's version
}

// handleHealthz serves GET /healthz: the process is alive, and which build it runs.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, statusBody{Status: "ok", Version: s.cfg.Version})
}

// handleReadyz serves GET /readyz: 200 while the engine can take turns, 503 from the
// moment the server starts draining (before it stops serving: see Run) or while the
// engine's stores do not answer.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.dialogue.Ready(ctx); err != nil {
		// An unauthenticated request: its lines carry an empty tenant.
		s.log.Warn("not ready", zap.String("request_id", infoFrom(r.Context()).requestID()), zap.String("tenant", ""), zap.Error(err))
		writeJSON(w, http.StatusServiceUnavailable, statusBody{Status: "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, statusBody{Status: "ready"})
}

// handleMetrics serves GET /metrics in the Prometheus text format.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.metrics.Handler().ServeHTTP(w, r)
}
