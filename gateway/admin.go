package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// AdminHandler serves the runtime profiles of net/http/pprof under /debug/pprof/ on a
// mux of its own. It belongs on a loopback-only admin listener, never on the public one:
// profiles show the program's internals, and a CPU profile or trace keeps a core busy
// for as long as it is asked to.
func AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // also heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// RunAdmin serves AdminHandler on ln until ctx ends, then closes it at once: a profile
// being taken is cut.
func RunAdmin(ctx context.Context, ln net.Listener, log *zap.Logger) error {
	srv := &http.Server{
		Handler:           AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          zap.NewStdLog(log.Named("admin")),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("admin listener %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	_ = srv.Close()
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin listener %s: %w", ln.Addr(), err)
	}
	return nil
}
