package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/metrics"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

// The real engine and registry satisfy the interfaces the gateway consumes.
var (
	_ Dialogue = (*dialogue.Engine)(nil)
	_ Tenants  = (*tenant.Registry)(nil)
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Bearer tokens the fake registry accepts.
const (
	tokenAcme = "tok-acme-u1"
	tokenBank = "tok-bank-u2"
	tokenSlow = "tok-slow-u3"
	// tokenAcmeAgent is acme's agent Li Wei.
	tokenAcmeAgent = "tok-acme-agent"
	keyAcme        = "key-acme"
	// originBank is the one web origin bank allows.
	originBank = "https://www.bank.example"
)

// fakeTenants is a registry of three tenants: acme (no practical limit), bank, and slow
// (1 request per second, burst 2).
type fakeTenants struct {
	mu      sync.Mutex
	minted  []mintCall
	mintErr error
}

type mintCall struct {
	tenant     tenant.ID
	user       string
	role, name string
	ttl        time.Duration
}

var fakePrincipals = map[string]tenant.Principal{
	tokenAcme:      {Tenant: "acme", User: "u1", TokenID: "j1"},
	tokenBank:      {Tenant: "bank", User: "u2", TokenID: "j2"},
	tokenSlow:      {Tenant: "slow", User: "u3", TokenID: "j3"},
	tokenAcmeAgent: {Tenant: "acme", User: "agent-1", TokenID: "j4", Role: tenant.RoleAgent, Name: "Li Wei"},
}

var fakeTenantTable = map[tenant.ID]*tenant.Tenant{
	"acme": {ID: "acme", Name: "Acme", RateLimit: tenant.RateLimit{RPS: 10000, Burst: 10000}, Mints: true},
	"bank": {ID: "bank", Name: "Bank", RateLimit: tenant.RateLimit{RPS: 10000, Burst: 10000}, Mints: true,
		AllowedOrigins: []string{originBank}, Widget: tenant.Widget{Lang: tenant.LangZH, Greeting: "您好"}},
	"slow": {ID: "slow", Name: "Slow", RateLimit: tenant.RateLimit{RPS: 1, Burst: 2}},
}

func (f *fakeTenants) Verify(token string, now time.Time) (tenant.Principal, error) {
	p, ok := fakePrincipals[token]
	if kind, rest, minted := strings.Cut(token, "."); minted && strings.HasPrefix(kind, "minted") {
		// A token of MintRole: "minted.<tenant>.<user>" for a user, else
		// "minted-<role>.<tenant>.<user>".
		role := tenant.RoleUser
		if r, ok := strings.CutPrefix(kind, "minted-"); ok {
			role = r
		}
		id, user, _ := strings.Cut(rest, ".")
		p, ok = tenant.Principal{Tenant: tenant.ID(id), User: user, Role: role}, fakeTenantTable[tenant.ID(id)] != nil && tenant.ValidRole(role)
	}
	if !ok {
		return tenant.Principal{}, fmt.Errorf("%w: bad signature", tenant.ErrUnauthenticated)
	}
	return p, nil
}

func (f *fakeTenants) Mint(id tenant.ID, user string, ttl time.Duration, now time.Time) (string, time.Time, error) {
	return f.MintRole(id, user, tenant.RoleUser, "", ttl, now)
}

func (f *fakeTenants) MintRole(id tenant.ID, user, role, name string, ttl time.Duration, now time.Time) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mintErr != nil {
		return "", time.Time{}, f.mintErr
	}
	if !tenant.ValidRole(role) {
		return "", time.Time{}, fmt.Errorf("mint: %w: role %q", tenant.ErrInvalidClaim, role)
	}
	f.minted = append(f.minted, mintCall{tenant: id, user: user, role: role, name: name, ttl: ttl})
	kind := "minted"
	if role != tenant.RoleUser {
		kind += "-" + role
	}
	return kind + "." + string(id) + "." + user, now.Add(ttl), nil
}

func (f *fakeTenants) ByAPIKey(key string) (*tenant.Tenant, error) {
	if key == keyAcme {
		return fakeTenantTable["acme"], nil
	}
	return nil, tenant.ErrUnknown
}

func (f *fakeTenants) Tenants() []*tenant.Tenant {
	out := make([]*tenant.Tenant, 0, len(fakeTenantTable))
	for _, t := range fakeTenantTable {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *tenant.Tenant) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

func (f *fakeTenants) Get(id tenant.ID) (*tenant.Tenant, error) {
	if t, ok := fakeTenantTable[id]; ok {
		return t, nil
	}
	return nil, tenant.ErrUnknown
}

// acmeLimited is the fake registry with acme's rate limit set to limit.
type acmeLimited struct {
	fakeTenants
	limit tenant.RateLimit
}

func (f *acmeLimited) Get(id tenant.ID) (*tenant.Tenant, error) {
	t, err := f.fakeTenants.Get(id)
	if err != nil || id != "acme" {
		return t, err
	}
	limited := *t
	limited.RateLimit = f.limit
	return &limited, nil
}

// fakeDialogue answers with its function fields, or a fixed reply when they are nil.
type fakeDialogue struct {
	submit  func(ctx context.Context, t dialogue.Turn) (dialogue.Reply, error)
	stream  func(ctx context.Context, t dialogue.Turn) (<-chan dialogue.Event, error)
	history func(ctx context.Context, ref dialogue.Ref) ([]dialogue.HistoryTurn, error)
	del     func(ctx context.Context, ref dialogue.Ref) error
	queued  func(ctx context.Context, t tenant.ID, user, turnID string) (dialogue.Reply, error)
	ready   func(ctx context.Context) error

	quiet bool // record no turns (benchmarks)

	mu    sync.Mutex
	turns []dialogue.Turn
	refs  []dialogue.Ref
}

var fixedReply = dialogue.Reply{
	SessionID:  "sess-0001",
	TurnID:     "turn-0001",
	Answer:     "Opening hours are 9 to 5.",
	Source:     "faq",
	Confidence: 0.92,
	Citations:  []dialogue.Citation{{ID: "faq-7", Question: "When are you open?"}},
	Latency:    1500 * time.Microsecond,
}

func (f *fakeDialogue) record(t dialogue.Turn) {
	if f.quiet {
		return
	}
	f.mu.Lock()
	f.turns = append(f.turns, t)
	f.mu.Unlock()
}

func (f *fakeDialogue) lastTurn() dialogue.Turn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.turns) == 0 {
		return dialogue.Turn{}
	}
	return f.turns[len(f.turns)-1]
}

