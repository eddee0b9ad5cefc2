package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

// RateStore keeps rate limits shared by every replica (*ratelimit.RedisLimiter). Without
// one, each process limits on its own.
type RateStore interface {
	// Allow takes one request from k's allowance under r and says whether it may pass.
	// It returns an error when the store does not answer before ctx ends; the gateway
	// then limits locally.
	Allow(ctx context.Context, k ratelimit.RateKey, r ratelimit.Rate) (ratelimit.RateDecision, error)
}

// Defaults of RateStoreOptions.
const (
	DefaultRateStoreTimeout = 50 * time.Millisecond
	DefaultRateStoreBackoff = time.Second
)

// RateStoreOptions say how the gateway uses a RateStore. Zero values take the defaults.
type RateStoreOptions struct {
	// Timeout bounds one call to the store; past it, the request is limited locally.
	// Default 50ms.
	Timeout time.Duration
	// Backoff is how long the limits stay local after a failed call before the store
	// is tried again, so that an outage does not add Timeout to every request.
	// Default 1s.
	Backoff time.Duration
}

// SetRateStore makes the server take its rate limits from store, shared with every
// replica using it. When the store fails or is slow, the server limits on its own (each
// replica then admits up to the whole limit), reports it in fengda_ratelimit_degraded,
// and tries the store again after the back-off: a request is never refused because the
// store is down. Call it before serving.
func (s *Server) SetRateStore(store RateStore, o RateStoreOptions) error {
	switch {
	case store == nil:
		return errors.New("gateway: nil rate store")
	case o.Timeout < 0:
		return fmt.Errorf("gateway: rate store timeout %v is negative", o.Timeout)
	case o.Backoff < 0:
		return fmt.Errorf("gateway: rate store backoff %v is negative", o.Backoff)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultRateStoreTimeout
	}
	if o.Backoff == 0 {
		o.Backoff = DefaultRateStoreBackoff
	}
	s.limits.store, s.limits.timeout, s.limits.backoff = store, o.Timeout, o.Backoff
	return nil
}

// limiters is the rate-limit state of a Server: the shared store, if any, with its
// health, and the local token buckets used without a store or while it fails.
type limiters struct {
	// tenants holds one *tenantLimits per tenant, made on the tenant's first request.
	// Its size is bounded by the number of configured tenants: only verified ids reach it.
	tenants sync.Map
	users   userBuckets
	refused refusals

	store            RateStore // nil: local limits only
	timeout, backoff time.Duration
	// retryAt is 0 while the store answers; after it failed, the time (Unix ns) from
	// which one request may try it again.
	retryAt  atomic.Int64
	degraded atomic.Bool
}

