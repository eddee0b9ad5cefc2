package dialogue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

const shop tenant.ID = "shop"

// spillRig is an engine with spillover on, consuming its own queue.
type spillRig struct {
	e     *dialogue.Engine
	store *session.MemoryStore
	q     *queue.Queue

	mu       sync.Mutex
	outcomes map[string]int
	worked   atomic.Int64
}

func (r *spillRig) count(outcome string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcomes[outcome]
}

// startSpill runs an engine whose full backlog spills to a queue on b, with qcfg's caps,
// answering tenants bank and shop with a, until the test ends. wrap, if set, wraps the
// engine's queue handler.
func startSpill(t *testing.T, b queuetest.Backend, cfg dialogue.Config, qcfg queue.Config, spill dialogue.Spill,
	a dialogue.Answerer, wrap func(queue.Handler) queue.Handler) *spillRig {
	t.Helper()
	return startSpillLogged(t, b, cfg, qcfg, spill, a, wrap, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
}

// startSpillLogged is startSpill logging to log.
func startSpillLogged(t *testing.T, b queuetest.Backend, cfg dialogue.Config, qcfg queue.Config, spill dialogue.Spill,
	a dialogue.Answerer, wrap func(queue.Handler) queue.Handler, log *zap.Logger) *spillRig {
	t.Helper()
	return startSpillOn(t, b, cfg, qcfg, spill, a, wrap, log, nil)
}

func (r *spillRig) ObserveStage(tenant.ID, string, time.Duration) {}

func (r *spillRig) ObserveSpill(_ tenant.ID, outcome string) {
	r.mu.Lock()
	r.outcomes[outcome]++
	r.mu.Unlock()
}

func (r *spillRig) ObserveQueuedWorked(tenant.ID) { r.worked.Add(1) }

// startSpillOn is startSpillLogged with the engine's store wrapped by wrapStore, if set.
func startSpillOn(t *testing.T, b queuetest.Backend, cfg dialogue.Config, qcfg queue.Config, spill dialogue.Spill,
	a dialogue.Answerer, wrap func(queue.Handler) queue.Handler, log *zap.Logger, wrapStore func(dialogue.Store) dialogue.Store) *spillRig {
	t.Helper()
	p := b.Place(t)
	qcfg.Mode, qcfg.DataDir, qcfg.URL, qcfg.Stream, qcfg.Subject = p.Mode, p.DataDir, p.URL, p.Stream, p.Subject
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, qcfg, []tenant.ID{bank, shop}, log)
	if err != nil {
		t.Fatalf("queue.Open: %v", err)
	}
	store, err := session.NewMemoryStore(session.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := &spillRig{store: store, q: q, outcomes: map[string]int{}}
	spill.Queue = q
	var engineStore dialogue.Store = store
	if wrapStore != nil {
		engineStore = wrapStore(store)
	}
	r.e, err = dialogue.New(cfg, dialogue.Deps{
		Store:     engineStore,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: a, shop: a},
		Tenants: tenants{
			bank: {ID: bank, FallbackAnswer: "busy, try later"},
			shop: {ID: shop, FallbackAnswer: "busy, try later"},
		},
		Spill:   spill,
		Metrics: r,
		Log:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { _ = r.e.Run(runCtx); close(ran) }()
	h := queue.Handler(r.e.HandleQueued)
	if wrap != nil {
		h = wrap(h)
	}
	consumed := make(chan error, 1)
	go func() { consumed <- q.Consume(context.Background(), max(cfg.Workers, 1), h) }()
	t.Cleanup(func() {
		// Consume ending before Drain is a failure; after it, nil. A test that needs no
		// queue can end before Consume has started: then Consume, started after Drain,
		// finds the queue closed.
		select {
		case err := <-consumed:
			t.Errorf("Consume returned before Drain: %v", err)
			consumed <- nil
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := q.Drain(ctx); err != nil {
			t.Errorf("Drain: %v", err)
		}
		if err := <-consumed; err != nil && !errors.Is(err, queue.ErrClosed) {
			t.Errorf("Consume: %v", err)
		}
		stop()
		<-ran
	})
	return r
}

// fill occupies every worker and the backlog of one turn with streamed turns of user
// "filler", so that the next turn is queued; a answers with started set. It returns the
// streams, to be read with doneOf.
func fill(t *testing.T, e *dialogue.Engine, a *echo, workers int) []<-chan dialogue.Event {
	t.Helper()
	var streams []<-chan dialogue.Event
	for i := range workers + 1 {
		ch, err := e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "filler", Message: fmt.Sprintf("f%d", i)})
		if err != nil {
			t.Fatalf("filler %d: %v", i, err)
		}
		streams = append(streams, ch)
		if i < workers {
			select {
			case <-a.started: // a worker took it
			case <-time.After(10 * time.Second):
				t.Fatalf("filler %d not started", i)
			}
		}
	}
	return streams
}

// doneOf reads a stream to its end and returns its reply.
func doneOf(t *testing.T, ch <-chan dialogue.Event) dialogue.Reply {
	t.Helper()
	var r dialogue.Reply
	for ev := range ch {
		switch ev.Kind {
		case dialogue.EventDone:
			r = *ev.Reply
		case dialogue.EventError:
			t.Errorf("stream: %v", ev.Err)
		}
	}
	return r
}

// settle returns turn's reply, polling QueuedTurn while the reply says it is queued.
func settle(t *testing.T, e *dialogue.Engine, turn dialogue.Turn, r dialogue.Reply) dialogue.Reply {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.Queued {
		if time.Now().After(deadline) {
			t.Fatalf("turn %s still queued after 20s", r.TurnID)
		}
		time.Sleep(20 * time.Millisecond)
		var err error
		if r, err = e.QueuedTurn(context.Background(), turn.Tenant, turn.User, r.TurnID); err != nil {
			t.Fatalf("QueuedTurn: %v", err)
		}
	}
	return r
}

// Fifteen times what the workers and backlog hold arrives at once: every turn is
// answered once (at once or by polling), stored once, and none is refused.
func TestSpillBurst(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		slow := &echo{delay: 40 * time.Millisecond}
		rig := startSpill(t, b, dialogue.Config{Workers: 4, Backlog: 4}, queue.Config{},
			dialogue.Spill{Wait: 300 * time.Millisecond}, slow, nil)
		const n = 15 * 8
		replies := make([]dialogue.Reply, n)
		turns := make([]dialogue.Turn, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			turns[i] = dialogue.Turn{Tenant: bank, User: fmt.Sprintf("u%d", i), Message: fmt.Sprintf("m%d", i)}
			wg.Go(func() { replies[i], errs[i] = rig.e.Submit(context.Background(), turns[i]) })
		}
		wg.Wait()
		queued := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("turn %d: %v", i, errs[i])
			}
			if replies[i].Queued {
				queued++
			}
			r := settle(t, rig.e, turns[i], replies[i])
			if want := fmt.Sprintf("m%d (after 0)", i); r.Answer != want {
				t.Errorf("turn %d: answer %q, want %q", i, r.Answer, want)
			}
			stored, err := rig.store.Load(context.Background(), session.Ref{Tenant: bank, Session: r.SessionID, User: turns[i].User})
			if err != nil || len(stored) != 1 || stored[0].ID != r.TurnID {
				t.Errorf("turn %d: stored %d turns (%v), want exactly this one", i, len(stored), err)
			}
		}
		slow.mu.Lock()
		answered := len(slow.seen)
		slow.mu.Unlock()
		if answered != n {
			t.Errorf("engine answered %d messages, want %d (one each)", answered, n)
		}
		spilled := rig.count(dialogue.SpillAnswered) + rig.count(dialogue.SpillQueued)
		// Every turn that went through the queue can be fetched by its id, also those
		// answered while their request waited; the others cannot.
		fetchable := 0
		for i := range n {
			r, err := rig.e.QueuedTurn(context.Background(), bank, turns[i].User, replies[i].TurnID)
			switch {
			case err == nil && r.Answer == fmt.Sprintf("m%d (after 0)", i):
				fetchable++
			case err != nil && !errors.Is(err, dialogue.ErrNotFound):
				t.Errorf("QueuedTurn %d: %v", i, err)
			}
		}
		if fetchable != spilled {
			t.Errorf("%d turns fetchable by id, want the %d spilled", fetchable, spilled)
		}
		t.Logf("%d turns: %d spilled (%d answered while waiting, %d polled), %d worked from the queue",
			n, spilled, rig.count(dialogue.SpillAnswered), queued, rig.worked.Load())
		if spilled == 0 || queued == 0 {
			t.Errorf("spilled %d, polled %d: the burst should have used the queue and run past the wait", spilled, queued)
		}
		if int(rig.worked.Load()) != spilled {
			t.Errorf("worked %d queued turns, want %d", rig.worked.Load(), spilled)
		}
	})
}