func (f *fakeDialogue) Submit(ctx context.Context, t dialogue.Turn) (dialogue.Reply, error) {
	f.record(t)
	if f.submit != nil {
		return f.submit(ctx, t)
	}
	return fixedReply, nil
}

func (f *fakeDialogue) Stream(ctx context.Context, t dialogue.Turn) (<-chan dialogue.Event, error) {
	f.record(t)
	if f.stream != nil {
		return f.stream(ctx, t)
	}
	return streamOf(0, metaEvent(), deltaEvent("Opening "), deltaEvent("hours"), doneEvent())(ctx, t)
}

func (f *fakeDialogue) History(ctx context.Context, ref dialogue.Ref) ([]dialogue.HistoryTurn, error) {
	f.mu.Lock()
	f.refs = append(f.refs, ref)
	f.mu.Unlock()
	if f.history != nil {
		return f.history(ctx, ref)
	}
	return nil, dialogue.ErrNotFound
}

func (f *fakeDialogue) QueuedTurn(ctx context.Context, t tenant.ID, user, turnID string) (dialogue.Reply, error) {
	f.mu.Lock()
	f.refs = append(f.refs, dialogue.Ref{Tenant: t, User: user, Session: turnID})
	f.mu.Unlock()
	if f.queued != nil {
		return f.queued(ctx, t, user, turnID)
	}
	return dialogue.Reply{}, dialogue.ErrNotFound
}

func (f *fakeDialogue) DeleteSession(ctx context.Context, ref dialogue.Ref) error {
	f.mu.Lock()
	f.refs = append(f.refs, ref)
	f.mu.Unlock()
	if f.del != nil {
		return f.del(ctx, ref)
	}
	return nil
}

func (f *fakeDialogue) Ready(ctx context.Context) error {
	if f.ready != nil {
		return f.ready(ctx)
	}
	return nil
}

func metaEvent() dialogue.Event {
	return dialogue.Event{Kind: dialogue.EventMeta, SessionID: fixedReply.SessionID, TurnID: fixedReply.TurnID}
}

func deltaEvent(s string) dialogue.Event {
	return dialogue.Event{Kind: dialogue.EventDelta, SessionID: fixedReply.SessionID, TurnID: fixedReply.TurnID, Delta: s}
}

func doneEvent() dialogue.Event {
	return dialogue.Event{Kind: dialogue.EventDone, SessionID: fixedReply.SessionID, TurnID: fixedReply.TurnID, Reply: &fixedReply}
}

// streamOf returns a Stream function that sends evs with gap between them, then closes
// the channel, as the engine does: every send also watches ctx.
func streamOf(gap time.Duration, evs ...dialogue.Event) func(ctx context.Context, t dialogue.Turn) (<-chan dialogue.Event, error) {
	return func(ctx context.Context, t dialogue.Turn) (<-chan dialogue.Event, error) {
		ch := make(chan dialogue.Event, 1)
		go func() {
			defer close(ch)
			for _, ev := range evs {
				if gap > 0 {
					select {
					case <-time.After(gap):
					case <-ctx.Done():
						return
					}
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}()
		return ch, nil
	}
}

// testConfig is DefaultConfig, adjusted by fns.
func testConfig(fns ...func(*Config)) Config {
	cfg := DefaultConfig()
	for _, fn := range fns {
		fn(&cfg)
	}
	return cfg
}

// newTestServer builds a Server over d and a fake registry.
func newTestServer(t testing.TB, cfg Config, d *fakeDialogue, log *zap.Logger) (*Server, *fakeTenants) {
	t.Helper()
	if d == nil {
		d = &fakeDialogue{}
	}
	tenants := &fakeTenants{}
	s, err := New(cfg, testDeps(t, d, tenants, ratelimit.Config{}, nil, log))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, tenants
}

// testDeps are the parts of a test server: d, tenants, fresh metrics and a rate
// Limiter over tenants configured by rl, sharing its limits through store when not nil.
func testDeps(t testing.TB, d Dialogue, tenants Tenants, rl ratelimit.Config, store ratelimit.Store, log *zap.Logger) Deps {
	t.Helper()
	m := metrics.New()
	l, err := ratelimit.New(rl, ratelimit.Deps{Tenants: tenants, Store: store, Observer: m, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return Deps{Dialogue: d, Tenants: tenants, Limiter: l, Metrics: m, Log: log}
}

// request describes one test request.
type request struct {
	method string
	path   string
	body   string
	header map[string]string
}

// do serves req on h and returns the recorded response.
func do(t testing.TB, h http.Handler, req request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
}

// errorOf decodes an error body, failing the test when it is not one.
func errorOf(t testing.TB, body []byte) errorDetail {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error
}
