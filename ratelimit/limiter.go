package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/fengda-ai/fengda/tenant"
)

// Store keeps rate limits shared by every replica (*RedisLimiter).
type Store interface {
	// Allow takes one request from k's allowance under r and says whether it may pass.
	// It returns an error when the store does not answer before ctx ends; the Limiter
	// then limits locally.
	Allow(ctx context.Context, k Key, r Rate) (Decision, error)
}

// Tenants looks up a tenant's configured limits (*tenant.Registry).
type Tenants interface {
	// Get returns the tenant with the given id, or tenant.ErrUnknown.
	Get(id tenant.ID) (*tenant.Tenant, error)
}

// Observer receives the Limiter's metrics.
type Observer interface {
	// RateLimited counts a request refused by a limit of tenant t.
	RateLimited(t tenant.ID)
	// RateLimitFallback counts a decision taken locally because the store failed.
	RateLimitFallback(t tenant.ID)
	// RateLimitDegraded reports whether the limits are local because the store failed.
	RateLimitDegraded(degraded bool)
}

// Deps are the parts a Limiter works with.
type Deps struct {
	Tenants Tenants
	// Store, if set, shares the limits with every replica using it; nil limits on this
	// process only.
	Store    Store
	Observer Observer // nil: none
	// Log receives one line when the store fails and one when it answers again; the
	// caller names it (serve.go keeps the name "gateway" these lines always had).
	Log *zap.Logger
}

// LimitedError is a request refused by a rate limit.
type LimitedError struct {
	// RetryAfter is how long until one request would pass.
	RetryAfter time.Duration
}

func (e *LimitedError) Error() string { return "rate limited" }

// Limiter applies each tenant's rate limits, and each of its users' where the tenant
// sets one. With a Store it asks the store; when the store fails or is slow it limits
// on its own (each replica then admits up to the whole limit), reports it through
// Observer.RateLimitDegraded, and tries the store again after the back-off: a request
// is never refused because the store is down.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	tenants Tenants
	obs     Observer
	log     *zap.Logger

	// limits holds one *tenantLimits per tenant, made on the tenant's first request.
	// Its size is bounded by the number of configured tenants: only verified ids reach it.
	limits  sync.Map
	users   userBuckets
	refused refusals

	store            Store // nil: local limits only
	timeout, backoff time.Duration
	// retryAt is 0 while the store answers; after it failed, the time (Unix ns) from
	// which one request may try it again.
	retryAt  atomic.Int64
	degraded atomic.Bool
}