// A queued turn that is delivered again after it was answered and stored (the worker
// hung before acknowledging it) is acknowledged without a second answer, and its
// requester gets one reply.
func TestSpillRedeliveredTurnAnsweredOnce(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		slow := &echo{delay: 300 * time.Millisecond, started: make(chan string, 16)}
		var deliveries atomic.Int64
		hang := make(chan struct{})
		// The first delivery of a queued turn does the work and then hangs past
		// AckWait without acknowledging, as a worker that died there would.
		wrap := func(h queue.Handler) queue.Handler {
			return func(ctx context.Context, m queue.Msg) error {
				err := h(ctx, m)
				if deliveries.Add(1) == 1 {
					select {
					case <-hang:
					case <-ctx.Done():
					}
				}
				return err
			}
		}
		rig := startSpill(t, b, dialogue.Config{Workers: 2, Backlog: 1}, queue.Config{AckWait: time.Second},
			dialogue.Spill{Wait: 10 * time.Second, TurnTimeout: 900 * time.Millisecond}, slow, wrap)
		t.Cleanup(func() { close(hang) }) // before the queue drains

		// Two turns take the workers, one the backlog, the fourth is queued.
		streams := fill(t, rig.e, slow, 2)
		r, err := rig.e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "filler", Message: "queued"})
		if err != nil {
			t.Fatal(err)
		}
		replies := []dialogue.Reply{r}
		for _, ch := range streams {
			replies = append(replies, doneOf(t, ch))
		}
		if rig.count(dialogue.SpillAnswered) != 1 {
			t.Fatalf("spilled and answered: %d, want 1", rig.count(dialogue.SpillAnswered))
		}
		// Wait for the redelivery to be worked and acknowledged.
		deadline := time.Now().Add(10 * time.Second)
		for deliveries.Load() < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if deliveries.Load() < 2 {
			t.Fatal("the unacknowledged turn was not delivered again")
		}
		waitIdle(t, rig.q)
		slow.mu.Lock()
		seen := append([]string(nil), slow.seen...)
		slow.mu.Unlock()
		if len(seen) != 4 {
			t.Errorf("answered %v, want each of the 4 messages once", seen)
		}
		if rig.worked.Load() != 1 {
			t.Errorf("worked %d queued turns, want 1", rig.worked.Load())
		}
		for i, r := range replies {
			stored, err := rig.store.Load(context.Background(), session.Ref{Tenant: bank, Session: r.SessionID, User: "filler"})
			if err != nil || len(stored) != 1 || r.Duplicate {
				t.Errorf("turn %d: %d stored (%v), duplicate %v; want one, not a duplicate", i, len(stored), err, r.Duplicate)
			}
		}
	})
}