// tenantLimits is one tenant's configured limits and its local token bucket.
type tenantLimits struct {
	limit tenant.RateLimit
	local *rate.Limiter
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

// allow takes one request from the allowance of user (when the tenant sets a per-user
// limit and user is not empty), then from tenant id's, and returns a
// *rateLimitedError saying when to retry if either is spent. The user's limit goes
// first so that one user's refused excess does not use up the tenant's allowance; a
// request the tenant's limit refuses still counts against its user.
func (s *Server) allow(ctx context.Context, id tenant.ID, user string) error {
	if !s.cfg.RateLimitEnabled {
		return nil
	}
	tl, err := s.tenantLimits(id)
	if err != nil {
		return err
	}
	now := s.now()
	tk := ratelimit.RateKey{Tenant: id}
	if err := s.refusedByStore(tk, now); err != nil {
		// The tenant's limit is spent: refused without a round trip, and without
		// taking from the user's allowance.
		return err
	}
	if user != "" && limited(tl.limit.UserRPS) {
		k := ratelimit.RateKey{Tenant: id, User: user}
		if err := s.take(ctx, k, ratelimit.Rate{RPS: tl.limit.UserRPS, Burst: burstOf(tl.limit.UserRPS, tl.limit.UserBurst)}, now); err != nil {
			return err
		}
	}
	if !limited(tl.limit.RPS) {
		return nil
	}
	return s.take(ctx, tk, ratelimit.Rate{RPS: tl.limit.RPS, Burst: burstOf(tl.limit.RPS, tl.limit.Burst)}, now)
}

// refusedByStore returns a *rateLimitedError when the store refused k and its retry
// time has not come yet.
func (s *Server) refusedByStore(k ratelimit.RateKey, now time.Time) error {
	if s.limits.store == nil {
		return nil
	}
	if d, ok := s.limits.refused.until(k, now); ok {
		s.metrics.observeRateLimited(k.Tenant)
		return &rateLimitedError{retryAfter: d}
	}
	return nil
}

// limited reports whether rps is a limit: a non-positive or infinite rate is none.
func limited(rps float64) bool {
	return rps > 0 && !math.IsInf(rps, 1)
}

// burstOf is the burst of a limit: a missing one allows one second's worth.
func burstOf(rps float64, burst int) int {
	if burst < 1 {
		return max(1, int(math.Min(math.Ceil(rps), math.MaxInt32)))
	}
	return burst
}

// take decides one request against k's limit r: by the shared store while it answers,
// else locally.
func (s *Server) take(ctx context.Context, k ratelimit.RateKey, r ratelimit.Rate, now time.Time) error {
	l := &s.limits
	if l.store != nil {
		if err := s.refusedByStore(k, now); err != nil {
			return err
		}
		if l.useStore(now) {
			sctx, cancel := context.WithTimeout(ctx, l.timeout)
			d, err := l.store.Allow(sctx, k, r)
			cancel()
			switch {
			case err == nil:
				s.storeAnswered()
				if !d.Allowed {
					l.refused.add(k, now.Add(d.RetryAfter), now)
					s.metrics.observeRateLimited(k.Tenant)
					return &rateLimitedError{retryAfter: d.RetryAfter}
				}
				return nil
			case ctx.Err() != nil:
				return ctx.Err() // the client left: nothing learned about the store
			default:
				s.storeFailed(now, err)
			}
		}
		s.metrics.observeRateLimitFallback(k.Tenant)
	}
	lim, err := s.localLimiter(k, r, now)
	if err != nil {
		return err
	}
	if retry, ok := reserve(lim, now); !ok {
		s.metrics.observeRateLimited(k.Tenant)
		return &rateLimitedError{retryAfter: retry}
	}
	return nil
}

// useStore reports whether to ask the store: always while it answers; after a failure,
// once the back-off has passed, one request (the one that moves retryAt on) per back-off.
func (l *limiters) useStore(now time.Time) bool {
	at := l.retryAt.Load()
	if at == 0 {
		return true
	}
	if now.UnixNano() < at {
		return false
	}
	return l.retryAt.CompareAndSwap(at, now.Add(l.backoff).UnixNano())
}

// storeFailed starts (or extends) a back-off, and says so once per outage.
func (s *Server) storeFailed(now time.Time, err error) {
	l := &s.limits
	l.retryAt.Store(now.Add(l.backoff).UnixNano())
	if l.degraded.CompareAndSwap(false, true) {
		s.metrics.setRateLimitDegraded(true)
		s.log.Warn("rate limits are local to this replica: the shared store did not answer; trying it again after each back-off",
			zap.Duration("timeout", l.timeout), zap.Duration("backoff", l.backoff), zap.Error(err))
	}
}

// storeAnswered ends a back-off, and says so once per outage.
func (s *Server) storeAnswered() {
	l := &s.limits
	if l.retryAt.Load() != 0 {
		l.retryAt.Store(0)
	}
	if l.degraded.CompareAndSwap(true, false) {
		s.metrics.setRateLimitDegraded(false)
		s.log.Info("rate limits are shared again: the store answers")
	}
}

// reserve takes one token from lim at now, or says how long until one is there.
func reserve(lim *rate.Limiter, now time.Time) (retryAfter time.Duration, ok bool) {
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return delay, false
	}
	return 0, true
}

