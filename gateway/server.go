package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Server is the HTTP edge. Build it with New, serve it with Run (or mount Handler).
type Server struct {
	cfg      Config
	dialogue Dialogue
	tenants  Tenants
	metrics  *Metrics
	log      *zap.Logger
	handler  http.Handler
	limits   limiters
	now      func() time.Time // the clock of token checks and rate limits

	draining     atomic.Bool
	shutdown     chan struct{} // closed when Run's ctx ends: open streams finish
	shutdownOnce sync.Once
	running      atomic.Bool
}

// New validates cfg (after filling its zero fields with defaults) and builds the server.
// A nil metrics gets a fresh NewMetrics; a nil log discards. It starts no goroutines.
func New(cfg Config, d Dialogue, tenants Tenants, metrics *Metrics, log *zap.Logger) (*Server, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	if d == nil {
		return nil, errors.New("gateway: nil dialogue engine")
	}
	if tenants == nil {
		return nil, errors.New("gateway: nil tenant registry")
	}
	if metrics == nil {
		metrics = NewMetrics()
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		cfg:      cfg,
		dialogue: d,
		tenants:  tenants,
		metrics:  metrics,
		log:      log.Named("gateway"),
		shutdown: make(chan struct{}),
		now:      time.Now,
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the whole API as one http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves on ln until ctx ends, then drains: /readyz starts failing, open SSE streams
// end with an unavailable error event, and in-flight requests get ShutdownTimeout to
// finish. It returns nil after a clean shutdown. Run may be called once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("gateway: Run called twice")
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		// WriteTimeout stays 0: a server-wide write deadline would cut SSE streams, so
		// each non-streaming request sets its own (see limitMiddleware).
		WriteTimeout:   0,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: s.cfg.MaxHeaderBytes,
		ErrorLog:       zap.NewStdLog(s.log.Named("http")),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	s.log.Info("shutting down", zap.Duration("timeout", s.cfg.ShutdownTimeout))
	s.draining.Store(true)
	// Shutdown waits for every open request, and an SSE stream never ends by itself.
	s.shutdownOnce.Do(func() { close(s.shutdown) })
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
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

// writeJSON writes v as the JSON response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value written here is one of our DTOs; this cannot happen.
		http.Error(w, `{"error":{"code":"internal","message":"Internal error."}}`, http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