// waitIdle waits until q has nothing pending or unacknowledged.
func waitIdle(t *testing.T, q *queue.Queue) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, err := q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		idle := true
		for _, s := range stats {
			if s.Pending > 0 || s.AckPending > 0 {
				idle = false
			}
		}
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not idle after 10s: %+v", stats)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// When the queue is at its cap too, a turn is refused with ErrQueueFull, and every turn
// that was accepted is still answered and stored.
func TestSpillQueueFull(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		slow := &echo{delay: 150 * time.Millisecond}
		rig := startSpill(t, b, dialogue.Config{Workers: 1, Backlog: 1}, queue.Config{MaxMsgs: 2, MaxMsgsPerTenant: 2},
			dialogue.Spill{Wait: 10 * time.Second}, slow, nil)
		const n = 12
		replies := make([]dialogue.Reply, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				replies[i], errs[i] = rig.e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: fmt.Sprintf("m%d", i)})
			})
		}
		wg.Wait()
		full, ok := 0, 0
		for i := range n {
			switch {
			case errors.Is(errs[i], dialogue.ErrQueueFull):
				full++
			case errs[i] != nil:
				t.Errorf("turn %d: %v", i, errs[i])
			default:
				ok++
				stored, err := rig.store.Load(context.Background(), session.Ref{Tenant: bank, Session: replies[i].SessionID, User: "u1"})
				if err != nil || len(stored) != 1 || stored[0].Answer != fmt.Sprintf("m%d (after 0)", i) {
					t.Errorf("turn %d: stored %+v (%v), want its one turn", i, stored, err)
				}
			}
		}
		slow.mu.Lock()
		answered := len(slow.seen)
		slow.mu.Unlock()
		t.Logf("%d turns: %d answered, %d refused queue_full", n, ok, full)
		if full == 0 {
			t.Error("no turn was refused with ErrQueueFull")
		}
		if answered != ok {
			t.Errorf("engine answered %d messages, want %d: each accepted turn once, no refused one", answered, ok)
		}
		if rig.count(dialogue.SpillFull) != full {
			t.Errorf("full outcomes counted %d, want %d", rig.count(dialogue.SpillFull), full)
		}
	})
}