// localLimiter returns the local token bucket of k.
func (s *Server) localLimiter(k ratelimit.RateKey, r ratelimit.Rate, now time.Time) (*rate.Limiter, error) {
	if k.User == "" {
		return s.limiter(k.Tenant)
	}
	return s.limits.users.get(k, r, now), nil
}

// tenantLimits returns tenant id's limits, looked up on its first request.
func (s *Server) tenantLimits(id tenant.ID) (*tenantLimits, error) {
	if v, ok := s.limits.tenants.Load(id); ok {
		return v.(*tenantLimits), nil
	}
	t, err := s.tenants.Get(id)
	if err != nil {
		// A verified token of a tenant that is no longer configured.
		return nil, fmt.Errorf("%w: tenant %s: %w", tenant.ErrUnauthenticated, id, err)
	}
	v, _ := s.limits.tenants.LoadOrStore(id, &tenantLimits{limit: t.RateLimit, local: newLimiter(t.RateLimit)})
	return v.(*tenantLimits), nil
}

// limiter returns tenant id's local token bucket.
func (s *Server) limiter(id tenant.ID) (*rate.Limiter, error) {
	tl, err := s.tenantLimits(id)
	if err != nil {
		return nil, err
	}
	return tl.local, nil
}

// newLimiter builds a token bucket from a tenant's limit. A non-positive RPS means no
// limit; a missing burst allows one second's worth of requests.
func newLimiter(rl tenant.RateLimit) *rate.Limiter {
	if !limited(rl.RPS) {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(rl.RPS), burstOf(rl.RPS, rl.Burst))
}

// userSweepEvery is how often the local user buckets are swept of full ones.
const userSweepEvery = 10 * time.Second

// userBuckets holds the local token buckets of users, made on a user's first request
// and dropped by a sweep once full again (idle for burst/rps): the map holds the users
// active in the last few seconds, not every user ever seen.
type userBuckets struct {
	mu    sync.Mutex
	m     map[ratelimit.RateKey]*rate.Limiter
	swept time.Time
}

// get returns k's bucket for limit r.
func (u *userBuckets) get(k ratelimit.RateKey, r ratelimit.Rate, now time.Time) *rate.Limiter {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[ratelimit.RateKey]*rate.Limiter)
	}
	if now.Sub(u.swept) >= userSweepEvery || now.Before(u.swept) {
		for key, lim := range u.m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(u.m, key)
			}
		}
		u.swept = now
	}
	lim := u.m[k]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(r.RPS), burstOf(r.RPS, r.Burst))
		u.m[k] = lim
	}
	return lim
}

// len is the number of users holding a bucket.
func (u *userBuckets) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

// refusals remembers until when the store refused each key. The store's limits are
// GCRA: a key it refuses stays refused until the retry time it gave (other replicas'
// requests can only push that later), so until then a replica refuses the key on its
// own. A tenant or user sending far over its limit then costs Redis about one call per
// key, per replica, each time a request could pass, rather than one per request.
// Entries are swept once past, so the map holds the keys refused in the last few
// seconds.
type refusals struct {
	mu    sync.Mutex
	m     map[ratelimit.RateKey]time.Time
	swept time.Time
}

// until returns how long k stays refused, if it is.
func (r *refusals) until(k ratelimit.RateKey, now time.Time) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.m[k]
	if !ok {
		return 0, false
	}
	if !now.Before(t) {
		delete(r.m, k)
		return 0, false
	}
	return t.Sub(now), true
}

// add records that k is refused until t.
func (r *refusals) add(k ratelimit.RateKey, t, now time.Time) {
	if !now.Before(t) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[ratelimit.RateKey]time.Time)
	}
	if now.Sub(r.swept) >= userSweepEvery || now.Before(r.swept) {
		for key, until := range r.m {
			if !now.Before(until) {
				delete(r.m, key)
			}
		}
		r.swept = now
	}
	r.m[k] = t
}