// New validates cfg's Timeout and Backoff (zero takes the default) and returns a
// Limiter. It starts no goroutines.
func New(cfg Config, deps Deps) (*Limiter, error) {
	switch {
	case deps.Tenants == nil:
		return nil, errors.New("ratelimit: nil tenants")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("ratelimit.timeout: %v is negative", cfg.Timeout)
	case cfg.Backoff < 0:
		return nil, fmt.Errorf("ratelimit.backoff: %v is negative", cfg.Backoff)
	}
	l := &Limiter{
		tenants: deps.Tenants,
		obs:     deps.Observer,
		log:     deps.Log,
		store:   deps.Store,
		timeout: cmpOr(cfg.Timeout, DefaultTimeout),
		backoff: cmpOr(cfg.Backoff, DefaultBackoff),
	}
	if l.obs == nil {
		l.obs = nopObserver{}
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	return l, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

type nopObserver struct{}

func (nopObserver) RateLimited(tenant.ID)       {}
func (nopObserver) RateLimitFallback(tenant.ID) {}
func (nopObserver) RateLimitDegraded(bool)      {}

// tenantLimits is one tenant's configured limits and its local token bucket.
type tenantLimits struct {
	limit tenant.RateLimit
	local *rate.Limiter
}

// Allow takes one request at now from the allowance of user (when the tenant sets a
// per-user limit and user is not empty), then from tenant id's. It returns a
// *LimitedError when either is spent, an error wrapping tenant.ErrUnauthenticated for a
// tenant no longer configured, or ctx's error when the caller left during the store's
// call.
//
// The user's limit goes first so that one user's refused excess does not use up the
// tenant's allowance; a request the tenant's limit refuses still counts against its user.
func (l *Limiter) Allow(ctx context.Context, id tenant.ID, user string, now time.Time) error {
	tl, err := l.tenantLimits(id)
	if err != nil {
		return err
	}
	tk := Key{Tenant: id}
	if err := l.refusedByStore(tk, now); err != nil {
		// The tenant's limit is spent: refused without a round trip, and without
		// taking from the user's allowance.
		return err
	}
	if user != "" && limited(tl.limit.UserRPS) {
		k := Key{Tenant: id, User: user}
		if err := l.take(ctx, k, Rate{RPS: tl.limit.UserRPS, Burst: burstOf(tl.limit.UserRPS, tl.limit.UserBurst)}, now); err != nil {
			return err
		}
	}
	if !limited(tl.limit.RPS) {
		return nil
	}
	return l.take(ctx, tk, Rate{RPS: tl.limit.RPS, Burst: burstOf(tl.limit.RPS, tl.limit.Burst)}, now)
}

// refusedByStore returns a *LimitedError when the store refused k and its retry time
// has not come yet.
func (l *Limiter) refusedByStore(k Key, now time.Time) error {
	if l.store == nil {
		return nil
	}
	if d, ok := l.refused.until(k, now); ok {
		l.obs.RateLimited(k.Tenant)
		return &LimitedError{RetryAfter: d}
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
func (l *Limiter) take(ctx context.Context, k Key, r Rate, now time.Time) error {
	if l.store != nil {
		if err := l.refusedByStore(k, now); err != nil {
			return err
		}
		if l.useStore(now) {
			sctx, cancel := context.WithTimeout(ctx, l.timeout)
			d, err := l.store.Allow(sctx, k, r)
			cancel()
			switch {
			case err == nil:
				l.storeAnswered()
				if !d.Allowed {
					l.refused.add(k, now.Add(d.RetryAfter), now)
					l.obs.RateLimited(k.Tenant)
					return &LimitedError{RetryAfter: d.RetryAfter}
				}
				return nil
			case ctx.Err() != nil:
				return ctx.Err() // the client left: nothing learned about the store
			default:
				l.storeFailed(now, err)
			}
		}
		l.obs.RateLimitFallback(k.Tenant)
	}
	lim, err := l.localLimiter(k, r, now)
	if err != nil {
		return err
	}
	if retry, ok := reserve(lim, now); !ok {
		l.obs.RateLimited(k.Tenant)
		return &LimitedError{RetryAfter: retry}
	}
	return nil
}

// useStore reports whether to ask the store: always while it answers; after a failure,
// once the back-off has passed, one request (the one that moves retryAt on) per back-off.
func (l *Limiter) useStore(now time.Time) bool {
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
func (l *Limiter) storeFailed(now time.Time, err error) {
	l.retryAt.Store(now.Add(l.backoff).UnixNano())
	if l.degraded.CompareAndSwap(false, true) {
		l.obs.RateLimitDegraded(true)
		l.log.Warn("rate limits are local to this replica: the shared store did not answer; trying it again after each back-off",
			zap.Duration("timeout", l.timeout), zap.Duration("backoff", l.backoff), zap.Error(err))
	}
}

// storeAnswered ends a back-off, and says so once per outage.
func (l *Limiter) storeAnswered() {
	if l.retryAt.Load() != 0 {
		l.retryAt.Store(0)
	}
	if l.degraded.CompareAndSwap(true, false) {
		l.obs.RateLimitDegraded(false)
		l.log.Info("rate limits are shared again: the store answers")
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
func (l *Limiter) localLimiter(k Key, r Rate, now time.Time) (*rate.Limiter, error) {
	if k.User == "" {
		tl, err := l.tenantLimits(k.Tenant)
		if err != nil {
			return nil, err
		}
		return tl.local, nil
	}
	return l.users.get(k, r, now), nil
}

// tenantLimits returns tenant id's limits, looked up on its first request.
func (l *Limiter) tenantLimits(id tenant.ID) (*tenantLimits, error) {
	if v, ok := l.limits.Load(id); ok {
		return v.(*tenantLimits), nil
	}
	t, err := l.tenants.Get(id)
	if err != nil {
		// A verified token of a tenant that is no longer configured.
		return nil, fmt.Errorf("%w: tenant %s: %w", tenant.ErrUnauthenticated, id, err)
	}
	v, _ := l.limits.LoadOrStore(id, &tenantLimits{limit: t.RateLimit, local: newBucket(t.RateLimit)})
	return v.(*tenantLimits), nil
}

// newBucket builds a token bucket from a tenant's limit. A non-positive RPS means no
// limit; a missing burst allows one second's worth of requests.
func newBucket(rl tenant.RateLimit) *rate.Limiter {
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
	m     map[Key]*rate.Limiter
	swept time.Time
}

// get returns k's bucket for limit r.
func (u *userBuckets) get(k Key, r Rate, now time.Time) *rate.Limiter {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = make(map[Key]*rate.Limiter)
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
	m     map[Key]time.Time
	swept time.Time
}

// until returns how long k stays refused, if it is.
func (r *refusals) until(k Key, now time.Time) (time.Duration, bool) {
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
func (r *refusals) add(k Key, t, now time.Time) {
	if !now.Before(t) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[Key]time.Time)
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