// unrecordedStore cannot write the record of a queued turn, as when the session store
// times out on that one call.
type unrecordedStore struct{ dialogue.Store }

func (unrecordedStore) SaveQueued(context.Context, session.QueuedTurn, time.Duration) error {
	return fmt.Errorf("%w: record refused by the test", session.ErrUnavailable)
}

// A turn whose queued record cannot be written is refused before it is published: its
// 202 would carry a turn id that polling answers 404 for.
func TestSpillUnrecordedTurnIsRefused(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		a := &echo{gate: make(chan struct{}), started: make(chan string, 4)}
		rig := startSpillOn(t, b, dialogue.Config{Workers: 1, Backlog: 1}, queue.Config{}, dialogue.Spill{Wait: 5 * time.Second}, a, nil,
			zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), func(s dialogue.Store) dialogue.Store { return unrecordedStore{s} })
		var release sync.Once
		t.Cleanup(func() { release.Do(func() { close(a.gate) }) }) // before the rig stops
		streams := fill(t, rig.e, a, 1)

		_, err := rig.e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hello", ClientMsgID: "c1"})
		if !errors.Is(err, dialogue.ErrUnavailable) {
			t.Fatalf("Submit = %v, want ErrUnavailable", err)
		}
		ch, err := rig.e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hello again"})
		if !errors.Is(err, dialogue.ErrUnavailable) || ch != nil {
			t.Fatalf("Stream = %v, %v, want no stream and ErrUnavailable", ch, err)
		}
		stats, err := rig.q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range stats {
			if s.Pending != 0 || s.AckPending != 0 {
				t.Errorf("tenant %s: %d pending, %d being worked; want nothing published", s.Tenant, s.Pending, s.AckPending)
			}
		}
		release.Do(func() { close(a.gate) })
		for _, s := range streams {
			doneOf(t, s)
		}
	})
}

// A streamed turn that is queued sends a meta event marked queued, then its answer,
// or, when the wait runs out, a queued event; its turn can then be fetched.
func TestSpillStream(t *testing.T) {
	b := queuetest.Backends[0]
	slow := &echo{delay: 200 * time.Millisecond, started: make(chan string, 16)}
	rig := startSpill(t, b, dialogue.Config{Workers: 1, Backlog: 1}, queue.Config{},
		dialogue.Spill{Wait: 250 * time.Millisecond}, slow, nil)
	streams := fill(t, rig.e, slow, 1)
	turn := dialogue.Turn{Tenant: bank, User: "u2", Message: "streamed"}
	events, err := rig.e.Stream(context.Background(), turn)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []dialogue.EventKind
	var meta, last dialogue.Event
	for ev := range events {
		kinds = append(kinds, ev.Kind)
		if ev.Kind == dialogue.EventMeta {
			meta = ev
		}
		last = ev
	}
	for _, ch := range streams {
		doneOf(t, ch)
	}
	if len(kinds) != 2 || !meta.Queued || last.Kind != dialogue.EventQueued || last.TurnID != meta.TurnID {
		t.Fatalf("events %v, meta %+v, last %+v: want a queued meta then a queued event", kinds, meta, last)
	}
	r := settle(t, rig.e, turn, dialogue.Reply{Queued: true, TurnID: last.TurnID})
	if r.Answer != "streamed (after 0)" || r.SessionID != meta.SessionID {
		t.Errorf("fetched %+v", r)
	}
}

