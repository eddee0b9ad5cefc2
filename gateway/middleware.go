package gateway

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/tenant"
)

// maxAuthorizationBytes caps the Authorization header before any parsing: JWT parsers
// have allocated far more than their input for headers of many dots (CVE-2025-30204).
const maxAuthorizationBytes = 4096

// headerReadLimit is how much of a request's headers net/http reads before answering
// 431 by itself. It is well above the configured limit so that the limit middleware sees
// oversized requests and answers them with the documented error: 401 for a bearer token
// or API key of up to a mebibyte, 431 for other oversized headers.
const headerReadLimit = 1<<20 + 64<<10

// maxRequestIDBytes caps an incoming X-Request-ID we are willing to echo.
const maxRequestIDBytes = 64

// headerRequestID is X-Request-ID as net/http spells a header name: looked up or set
// with this spelling, it needs no conversion, which allocates for this name.
const headerRequestID = "X-Request-Id"

// requestInfo is what the outermost middleware learns about a request as it passes
// through the inner ones, for the access log and the metrics. One handler goroutine
// uses it at a time.
type requestInfo struct {
	id         string
	tenant     tenant.ID // set by authentication only
	clientGone bool      // the client left before an answer could be written
	// cause is why the request got a 503 or 504 (or its stream such an error event),
	// for the access line. An internal error (500) is logged on its own line instead.
	cause error
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

func (i *requestInfo) requestID() string {
	if i == nil {
		return ""
	}
	return i.id
}

func (i *requestInfo) tenantID() tenant.ID {
	if i == nil {
		return ""
	}
	return i.tenant
}

// statusRecorder remembers the status written, for the access log and for recover.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets SSE flush through the recorder; http.ResponseController finds the rest of
// the underlying writer's methods through Unwrap.
func (w *statusRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observed is what observe keeps about one request, allocated at once: its info, the
// recorder of its status, and the value of its X-Request-ID response header.
type observed struct {
	info     requestInfo
	rec      statusRecorder
	idHeader [1]string
}

// validRequestID reports whether an incoming X-Request-ID is safe to adopt and echo.
func validRequestID(s string) bool { return plainToken(s, maxRequestIDBytes) }

// plainToken reports whether s is 1 to max letters, digits, '-' or '_'.
func plainToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// observe assigns the request id, then, once the request is done, writes the access
// line and the request metrics. It never logs message text or credentials. Of the 429s
// of one tenant, one line a second is written (logging.TenantSampler). The line of a
// 503 or 504 carries its cause as "error". The access line is written here, not in
// package logging: its fields (route, status, request id) are the HTTP request's.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(headerRequestID)
		if !validRequestID(id) {
			id = rand.Text()
		}
		o := &observed{info: requestInfo{id: id}, rec: statusRecorder{ResponseWriter: w}, idHeader: [1]string{id}}
		w.Header()[headerRequestID] = o.idHeader[:]
		info, rec := &o.info, &o.rec
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))

		status := rec.status
		switch {
		case info.clientGone && status == 0:
			status = statusClientClosed
		case status == 0:
			status = http.StatusOK
		}
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		latency := time.Since(start)
		s.metrics.ObserveRequest(route, status, info.tenant, latency)
		skipped := 0
		if status == http.StatusTooManyRequests {
			var ok bool
			if ok, skipped = s.refusals.Admit(info.tenant, s.now()); !ok {
				return
			}
		}
		ce := s.log.Check(zap.InfoLevel, "request")
		if ce == nil { // info lines are off: build no fields
			return
		}
		fields := []zap.Field{
			zap.String("request_id", id),
			zap.String("method", r.Method),
			zap.String("route", route),
			zap.Int("status", status),
			zap.String("tenant", string(info.tenant)),
			zap.Duration("latency", latency),
		}
		if skipped > 0 {
			fields = append(fields, zap.Int("refusals_not_logged", skipped))
		}
		if info.cause != nil {
			fields = append(fields, zap.String("error", info.cause.Error()))
		}
		ce.Write(fields...)
	})
}

// recoverPanic turns a panic into a logged 500. Bad input must never get here: it is
// refused with a 4xx by the decoders.
func (s *Server) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // net/http's own way to abort a response; it logs nothing
			}
			info := infoFrom(r.Context())
			s.log.Error("panic",
				zap.String("request_id", info.requestID()),
				zap.String("tenant", string(info.tenantID())),
				zap.Any("panic", v),
				zap.Stack("stack"))
			if rec, ok := w.(*statusRecorder); ok && rec.status != 0 {
				return // too late for an error body
			}
			c := classify(fmt.Errorf("panic: %v", v))
			writeErrorJSON(w, c.status, s.errorDetail(r, c))
		}()
		next.ServeHTTP(w, r)
	})
}

