package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// The Limiter is the RateLimiter serve.go plugs in.
var _ RateLimiter = (*ratelimit.Limiter)(nil)

const testRedisAddr = "127.0.0.1:6379"

// limitTenants is a registry of one tenant, "shop", with a per-user limit, and tokens
// for its users alice, bob and carol.
type limitTenants struct {
	fakeTenants
	shop tenant.Tenant
}

func newLimitTenants(rl tenant.RateLimit) *limitTenants {
	return &limitTenants{shop: tenant.Tenant{ID: "shop", Name: "Shop", RateLimit: rl}}
}

func (f *limitTenants) Verify(token string, now time.Time) (tenant.Principal, error) {
	if user, ok := strings.CutPrefix(token, "tok-shop-"); ok {
		return tenant.Principal{Tenant: "shop", User: user}, nil
	}
	return f.fakeTenants.Verify(token, now)
}

func (f *limitTenants) Get(id tenant.ID) (*tenant.Tenant, error) {
	if id == "shop" {
		t := f.shop
		return &t, nil
	}
	return f.fakeTenants.Get(id)
}

// testRedisClient returns a client of the machine's Redis, closed after the test.
// Without Redis the test skips, or fails when CI=true.
func testRedisClient(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	c, err := session.NewRedisClient(session.RedisClientConfig{URL: "redis://" + addr + "/0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// requireRedis skips (or, with CI=true, fails) when Redis is not on 127.0.0.1:6379.
func requireRedis(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := testRedisClient(t, testRedisAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := fmt.Sprintf("Redis at %s does not answer (%v); start it with: "+
			`redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`, testRedisAddr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return c
}

// redisPrefix returns a key prefix of the test's own; its keys are deleted after the test.
func redisPrefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	prefix := "fdtest:" + rand.Text() + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var keys []string
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		err := iter.Err()
		if err == nil && len(keys) > 0 {
			err = c.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
		}
	})
	return prefix
}

// redisLimiter returns a RedisLimiter using c under prefix.
func redisLimiter(t testing.TB, c redis.UniversalClient, prefix string) *ratelimit.RedisLimiter {
	t.Helper()
	l, err := ratelimit.NewRedisLimiter(c, ratelimit.RedisLimiterConfig{KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// replicas builds n servers over the same registry, as n replicas of one deployment.
// With a non-nil newStore each is given its own client of the shared store by it.
func replicas(t testing.TB, n int, reg Tenants, newStore func() ratelimit.Store, log *zap.Logger) []*Server {
	t.Helper()
	out := make([]*Server, n)
	for i := range out {
		var store ratelimit.Store
		if newStore != nil {
			store = newStore()
		}
		// A generous timeout: on a loaded machine a slow Redis call would make the
		// replicas limit on their own, which is not what these tests are about.
		s, err := New(testConfig(), testDeps(t, &fakeDialogue{}, reg, ratelimit.Config{Timeout: time.Second}, store, log))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

// chatAs sends one chat turn as user of shop to s and returns the response.
func chatAs(t testing.TB, s *Server, user string) (int, http.Header, []byte) {
	t.Helper()
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer("tok-shop-" + user), body: `{"message":"hi"}`})
	return w.Code, w.Header(), w.Body.Bytes()
}

// checkLimited checks a 429 rate_limited response with a Retry-After.
func checkLimited(t testing.TB, what string, status int, h http.Header, body []byte) {
	t.Helper()
	if status != http.StatusTooManyRequests {
		t.Errorf("%s: status %d, want 429", what, status)
		return
	}
	if e := errorOf(t, body); e.Code != "rate_limited" {
		t.Errorf("%s: code %q, want rate_limited", what, e.Code)
	}
	if ra := h.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("%s: Retry-After %q, want a positive number of seconds", what, ra)
	}
}

// TestRateLimitPerUser runs the same requests against one replica limiting on its own
// and against two replicas sharing Redis, sending alternately to each: the users'
// and the tenant's limits hold across replicas.
func TestRateLimitPerUser(t *testing.T) {
	// Slow refills (one every 10s), so that the time the test takes does not matter.
	rl := tenant.RateLimit{RPS: 0.1, Burst: 6, UserRPS: 0.1, UserBurst: 3}
	stores := []struct {
		name    string
		servers func(t *testing.T) []*Server
	}{
		{"local", func(t *testing.T) []*Server {
			return replicas(t, 1, newLimitTenants(rl), nil, nil)
		}},
		{"redis, two replicas", func(t *testing.T) []*Server {
			c := requireRedis(t)
			prefix := redisPrefix(t, c)
			return replicas(t, 2, newLimitTenants(rl), func() ratelimit.Store {
				return redisLimiter(t, testRedisClient(t, testRedisAddr), prefix)
			}, nil)
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			servers := st.servers(t)
			n := 0
			next := func() *Server { n++; return servers[n%len(servers)] }

			// alice: her burst of 3, then refused; her refused requests take nothing
			// from the tenant.
			for i := range 3 {
				if got, _, body := chatAs(t, next(), "alice"); got != 200 {
					t.Fatalf("alice %d: status %d, body %s; want 200", i, got, body)
				}
			}
			for i := range 3 {
				got, h, body := chatAs(t, next(), "alice")
				checkLimited(t, fmt.Sprintf("alice over her limit, request %d", i), got, h, body)
			}
			// bob is not held back by alice.
			for i := range 3 {
				if got, _, body := chatAs(t, next(), "bob"); got != 200 {
					t.Fatalf("bob %d: status %d, body %s; want 200", i, got, body)
				}
			}
			// The tenant's 6 are spent: carol, who has sent nothing, is refused.
			got, h, body := chatAs(t, next(), "carol")
			checkLimited(t, "carol over the tenant's limit", got, h, body)
			var limited float64
			for _, s := range servers {
				limited += counterValue(t, s, `fengda_rate_limited_total{tenant="shop"}`)
			}
			if limited != 4 {
				t.Errorf("fengda_rate_limited_total = %v, want 4", limited)
			}
		})
	}
}

// TestRateLimitSharedByReplicas: two replicas sharing Redis admit the tenant's burst
// between them; two that limit on their own admit it each.
func TestRateLimitSharedByReplicas(t *testing.T) {
	c := requireRedis(t)
	rl := tenant.RateLimit{RPS: 0.1, Burst: 10}
	for _, tc := range []struct {
		name   string
		shared bool
		want   int
	}{
		{"shared", true, 10},
		{"each on its own", false, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var newStore func() ratelimit.Store
			if tc.shared {
				prefix := redisPrefix(t, c)
				newStore = func() ratelimit.Store { return redisLimiter(t, testRedisClient(t, testRedisAddr), prefix) }
			}
			servers := replicas(t, 2, newLimitTenants(rl), newStore, nil)
			admitted := 0
			for i := range 40 {
				// Each its own user: only the tenant's limit applies.
				if got, _, _ := chatAs(t, servers[i%2], fmt.Sprintf("u%d", i)); got == 200 {
					admitted++
				}
			}
			if admitted != tc.want {
				t.Errorf("admitted %d of 40, want %d (burst %d)", admitted, tc.want, rl.Burst)
			}
		})
	}
}

// flakyStore is a ratelimit.Store that fails while down, blocks until the call's deadline
// while slow, and otherwise allows everything. It counts its calls.
type flakyStore struct {
	down, slow atomic.Bool
	calls      atomic.Int32
}

func (f *flakyStore) Allow(ctx context.Context, k ratelimit.Key, r ratelimit.Rate) (ratelimit.Decision, error) {
	f.calls.Add(1)
	switch {
	case f.down.Load():
		return ratelimit.Decision{}, errors.New("connection refused")
	case f.slow.Load():
		<-ctx.Done()
		return ratelimit.Decision{}, ctx.Err()
	}
	return ratelimit.Decision{Allowed: true}, nil
}

// TestRateLimitDegrades: while the store fails or is slow, the limits are local (and
// still hold), the store is tried again once per back-off, one line is logged and the
// gauge set for the outage, and both are undone when it answers again.
func TestRateLimitDegrades(t *testing.T) {
	log, logs := observedLogger()
	store := &flakyStore{}
	s, err := New(testConfig(), testDeps(t, &fakeDialogue{}, &fakeTenants{}, ratelimit.Config{Timeout: 20 * time.Millisecond, Backoff: time.Second}, store, log))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	chat := func() (int, http.Header, []byte) {
		w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenSlow), body: `{"message":"hi"}`})
		return w.Code, w.Header(), w.Body.Bytes()
	}

	// Shared: the store decides; slow's local bucket (burst 2) is not used.
	for i := range 3 {
		if got, _, _ := chat(); got != 200 {
			t.Fatalf("store up, request %d: status %d", i, got)
		}
	}
	if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 0 {
		t.Errorf("store up: fengda_ratelimit_degraded = %v, want 0", got)
	}

	// Down: the local bucket, burst 2, then 429; never a 5xx. The store is asked once,
	// then left alone for the back-off.
	store.down.Store(true)
	calls := store.calls.Load()
	statuses := []int{}
	for range 4 {
		got, h, body := chat()
		statuses = append(statuses, got)
		if got == 429 {
			checkLimited(t, "store down", got, h, body)
		}
	}
	if want := []int{200, 200, 429, 429}; fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("store down: statuses %v, want %v", statuses, want)
	}
	if got := store.calls.Load() - calls; got != 1 {
		t.Errorf("store down: asked %d times within the back-off, want 1", got)
	}
	if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 1 {
		t.Errorf("store down: fengda_ratelimit_degraded = %v, want 1", got)
	}
	if got := counterValue(t, s, `fengda_ratelimit_fallbacks_total{tenant="slow"}`); got != 4 {
		t.Errorf("store down: fengda_ratelimit_fallbacks_total = %v, want 4", got)
	}

	// After the back-off one request tries the store again; still down, so still local.
	now = now.Add(1100 * time.Millisecond) // and one token back in the local bucket
	calls = store.calls.Load()
	if got, _, _ := chat(); got != 200 {
		t.Errorf("after the back-off, store down: status %d, want 200 from the local bucket", got)
	}
	if got := store.calls.Load() - calls; got != 1 {
		t.Errorf("after the back-off: store asked %d times, want 1", got)
	}

	// Slow: the call is cut at the timeout and the request limited locally.
	store.down.Store(false)
	store.slow.Store(true)
	now = now.Add(1100 * time.Millisecond)
	start := time.Now()
	if got, _, _ := chat(); got != 200 {
		t.Errorf("store slow: status %d, want 200 from the local bucket", got)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("store slow: the request took %v with a 20ms store timeout", took)
	}

	// Back: the next try after the back-off restores shared limits.
	store.slow.Store(false)
	now = now.Add(1100 * time.Millisecond)
	for i := range 5 {
		if got, _, _ := chat(); got != 200 {
			t.Errorf("store back, request %d: status %d, want 200", i, got)
		}
	}
	if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 0 {
		t.Errorf("store back: fengda_ratelimit_degraded = %v, want 0", got)
	}
	warned := logs.FilterMessageSnippet("rate limits are local").Len()
	restored := logs.FilterMessageSnippet("rate limits are shared again").Len()
	if warned != 1 || restored != 1 {
		t.Errorf("logged %d degraded and %d restored lines, want 1 each", warned, restored)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Context), "u3") {
			t.Errorf("a log line names the user: %s %v", e.Message, e.Context)
		}
	}
}

