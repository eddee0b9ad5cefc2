package ratelimit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fengda-ai/fengda/session"
)

// testRedisLimiter returns a RedisLimiter of the machine's Redis under a key prefix of
// its own, whose keys are deleted after the test, with its client and prefix.
func testRedisLimiter(tb testing.TB) (*RedisLimiter, redis.UniversalClient, string) {
	tb.Helper()
	c := testRedisClient(tb)
	prefix := "fdtest:" + rand.Text() + ":"
	l, err := NewRedisLimiter(c, RedisLimiterConfig{KeyPrefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { deleteKeys(tb, c, prefix) })
	return l, c, prefix
}

func deleteKeys(tb testing.TB, c redis.UniversalClient, prefix string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := scanKeys(ctx, c, prefix)
	if err == nil && len(keys) > 0 {
		err = c.Del(ctx, keys...).Err()
	}
	if err != nil {
		tb.Errorf("clean up %s*: %v", prefix, err)
	}
}

func TestRedisLimiterKeys(t *testing.T) {
	ctx := context.Background()
	l, c, prefix := testRedisLimiter(t)
	const user = "+86 138 0013 8000" // a phone number: never in a key
	r := Rate{RPS: 1, Burst: 5}
	for _, k := range []Key{{Tenant: "acme"}, {Tenant: "acme", User: user}} {
		if d, err := l.Allow(ctx, k, r); err != nil || !d.Allowed {
			t.Fatalf("Allow(%v) = %+v, %v; want allowed", k.User, d, err)
		}
	}
	// The keys start with the prefix (redis_rate's own "rate:" is taken off).
	ours, err := scanKeys(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ours)
	sum := sha256.Sum256([]byte(user))
	want := []string{prefix + "rl:{acme}:t", prefix + "rl:{acme}:u:" + hex.EncodeToString(sum[:16])}
	if !slices.Equal(ours, want) {
		t.Errorf("keys: got %q, want %q", ours, want)
	}
	for _, k := range ours {
		if strings.Contains(k, "138") {
			t.Errorf("key %q holds the user id", k)
		}
		// Each key expires once its limit has refilled: 5 tokens at 1/s.
		if ttl := c.TTL(ctx, k).Val(); ttl <= 0 || ttl > 5*time.Second {
			t.Errorf("TTL of %s = %v, want within (0, 5s]", k, ttl)
		}
	}
}

// TestRedisLimiterSharedByReplicas: two limiters with clients of their own, as two
// replicas have, admit the limit between them, not twice it.
func TestRedisLimiterSharedByReplicas(t *testing.T) {
	_, _, prefix := testRedisLimiter(t)
	replicas := make([]*RedisLimiter, 2)
	for i := range replicas {
		c := testRedisClient(t)
		l, err := NewRedisLimiter(c, RedisLimiterConfig{KeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = l
	}
	const rps, burst = 20, 10
	const window = time.Second
	r := Rate{RPS: rps, Burst: burst}
	k := Key{Tenant: "acme"}
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, l := range replicas {
		for range 4 {
			wg.Go(func() {
				for time.Since(start) < window {
					d, err := l.Allow(context.Background(), k, r)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						admitted.Add(1)
					} else {
						refused.Add(1)
						if d.RetryAfter <= 0 || d.RetryAfter > time.Second/rps {
							t.Errorf("RetryAfter = %v, want within (0, %v]", d.RetryAfter, time.Second/rps)
							return
						}
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	// The burst, then rps a second; one replica alone would admit as much, two
	// independent ones twice as much.
	most := burst + rps*elapsed + 1
	least := burst + rps*(window.Seconds()-0.1)
	if got := float64(admitted.Load()); got > most || got < least {
		t.Errorf("two replicas admitted %.0f in %.2fs; want between %.0f and %.0f (limit %d/s, burst %d)", got, elapsed, least, most, rps, burst)
	}
	if refused.Load() == 0 {
		t.Error("nothing refused: the load was under the limit")
	}
}

func TestRedisLimiterKeysApart(t *testing.T) {
	ctx := context.Background()
	l, _, _ := testRedisLimiter(t)
	r := Rate{RPS: 0.5, Burst: 2} // a fractional rate: one every 2s
	a := Key{Tenant: "acme", User: "alice"}
	for i := range 2 {
		if d, err := l.Allow(ctx, a, r); err != nil || !d.Allowed {
			t.Fatalf("alice %d: %+v, %v; want allowed", i, d, err)
		}
	}
	d, err := l.Allow(ctx, a, r)
	if err != nil || d.Allowed {
		t.Fatalf("alice over her burst: %+v, %v; want refused", d, err)
	}
	if d.RetryAfter < 1500*time.Millisecond || d.RetryAfter > 2*time.Second {
		t.Errorf("RetryAfter = %v, want about 2s", d.RetryAfter)
	}
	// Another user, the tenant's own limit, and the same user at another tenant are
	// limits of their own.
	for _, k := range []Key{{Tenant: "acme", User: "bob"}, {Tenant: "acme"}, {Tenant: "other", User: "alice"}} {
		if d, err := l.Allow(ctx, k, r); err != nil || !d.Allowed {
			t.Errorf("Allow(%+v) = %+v, %v; want allowed", k, d, err)
		}
	}
}

func TestRedisLimiterUnreachable(t *testing.T) {
	silent := newSilentRedis(t)
	for _, addr := range []string{"127.0.0.1:1", silent.addr} {
		t.Run(addr, func(t *testing.T) {
			c, err := session.NewRedisClient(session.RedisClientConfig{URL: "redis://" + addr + "/0"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			l, err := NewRedisLimiter(c, RedisLimiterConfig{})
			if err != nil {
				t.Fatal(err)
			}
			const deadline = 50 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			_, err = l.Allow(ctx, Key{Tenant: "acme"}, Rate{RPS: 1, Burst: 1})
			if err == nil {
				t.Error("Allow = nil error, want one")
			}
			if took := time.Since(start); took > deadline+200*time.Millisecond {
				t.Errorf("Allow took %v, past the %v deadline", took, deadline)
			}
		})
	}
}

func TestRedisLimiterConfig(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	if _, err := NewRedisLimiter(nil, RedisLimiterConfig{}); err == nil {
		t.Error("NewRedisLimiter accepted a nil client")
	}
	if _, err := NewRedisLimiter(c, RedisLimiterConfig{KeyPrefix: "a{b}"}); err == nil {
		t.Error("NewRedisLimiter accepted braces in the prefix")
	}
	l, err := NewRedisLimiter(c, RedisLimiterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.key(Key{Tenant: "acme"}); got != "fd:rl:{acme}:t" {
		t.Errorf("default key = %q, want fd:rl:{acme}:t", got)
	}
	for _, r := range []Rate{{RPS: 0, Burst: 1}, {RPS: -1, Burst: 1}, {RPS: 1, Burst: 0}} {
		if _, err := l.Allow(context.Background(), Key{Tenant: "acme"}, r); err == nil || !strings.Contains(err.Error(), "is not a limit") {
			t.Errorf("Allow with %+v = %v, want an invalid-rate error", r, err)
		}
	}
}

func TestGCRALimit(t *testing.T) {
	for _, tc := range []struct {
		rps      float64
		interval time.Duration
	}{
		{20, 50 * time.Millisecond},
		{0.5, 2 * time.Second},
		{3, time.Second / 3},
		{2.5, 400 * time.Millisecond},
		{1e12, time.Nanosecond},
	} {
		lim, err := gcraLimit(Rate{RPS: tc.rps, Burst: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got := lim.Period / time.Duration(lim.Rate); got != tc.interval {
			t.Errorf("rps %v: emission interval %v, want %v", tc.rps, got, tc.interval)
		}
	}
}
