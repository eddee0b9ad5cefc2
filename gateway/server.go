package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/logging"
)

// Server is the HTTP edge. Build it with New, serve it with Run (or mount Handler).
type Server struct {
	cfg      Config
	dialogue Dialogue
	tenants  Tenants
	handoff  Handoff   // nil: no handoff routes
	kb       Knowledge // nil: no knowledge-base routes
	feedback Feedback  // nil: no feedback route
	metrics  Metrics
	log      *zap.Logger
	handler  http.Handler
	limiter  RateLimiter           // nil: no rate limits
	web      *web                  // the demo page, the widget and the allowed origins
	refusals logging.TenantSampler // thins the access lines of 429s
	now      func() time.Time      // the clock of token checks and rate limits

	draining atomic.Bool   // set when Run's ctx ends: /readyz fails, streams end with a shutdown event
	closing  chan struct{} // closed when the listener closes: event streams end now
	cutoff   chan struct{} // closed shortly before Run's shutdown timeout: open streams end now
	cutOnce  sync.Once
	running  atomic.Bool
}

// Deps are the parts the server works with.
type Deps struct {
	Dialogue Dialogue
	Tenants  Tenants
	// Handoff, if set, serves the handoff's routes: a customer's request for a person
	// and session events, and the agents' API.
	Handoff Handoff
	// Knowledge, if set, serves the tenants' admins' routes of their live knowledge
	// bases (/v1/admin/kb/...).
	Knowledge Knowledge
	// Feedback, if set, serves POST /v1/turns/{turn_id}/feedback.
	Feedback Feedback
	// Limiter applies the tenants' rate limits; nil admits every request.
	Limiter RateLimiter
	Metrics Metrics     // nil: none, and /metrics is 404
	Log     *zap.Logger // nil: discard
}

// New validates cfg (after filling its zero fields with defaults) and builds the server.
// It starts no goroutines.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	if cfg.KBMaxBodyBytes <= 0 {
		cfg.KBMaxBodyBytes = cfg.MaxBodyBytes
	}
	if deps.Dialogue == nil {
		return nil, errors.New("gateway: nil dialogue engine")
	}
	if deps.Tenants == nil {
		return nil, errors.New("gateway: nil tenant registry")
	}
	if err := cfg.Demo.Validate(cfg.TokenMaxTTL); err != nil {
		return nil, fmt.Errorf("gateway config: demo.%w", err)
	}
	all := deps.Tenants.Tenants()
	demo, err := demoTenants(cfg.Demo, deps.Tenants, all)
	if err != nil {
		return nil, err
	}
	web, err := newWeb(demo, all)
	if err != nil {
		return nil, err
	}
	metrics, log := deps.Metrics, deps.Log
	if metrics == nil {
		metrics = noMetrics{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		cfg:      cfg,
		dialogue: deps.Dialogue,
		handoff:  deps.Handoff,
		kb:       deps.Knowledge,
		feedback: deps.Feedback,
		tenants:  deps.Tenants,
		limiter:  deps.Limiter,
		metrics:  metrics,
		log:      log.Named("gateway"),
		closing:  make(chan struct{}),
		cutoff:   make(chan struct{}),
		now:      time.Now,
		web:      web,
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the whole API as one http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves on ln until ctx ends, then shuts down in this order:
//
//  1. /readyz answers 503 at once, and every response asks its client to close the
//     connection, while the server keeps serving for DrainDelay: load balancers see
//     the replica leave before it stops taking connections.
//  2. The listener closes. In-flight requests finish within ShutdownTimeout: a JSON
//     turn gets its answer; an SSE stream finishes its turn and then gets a shutdown
//     event.
//  3. A stream still open shortly before ShutdownTimeout runs out (one that waits past
//     its turn's deadline) ends with an unavailable error event and the shutdown event:
//     http.Server.Shutdown alone would wait for it forever.
//
// It returns nil after a clean shutdown. Run may be called once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("gateway: Run called twice")
	}
	srv := &http.Server{
		Handler:           s.closeWhileDraining(s.handler),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		// WriteTimeout stays 0: a server-wide write deadline would cut SSE streams, so
		// each non-streaming request sets its own (see limitMiddleware).
		WriteTimeout: 0,
		IdleTimeout:  s.cfg.IdleTimeout,
		// The limit middleware enforces MaxHeaderBytes with the documented errors.
		MaxHeaderBytes: max(s.cfg.MaxHeaderBytes, headerReadLimit),
		ErrorLog:       zap.NewStdLog(s.log.Named("http")),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	s.draining.Store(true)
	s.log.Info("draining: /readyz answers 503, still serving",
		zap.Duration("drain_delay", s.cfg.DrainDelay), zap.Duration("shutdown_timeout", s.cfg.ShutdownTimeout))
	if s.cfg.DrainDelay > 0 {
		delay := time.NewTimer(s.cfg.DrainDelay)
		select {
		case <-delay.C:
		case err := <-serveErr:
			delay.Stop()
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
	}

	s.log.Info("shutting down: listener closed, in-flight requests finishing")
	close(s.closing)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	cut := time.AfterFunc(s.cfg.ShutdownTimeout-cutMargin(s.cfg.ShutdownTimeout), func() {
		s.cutOnce.Do(func() { close(s.cutoff) })
	})
	defer cut.Stop()
	err := srv.Shutdown(sctx)
	if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// cutMargin is how long before the shutdown timeout open streams are told to end, so
// that their last events are written, and http.Server.Shutdown (which looks for idle
// connections every 500ms at most) sees them closed, before the timeout.
func cutMargin(timeout time.Duration) time.Duration {
	return min(time.Second, timeout/2)
}

// closeWhileDraining asks every client to close its connection once the server is
// draining, so that its next request opens a connection the load balancer sends to
// another replica, instead of one this server is about to close.
func (s *Server) closeWhileDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// writeJSON writes v as the JSON response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value written here is one of our DTOs; this cannot happen.
		http.Error(w, `{"error":{"code":"internal","message":"Internal error."}}`, http.StatusInternalServerError)
		return
	}
	writeBody(w, status, append(b, '\n'))
}