// scriptedStore refuses the keys in refuse, with their retry time, and allows the rest.
// It counts its calls by key.
type scriptedStore struct {
	mu     sync.Mutex
	refuse map[ratelimit.Key]time.Duration
	calls  map[ratelimit.Key]int
}

func (f *scriptedStore) Allow(ctx context.Context, k ratelimit.Key, r ratelimit.Rate) (ratelimit.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[k]++
	if d, ok := f.refuse[k]; ok {
		return ratelimit.Decision{RetryAfter: d}, nil
	}
	return ratelimit.Decision{Allowed: true}, nil
}

func (f *scriptedStore) set(k ratelimit.Key, retry time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if retry == 0 {
		delete(f.refuse, k)
		return
	}
	f.refuse[k] = retry
}

// count returns the calls for each key, in order, since the last count.
func (f *scriptedStore) count(keys ...ratelimit.Key) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]int, len(keys))
	for i, k := range keys {
		out[i] = f.calls[k]
	}
	clear(f.calls)
	return out
}

// TestRateLimitRemembersRefusals: a key the store refused is refused without asking the
// store again until its retry time; a refused tenant takes nothing from its users.
func TestRateLimitRemembersRefusals(t *testing.T) {
	store := &scriptedStore{refuse: map[ratelimit.Key]time.Duration{}, calls: map[ratelimit.Key]int{}}
	s := replicas(t, 1, newLimitTenants(tenant.RateLimit{RPS: 10, Burst: 10, UserRPS: 1, UserBurst: 1}), func() ratelimit.Store { return store }, nil)[0]
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	shop := ratelimit.Key{Tenant: "shop"}
	alice, bob := ratelimit.Key{Tenant: "shop", User: "alice"}, ratelimit.Key{Tenant: "shop", User: "bob"}
	check := func(what string, got, want []int) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}

	// The tenant refused for 1.5s: one round trip for each key, then none.
	store.set(shop, 1500*time.Millisecond)
	got, h, body := chatAs(t, s, "alice")
	checkLimited(t, "tenant refused", got, h, body)
	if ra := h.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After = %q, want 2", ra)
	}
	check("store calls for alice, bob, the tenant", store.count(alice, bob, shop), []int{1, 0, 1})
	for _, u := range []string{"alice", "bob", "alice"} {
		got, h, body := chatAs(t, s, u)
		checkLimited(t, "tenant refused, remembered", got, h, body)
	}
	check("store calls while remembered", store.count(alice, bob, shop), []int{0, 0, 0})

	// Past the retry time the store is asked again.
	store.set(shop, 0)
	now = now.Add(1500 * time.Millisecond)
	if got, _, body := chatAs(t, s, "bob"); got != 200 {
		t.Errorf("past the retry time: status %d, body %s", got, body)
	}
	check("store calls past the retry time", store.count(alice, bob, shop), []int{0, 1, 1})

	// A user refused: the same, and the tenant is not asked for that user.
	store.set(alice, time.Second)
	for range 3 {
		got, h, body := chatAs(t, s, "alice")
		checkLimited(t, "alice refused", got, h, body)
	}
	if got, _, body := chatAs(t, s, "bob"); got != 200 {
		t.Errorf("bob while alice is refused: status %d, body %s", got, body)
	}
	check("store calls with alice refused", store.count(alice, bob, shop), []int{1, 1, 1})
	if got := counterValue(t, s, `fengda_rate_limited_total{tenant="shop"}`); got != 7 {
		t.Errorf("fengda_rate_limited_total = %v, want 7", got)
	}
}