// A queued turn is fetched only by the user who sent it, in its tenant.
func TestQueuedTurnIsTheSendersOnly(t *testing.T) {
	b := queuetest.Backends[0]
	gate := make(chan struct{})
	held := &echo{gate: gate, started: make(chan string, 16)}
	rig := startSpill(t, b, dialogue.Config{Workers: 1, Backlog: 1}, queue.Config{},
		dialogue.Spill{Wait: 100 * time.Millisecond}, held, nil)
	streams := fill(t, rig.e, held, 1)
	turn := dialogue.Turn{Tenant: bank, User: "alice", Message: "mine"}
	r, err := rig.e.Submit(context.Background(), turn)
	if err != nil || !r.Queued {
		t.Fatalf("got %+v, %v; want it queued", r, err)
	}
	for _, c := range []struct {
		tenant tenant.ID
		user   string
	}{{bank, "mallory"}, {shop, "alice"}} {
		if _, err := rig.e.QueuedTurn(context.Background(), c.tenant, c.user, r.TurnID); !errors.Is(err, dialogue.ErrNotFound) {
			t.Errorf("%s/%s fetched alice's turn: %v, want ErrNotFound", c.tenant, c.user, err)
		}
	}
	if got, err := rig.e.QueuedTurn(context.Background(), bank, "alice", r.TurnID); err != nil || !got.Queued {
		t.Errorf("alice, while pending: %+v, %v; want queued", got, err)
	}
	if _, err := rig.e.QueuedTurn(context.Background(), bank, "alice", session.NewTurnID()); !errors.Is(err, dialogue.ErrNotFound) {
		t.Errorf("unknown turn id: %v, want ErrNotFound", err)
	}
	close(gate)
	for _, ch := range streams {
		doneOf(t, ch)
	}
	if got := settle(t, rig.e, turn, r); got.Answer != "mine (after 0)" {
		t.Errorf("alice, once answered: %+v", got)
	}
}

// One tenant's burst through the queue does not hold back another tenant's turn: it is
// answered long before the burst is worked off.
func TestSpillFairAcrossTenants(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		slow := &echo{delay: 30 * time.Millisecond}
		rig := startSpill(t, b, dialogue.Config{Workers: 2, Backlog: 2}, queue.Config{},
			dialogue.Spill{Wait: 30 * time.Second}, slow, nil)
		const burst = 60
		var done atomic.Int64
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				if _, err := rig.e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: fmt.Sprintf("b%d", i)}); err != nil {
					t.Errorf("bank turn %d: %v", i, err)
				}
				done.Add(1)
			})
		}
		time.Sleep(100 * time.Millisecond) // the burst is queued
		r, err := rig.e.Submit(context.Background(), dialogue.Turn{Tenant: shop, User: "s1", Message: "shop"})
		before := done.Load()
		wg.Wait()
		if err != nil || r.Answer != "shop (after 0)" {
			t.Fatalf("shop turn: %+v, %v", r, err)
		}
		t.Logf("the shop's turn was answered when %d of the bank's %d were", before, burst)
		if before > burst/2 {
			t.Errorf("the shop's turn waited for %d of the bank's %d turns", before, burst)
		}
	})
}

// A follow-up in a session whose turn is in progress here waits behind it even when the
// backlog is full: it is not spilled to where it could overtake that turn.
func TestFollowUpOfBusySessionIsNotSpilled(t *testing.T) {
	gate := make(chan struct{}, 8)
	held := &echo{gate: gate, started: make(chan string, 8)}
	rig := startSpill(t, queuetest.Backends[0], dialogue.Config{Workers: 1, Backlog: 1}, queue.Config{},
		dialogue.Spill{Wait: 5 * time.Second}, held, nil)
	first, err := rig.e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "first"})
	if err != nil {
		t.Fatal(err)
	}
	<-held.started
	var sessionID string
	for ev := range first {
		if ev.Kind == dialogue.EventMeta {
			sessionID = ev.SessionID
			break
		}
	}
	other, err := rig.e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u2", Message: "other"}) // fills the backlog
	if err != nil {
		t.Fatal(err)
	}
	followUp, err := rig.e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", SessionID: sessionID, Message: "second"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		gate <- struct{}{}
	}
	doneOf(t, first)
	doneOf(t, other)
	if r := doneOf(t, followUp); r.Answer != "second (after 1)" {
		t.Errorf("follow-up: %+v, want it answered after the first turn, with it in its history", r)
	}
	if n := rig.count(dialogue.SpillAnswered) + rig.count(dialogue.SpillQueued); n != 0 {
		t.Errorf("%d turns spilled, want none", n)
	}
}
