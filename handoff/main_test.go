package handoff

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The tenants of the tests: bank answers in Chinese, shop in English.
const (
	bank tenant.ID = "bank-a"
	shop tenant.ID = "shop-b"
)

// hangGuard bounds every wait of the tests; it only stops a test that would hang.
const hangGuard = 5 * time.Second

// registry builds the tenants from cfgs the way the server does, so that their
// handoff settings (hours, webhook key, phrase defaults) are validated and resolved.
func registry(t *testing.T, cfgs ...tenant.Config) *tenant.Registry {
	t.Helper()
	for i := range cfgs {
		if len(cfgs[i].Keys) == 0 {
			secret := fmt.Sprintf("%-32s", "token secret of "+cfgs[i].ID)
			cfgs[i].Keys = []tenant.KeyConfig{{KID: "k1", Alg: tenant.AlgHS256, Secret: tenant.Secret{Value: secret}}}
		}
	}
	reg, err := tenant.NewRegistry(cfgs, func(string) string { return "" })
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return reg
}

// defaultTenants are bank (zh-CN) and shop (en) with the default handoff settings.
func defaultTenants() []tenant.Config {
	return []tenant.Config{
		{ID: string(bank), Widget: tenant.Widget{Lang: tenant.LangZH}},
		{ID: string(shop), Widget: tenant.Widget{Lang: tenant.LangEN}},
	}
}

// clock is a settable clock for the desk.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(at time.Time) *clock { return &clock{now: at} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// observed records what the desk tells its metrics.
type observed struct {
	mu     sync.Mutex
	causes []string        // tenant/cause
	waits  []time.Duration // claim waits, in order
	tenant []tenant.ID     // the tenant of each claim wait
}

func (o *observed) ObserveHandoff(t tenant.ID, cause string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.causes = append(o.causes, string(t)+"/"+cause)
}

func (o *observed) ObserveClaimWait(t tenant.ID, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waits = append(o.waits, d)
	o.tenant = append(o.tenant, t)
}

func (o *observed) snapshot() (causes []string, waits []time.Duration, tenants []tenant.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.causes...), append([]time.Duration(nil), o.waits...), append([]tenant.ID(nil), o.tenant...)
}

// fixture is a desk on a real memory store.
type fixture struct {
	desk    *Desk
	store   *session.MemoryStore
	reg     *tenant.Registry
	clock   *clock
	metrics *observed
}

// options change a fixture's dependencies before the desk is made.
type options struct {
	tenants []tenant.Config
	bus     Bus
	store   *session.MemoryStore
	// run starts the desk's Run (webhooks) for the test's duration.
	run bool
	// backoff, if set, replaces the webhook's first retry wait.
	backoff time.Duration
	// turns, if set, is told of the turns the desk stores.
	turns TurnObserver
}

func newFixture(t *testing.T, o options) *fixture {
	t.Helper()
	if o.tenants == nil {
		o.tenants = defaultTenants()
	}
	store := o.store
	if store == nil {
		var err error
		store, err = session.NewMemoryStore(session.MemoryConfig{})
		if err != nil {
			t.Fatal(err)
		}
	}
	reg := registry(t, o.tenants...)
	f := &fixture{store: store, reg: reg, clock: newClock(time.Now()), metrics: &observed{}}
	desk, err := New(Deps{
		Store:   store,
		Tenants: reg,
		Bus:     o.bus,
		Metrics: f.metrics,
		Turns:   o.turns,
		Log:     zaptest.NewLogger(t),
		Now:     f.clock.Now,
	}, reg.Tenants())
	if err != nil {
		t.Fatal(err)
	}
	if o.backoff > 0 {
		desk.webhooks.backoff = o.backoff
	}
	f.desk = desk
	if o.run {
		f.run(t)
	}
	return f
}

// run runs the desk until the test ends; the returned function stops it early and
// waits for Run to return.
func (f *fixture) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.desk.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(hangGuard):
				t.Error("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) tenant(t *testing.T, id tenant.ID) *tenant.Tenant {
	t.Helper()
	tn, err := f.reg.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// customer starts a session of user in tenant id with one bot turn and returns its ref.
func (f *fixture) customer(t *testing.T, id tenant.ID, user string) session.Ref {
	t.Helper()
	ref := session.Ref{Tenant: id, Session: session.NewID(), User: user}
	now := time.Now().UTC()
	turn := session.Turn{ID: session.NewTurnID(), User: "my card is lost", Answer: "which card?", Source: "faq", At: now, AnsweredAt: now}
	if _, err := f.store.Append(context.Background(), ref, turn, 0); err != nil {
		t.Fatal(err)
	}
	return ref
}

// open hands ref's session to a person because the customer asked.
func (f *fixture) open(t *testing.T, ref session.Ref, last string) Opened {
	t.Helper()
	o, err := f.desk.Open(context.Background(), f.tenant(t, ref.Tenant), ref, session.CauseAsked, last)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o
}

func agentOf(id tenant.ID, user, name string) tenant.Principal {
	return tenant.Principal{Tenant: id, User: user, Role: "agent", Name: name}
}

// next receives one event from ch, failing the test if none comes.
func next(t *testing.T, ch <-chan Event, what string) Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatalf("%s: stream closed", what)
		}
		return e
	case <-time.After(hangGuard):
		t.Fatalf("%s: no event", what)
	}
	return Event{}
}

// quiet checks that nothing more arrives on ch while a round trip through the bus
// settles: marker is called (it publishes an event ch must get) and the next event
// must be the marker's.
func quiet(t *testing.T, ch <-chan Event, marker func(), isMarker func(Event) bool) {
	t.Helper()
	marker()
	e := next(t, ch, "marker")
	if !isMarker(e) {
		t.Fatalf("unexpected event %s %s before the marker", e.Name, e.Data)
	}
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}
