package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// testTenants is a registry of one tenant, "shop", with the given limit.
type testTenants struct{ limit tenant.RateLimit }

func (f testTenants) Get(id tenant.ID) (*tenant.Tenant, error) {
	if id != "shop" {
		return nil, tenant.ErrUnknown
	}
	return &tenant.Tenant{ID: "shop", RateLimit: f.limit}, nil
}

// slowStore blocks every call until its context ends.
type slowStore struct{}

func (slowStore) Allow(ctx context.Context, _ Key, _ Rate) (Decision, error) {
	<-ctx.Done()
	return Decision{}, ctx.Err()
}

func newTestLimiter(t *testing.T, cfg Config, deps Deps) *Limiter {
	t.Helper()
	l, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestClientGone: a client that leaves during the store's call says nothing about the
// store.
func TestClientGone(t *testing.T) {
	l := newTestLimiter(t, Config{Timeout: time.Minute}, Deps{Tenants: testTenants{tenant.RateLimit{RPS: 1, Burst: 2}}, Store: slowStore{}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := l.Allow(ctx, "shop", "u3", time.Now()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Allow = %v, want the request's own context error", err)
	}
	if l.degraded.Load() || l.retryAt.Load() != 0 {
		t.Error("a request that ended on its own marked the store as failed")
	}
}

func TestUnknownTenant(t *testing.T) {
	l := newTestLimiter(t, Config{}, Deps{Tenants: testTenants{}})
	if err := l.Allow(context.Background(), "gone", "", time.Now()); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Errorf("Allow = %v, want tenant.ErrUnauthenticated", err)
	}
}

func TestLimitedError(t *testing.T) {
	l := newTestLimiter(t, Config{}, Deps{Tenants: testTenants{tenant.RateLimit{RPS: 1, Burst: 1}}})
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := l.Allow(context.Background(), "shop", "", now); err != nil {
		t.Fatal(err)
	}
	var le *LimitedError
	if err := l.Allow(context.Background(), "shop", "", now); !errors.As(err, &le) || le.RetryAfter != time.Second {
		t.Errorf("Allow = %v, want a *LimitedError retrying after 1s", err)
	}
}

// TestUserBucketsSwept: the local buckets of users who have gone quiet are dropped.
func TestUserBucketsSwept(t *testing.T) {
	l := newTestLimiter(t, Config{}, Deps{Tenants: testTenants{tenant.RateLimit{RPS: 1000, Burst: 1000, UserRPS: 1, UserBurst: 2}}})
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100 {
		if err := l.Allow(context.Background(), "shop", fmt.Sprintf("u%d", i), now); err != nil {
			t.Fatalf("user %d: %v", i, err)
		}
	}
	if got := l.users.len(); got != 100 {
		t.Fatalf("%d user buckets, want 100", got)
	}
	now = now.Add(userSweepEvery)
	_ = l.Allow(context.Background(), "shop", "late", now)
	if got := l.users.len(); got != 1 {
		t.Errorf("after %v: %d user buckets, want 1 (the users before are full again)", userSweepEvery, got)
	}
}

func TestNew(t *testing.T) {
	tenants := testTenants{}
	for _, tc := range []struct {
		name string
		cfg  Config
		deps Deps
	}{
		{"nil tenants", Config{}, Deps{}},
		{"negative timeout", Config{Timeout: -time.Second}, Deps{Tenants: tenants}},
		{"negative backoff", Config{Backoff: -time.Second}, Deps{Tenants: tenants}},
	} {
		if _, err := New(tc.cfg, tc.deps); err == nil {
			t.Errorf("%s: New accepted it", tc.name)
		}
	}
	l := newTestLimiter(t, Config{}, Deps{Tenants: tenants, Store: slowStore{}})
	if l.timeout != DefaultTimeout || l.backoff != DefaultBackoff {
		t.Errorf("timeout, backoff = %v, %v; want the defaults", l.timeout, l.backoff)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig().Validate() = %v", err)
	}
	for _, c := range []Config{
		{Store: "memcached", Timeout: time.Second, Backoff: time.Second},
		{Store: StoreRedis, Backoff: time.Second},
		{Store: StoreLocal, Timeout: time.Second},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
}

// TestRefusalsSwept: remembered refusals are dropped once past.
func TestRefusalsSwept(t *testing.T) {
	var r refusals
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 100 {
		r.add(Key{Tenant: "shop", User: fmt.Sprint(i)}, now.Add(time.Second), now)
	}
	if d, ok := r.until(Key{Tenant: "shop", User: "7"}, now.Add(400*time.Millisecond)); !ok || d != 600*time.Millisecond {
		t.Errorf("until = %v, %v; want 600ms, true", d, ok)
	}
	now = now.Add(userSweepEvery)
	r.add(Key{Tenant: "shop"}, now.Add(time.Second), now)
	if len(r.m) != 1 {
		t.Errorf("%d refusals kept, want 1", len(r.m))
	}
	if _, ok := r.until(Key{Tenant: "shop"}, now.Add(time.Second)); ok {
		t.Error("a refusal outlived its retry time")
	}
}