// TestRateLimitRedisDown: replicas whose Redis is unreachable limit locally, without a
// 5xx, report it, and share their limits again once Redis is back.
func TestRateLimitRedisDown(t *testing.T) {
	requireRedis(t)
	t.Run("closed port", func(t *testing.T) {
		c := testRedisClient(t, "127.0.0.1:1")
		s := replicas(t, 1, newLimitTenants(tenant.RateLimit{RPS: 0.1, Burst: 2}), func() ratelimit.Store { return redisLimiter(t, c, "fdtest:") }, nil)[0]
		var statuses []int
		for range 4 {
			got, h, body := chatAs(t, s, "alice")
			statuses = append(statuses, got)
			if got == 429 {
				checkLimited(t, "redis down", got, h, body)
			}
		}
		if want := []int{200, 200, 429, 429}; fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("statuses %v, want %v: the local limit", statuses, want)
		}
		if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 1 {
			t.Errorf("fengda_ratelimit_degraded = %v, want 1", got)
		}
	})

	t.Run("restored", func(t *testing.T) {
		c := requireRedis(t)
		prefix := redisPrefix(t, c)
		px := newToggleProxy(t, testRedisAddr)
		store := redisLimiter(t, testRedisClient(t, px.addr), prefix)
		s := replicas(t, 1, newLimitTenants(tenant.RateLimit{RPS: 0.1, Burst: 3}), func() ratelimit.Store { return store }, nil)[0]
		now := time.Now()
		s.now = func() time.Time { return now }

		if got, _, _ := chatAs(t, s, "u1"); got != 200 { // shared: 1 of 3 taken in Redis
			t.Fatalf("redis up: status %d", got)
		}
		px.setDown(true)
		if got, _, _ := chatAs(t, s, "u2"); got != 200 { // local: 1 of 3
			t.Fatalf("redis down: status %d, want 200 from the local bucket", got)
		}
		if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 1 {
			t.Errorf("redis down: fengda_ratelimit_degraded = %v, want 1", got)
		}
		px.setDown(false)
		now = now.Add(2 * ratelimit.DefaultBackoff)
		// Shared again: Redis has 2 of the burst of 3 left.
		var statuses []int
		for i := range 3 {
			got, _, _ := chatAs(t, s, fmt.Sprintf("v%d", i))
			statuses = append(statuses, got)
		}
		if want := []int{200, 200, 429}; fmt.Sprint(statuses) != fmt.Sprint(want) {
			t.Errorf("redis back: statuses %v, want %v: the limit kept in Redis", statuses, want)
		}
		if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 0 {
			t.Errorf("redis back: fengda_ratelimit_degraded = %v, want 0", got)
		}
	})
}

