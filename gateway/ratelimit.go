package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// RateLimiter applies the tenants' rate limits (*ratelimit.Limiter).
type RateLimiter interface {
	// Allow takes one request at now from the allowance of user of tenant id. It
	// returns a *ratelimit.LimitedError when a limit is spent, an error wrapping
	// tenant.ErrUnauthenticated for a tenant no longer configured, or ctx.Err().
	Allow(ctx context.Context, id tenant.ID, user string, now time.Time) error
}

// rateLimit applies the authenticated user's limit, then the tenant's.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		p, _ := tenant.FromContext(r.Context())
		err := s.allow(r.Context(), p.Tenant, p.User)
		s.metrics.ObserveStage(p.Tenant, StageRateLimit, time.Since(start))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow takes one request from the allowance of user of tenant id (user empty: the
// tenant's only), or returns why not.
func (s *Server) allow(ctx context.Context, id tenant.ID, user string) error {
	if s.limiter == nil {
		return nil
	}
	return s.limiter.Allow(ctx, id, user, s.now())
}