// headerBytes estimates the size of the request line and headers as sent.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4 + len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// limit refuses oversized headers and bodies, caps the body reader, and sets the write
// deadline of the response (a streaming handler lifts it).
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// net/http reads up to headerReadLimit; this enforces the configured limit. A
		// credential that alone is over its own cap is an invalid credential, whatever
		// the size of the rest: 401, as for any other bad token.
		if headerBytes(r) > s.cfg.MaxHeaderBytes {
			if oversizedCredential(r) {
				s.writeError(w, r, fmt.Errorf("%w: credential header over %d bytes", tenant.ErrUnauthenticated, maxAuthorizationBytes))
				return
			}
			s.writeError(w, r, errHeaderTooLarge)
			return
		}
		limit := s.cfg.MaxBodyBytes
		if s.kb != nil && strings.HasPrefix(r.URL.Path, kbPathPrefix) {
			limit = s.cfg.KBMaxBodyBytes
		}
		if r.ContentLength > limit {
			s.writeError(w, r, errTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		setWriteDeadline(w, time.Now().Add(s.cfg.WriteTimeout))
		next.ServeHTTP(w, r)
	})
}

// setWriteDeadline sets the write deadline of w, or of the writer it wraps, as
// http.ResponseController.SetWriteDeadline does without allocating a controller. Not
// every writer supports deadlines (httptest.ResponseRecorder does not): then it does
// nothing.
func setWriteDeadline(w http.ResponseWriter, deadline time.Time) {
	for {
		switch u := w.(type) {
		case interface{ SetWriteDeadline(time.Time) error }:
			_ = u.SetWriteDeadline(deadline)
			return
		case interface{ Unwrap() http.ResponseWriter }:
			w = u.Unwrap()
		default:
			return
		}
	}
}

// oversizedCredential reports whether the Authorization or X-API-Key header is over the
// credential cap.
func oversizedCredential(r *http.Request) bool {
	for _, name := range []string{"Authorization", "X-API-Key"} {
		for _, v := range r.Header.Values(name) {
			if len(v) > maxAuthorizationBytes {
				return true
			}
		}
	}
	return false
}

// bearerToken extracts the token of an "Authorization: Bearer <token>" header.
func bearerToken(r *http.Request) (string, error) {
	vs := r.Header.Values("Authorization")
	switch {
	case len(vs) == 0:
		return "", fmt.Errorf("%w: no authorization header", tenant.ErrUnauthenticated)
	case len(vs) > 1:
		return "", fmt.Errorf("%w: several authorization headers", tenant.ErrUnauthenticated)
	case len(vs[0]) > maxAuthorizationBytes:
		return "", fmt.Errorf("%w: authorization header of %d bytes", tenant.ErrUnauthenticated, len(vs[0]))
	}
	scheme, token, ok := strings.Cut(vs[0], " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf("%w: not a bearer token", tenant.ErrUnauthenticated)
	}
	return token, nil
}

// authenticate verifies the bearer token and puts the principal in the context. The
// tenant it names is the only tenant the request's labels, logs and keys may use.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p, err := s.verify(r, s.now())
		s.metrics.ObserveStage(p.Tenant, StageAuth, time.Since(start))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if info := infoFrom(r.Context()); info != nil {
			info.tenant = p.Tenant
		}
		next.ServeHTTP(w, r.WithContext(tenant.NewContext(r.Context(), p)))
	})
}

func (s *Server) verify(r *http.Request, now time.Time) (tenant.Principal, error) {
	token, err := bearerToken(r)
	if err != nil {
		return tenant.Principal{}, err
	}
	p, err := s.tenants.Verify(token, now)
	if err != nil {
		return tenant.Principal{}, fmt.Errorf("verify token: %w", err)
	}
	if p.Tenant == "" || p.User == "" {
		return tenant.Principal{}, fmt.Errorf("%w: token names no tenant or user", tenant.ErrUnauthenticated)
	}
	return p, nil
}

// requireRole refuses, with 403 forbidden, a request whose principal (put in the context
// by authenticate, which must run first) is not of role. A principal without a role is a
// user's, as is a token without a role claim.
func (s *Server) requireRole(role string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := tenant.FromContext(r.Context())
			if !ok {
				// A route wired without authenticate: refuse rather than let it through.
				s.writeError(w, r, fmt.Errorf("%w: no principal", tenant.ErrUnauthenticated))
				return
			}
			if got := roleOf(p); got != role {
				s.writeError(w, r, fmt.Errorf("%w: role %s on a route of role %s", errForbidden, got, role))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// roleOf returns p's role; a principal without one is a user.
func roleOf(p tenant.Principal) string {
	if p.Role == "" {
		return tenant.RoleUser
	}
	return p.Role
}