// toggleProxy forwards TCP connections to a server until it is set down: then it
// closes every connection it holds and refuses new ones.
type toggleProxy struct {
	addr string
	mu   sync.Mutex
	down bool
	open map[net.Conn]struct{}
}

func newToggleProxy(t testing.TB, target string) *toggleProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &toggleProxy{addr: ln.Addr().String(), open: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			if !p.track(in, out) {
				in.Close()
				out.Close()
				continue
			}
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			wg.Go(func() { pipe(out, in) })
			wg.Go(func() { pipe(in, out) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.setDown(true)
		wg.Wait()
	})
	return p
}

// track holds conns unless the proxy is down.
func (p *toggleProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range conns {
		p.open[c] = struct{}{}
	}
	return true
}

func (p *toggleProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.open {
			c.Close()
			delete(p.open, c)
		}
	}
}

// TestRateLimitUserBurstDefault: a per-user rate without a burst (a registry fills it
// in, other callers may not) allows one second's worth, and is no error for the store.
func TestRateLimitUserBurstDefault(t *testing.T) {
	c := requireRedis(t)
	prefix := redisPrefix(t, c)
	s := replicas(t, 1, newLimitTenants(tenant.RateLimit{RPS: 100, Burst: 100, UserRPS: 2}), func() ratelimit.Store { return redisLimiter(t, c, prefix) }, nil)[0]
	var statuses []int
	for range 3 {
		got, _, _ := chatAs(t, s, "alice")
		statuses = append(statuses, got)
	}
	if want := []int{200, 200, 429}; fmt.Sprint(statuses) != fmt.Sprint(want) {
		t.Errorf("statuses %v, want %v", statuses, want)
	}
	if got := counterValue(t, s, "fengda_ratelimit_degraded"); got != 0 {
		t.Error("the store was marked as failed")
	}
}

// counterValue reads one sample of s's /metrics by its name and labels, 0 when absent.
func counterValue(t testing.TB, s *Server, sample string) float64 {
	t.Helper()
	w := do(t, s.Handler(), request{method: "GET", path: "/metrics"})
	for line := range strings.Lines(w.Body.String()) {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %s: %q", sample, line)
			}
			return v
		}
	}
	return 0
}
