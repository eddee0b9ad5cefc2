package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/tenant"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// config returns a configuration of b private to this test (see queuetest.Place).
func config(t *testing.T, b queuetest.Backend) Config {
	t.Helper()
	p := b.Place(t)
	c := Config{Mode: p.Mode, DataDir: p.DataDir, URL: p.URL, Stream: p.Stream, Subject: p.Subject}
	c.Defaults()
	return c
}

// open opens a Queue on cfg, drained when the test ends.
func open(t *testing.T, cfg Config, tenants ...tenant.ID) *Queue {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, tenants, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := q.Drain(ctx); err != nil {
			t.Errorf("Drain: %v", err)
		}
	})
	return q
}

// consume runs q.Consume in the background. The returned stop cancels it and returns
// Consume's result; it also runs when the test ends.
func consume(t *testing.T, q *Queue, capacity int, h Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() { result <- q.Consume(ctx, capacity, h) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-result:
			case <-time.After(10 * time.Second):
				err = errors.New("Consume did not return within 10s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func publish(t *testing.T, q *Queue, tn tenant.ID, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := q.Publish(ctx, tn, id, []byte("data "+id), map[string]string{"Turn": id}); err != nil {
		t.Fatalf("Publish(%s, %s): %v", tn, id, err)
	}
}

// record keeps the messages a handler saw, in order.
type record struct {
	mu      sync.Mutex
	seen    []Msg
	changed chan struct{} // closed and replaced on every add
}

func newRecord() *record { return &record{changed: make(chan struct{})} }

func (r *record) add(m Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, m)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *record) snapshot() []Msg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// waitFor waits until cond holds for the messages seen, failing the test after d.
func (r *record) waitFor(t *testing.T, d time.Duration, what string, cond func([]Msg) bool) []Msg {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		seen, changed := slices.Clone(r.seen), r.changed
		r.mu.Unlock()
		if cond(seen) {
			return seen
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s: not within %s; saw %d messages: %v", what, d, len(seen), ids(seen))
		}
	}
}

func atLeast(n int) func([]Msg) bool { return func(s []Msg) bool { return len(s) >= n } }

func ids(ms []Msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m.Tenant) + "/" + m.ID
	}
	return out
}

// exactlyOnce fails the test unless every id in want was seen exactly once and nothing
// else was seen.
func exactlyOnce(t *testing.T, seen []Msg, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, m := range seen {
		count[m.ID]++
	}
	for _, id := range want {
		if count[id] != 1 {
			t.Errorf("message %s handled %d times, want 1", id, count[id])
		}
		delete(count, id)
	}
	for id, n := range count {
		t.Errorf("message %s handled %d times, want never", id, n)
	}
}

func streamMsgs(t *testing.T, q *Queue) uint64 {
	t.Helper()
	info, err := q.stream.Info(context.Background())
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

const tenantA, tenantB tenant.ID = "bank-a", "shop-b"

// A repeated Nats-Msg-Id stores nothing new.
func TestPublishDedupe(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		q := open(t, config(t, b), tenantA)
		ctx := context.Background()
		for i, wantDup := range []bool{false, true} {
			dup, err := q.Publish(ctx, tenantA, "turn-1", []byte("hello"), nil)
			if err != nil || dup != wantDup {
				t.Fatalf("Publish #%d = (dup %v, %v), want (dup %v, nil)", i+1, dup, err, wantDup)
			}
		}
		if got := streamMsgs(t, q); got != 1 {
			t.Fatalf("stream holds %d messages, want 1", got)
		}
	})
}

func TestPublishRejects(t *testing.T) {
	q := open(t, config(t, queuetest.Backends[0]), tenantA)
	ctx := context.Background()
	tests := []struct {
		name string
		tn   tenant.ID
		id   string
		hdr  map[string]string
	}{
		{"tenant not consumed", tenantB, "x", nil},
		{"empty id", tenantA, "", nil},
		{"reserved header", tenantA, "x", map[string]string{"Nats-Expected-Stream": "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := q.Publish(ctx, tt.tn, tt.id, []byte("x"), tt.hdr); err == nil {
				t.Fatal("Publish succeeded, want an error")
			}
		})
	}
	if got := streamMsgs(t, q); got != 0 {
		t.Fatalf("stream holds %d messages, want 0", got)
	}
}

// While the server is unreachable a publish fails at once with ErrDisconnected rather
// than waiting out its deadline.
func TestPublishDisconnected(t *testing.T) {
	cfg := config(t, queuetest.Backends[0])
	q, err := Open(context.Background(), cfg, []tenant.ID{tenantA}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = q.Drain(context.Background()) }()
	q.srv.Shutdown()
	q.srv.WaitForShutdown()
	for q.nc.IsConnected() {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = q.Publish(ctx, tenantA, "x", []byte("x"), nil)
	if !errors.Is(err, ErrDisconnected) || time.Since(start) > time.Second {
		t.Fatalf("Publish: %v after %s, want ErrDisconnected at once", err, time.Since(start))
	}
}

// Past a cap, publishing is refused with ErrFull and what was accepted is still
// delivered, each message once.
func TestFull(t *testing.T) {
	// Tenant A fills a cap with 3 messages; then tenant B publishes one, which only
	// the per-tenant cap lets through.
	caps := []struct {
		name               string
		maxMsgs, perTenant int64
		otherAccepted      bool
	}{
		{name: "stream cap", maxMsgs: 3, perTenant: 3, otherAccepted: false},
		{name: "tenant cap", maxMsgs: 10, perTenant: 3, otherAccepted: true},
	}
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		for _, c := range caps {
			t.Run(c.name, func(t *testing.T) {
				cfg := config(t, b)
				cfg.MaxMsgs, cfg.MaxMsgsPerTenant = c.maxMsgs, c.perTenant
				q := open(t, cfg, tenantA, tenantB)
				ctx := context.Background()
				var accepted []string
				for i := range 3 {
					id := fmt.Sprintf("a-%d", i)
					publish(t, q, tenantA, id)
					accepted = append(accepted, id)
				}
				if _, err := q.Publish(ctx, tenantA, "a-3", []byte("x"), nil); !errors.Is(err, ErrFull) {
					t.Fatalf("Publish past the cap = %v, want ErrFull", err)
				}
				_, err := q.Publish(ctx, tenantB, "b-0", []byte("x"), nil)
				switch {
				case c.otherAccepted && err != nil:
					t.Fatalf("Publish for another tenant = %v, want accepted: the cap is per tenant", err)
				case c.otherAccepted:
					accepted = append(accepted, "b-0")
				case !errors.Is(err, ErrFull):
					t.Fatalf("Publish for another tenant = %v, want ErrFull: the stream is full", err)
				}

				rec := newRecord()
				stop := consume(t, q, 2, func(_ context.Context, m Msg) error { rec.add(m); return nil })
				rec.waitFor(t, 10*time.Second, "all accepted messages handled", atLeast(len(accepted)))
				time.Sleep(300 * time.Millisecond) // room for a wrong extra delivery
				if err := stop(); err != nil {
					t.Fatalf("Consume: %v", err)
				}
				exactlyOnce(t, rec.snapshot(), accepted)
				if got := streamMsgs(t, q); got != 0 {
					t.Fatalf("stream holds %d messages after all were acknowledged, want 0", got)
				}
			})
		}
	})
}

// Work done but never acknowledged is delivered again, with Delivered > 1.
func TestRedelivery(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		t.Run("consumer dies before acking", func(t *testing.T) {
			cfg := config(t, b)
			cfg.AckWait = time.Second
			q1 := open(t, cfg, tenantA)
			publish(t, q1, tenantA, "turn-1")

			worked := newRecord()
			release := make(chan struct{})
			stop1 := consume(t, q1, 1, func(ctx context.Context, m Msg) error {
				worked.add(m) // the work is stored…
				<-release     // …and the process dies before the ack
				return nil
			})
			first := worked.waitFor(t, 5*time.Second, "first delivery", atLeast(1))[0]
			if first.Delivered != 1 {
				t.Fatalf("first delivery has Delivered %d, want 1", first.Delivered)
			}
			crash(q1)
			close(release)
			_ = stop1()

			q2 := open(t, cfg, tenantA)
			again := newRecord()
			consume(t, q2, 1, func(_ context.Context, m Msg) error { again.add(m); return nil })
			m := again.waitFor(t, 10*time.Second, "redelivery", atLeast(1))[0]
			if m.ID != "turn-1" || m.Delivered < 2 {
				t.Fatalf("redelivered %s with Delivered %d, want turn-1 with Delivered > 1", m.ID, m.Delivered)
			}
			if string(m.Data) != "data turn-1" || m.Header["Turn"] != "turn-1" {
				t.Fatalf("redelivered data %q header %v, want the published ones", m.Data, m.Header)
			}
		})
		t.Run("handler fails", func(t *testing.T) {
			cfg := config(t, b)
			cfg.AckWait = time.Second
			q := open(t, cfg, tenantA)
			publish(t, q, tenantA, "turn-1")
			rec := newRecord()
			consume(t, q, 1, func(_ context.Context, m Msg) error {
				rec.add(m)
				if m.Delivered == 1 {
					return errors.New("model unavailable")
				}
				return nil
			})
			seen := rec.waitFor(t, 10*time.Second, "redelivery after a failure", atLeast(2))
			if seen[1].ID != "turn-1" || seen[1].Delivered != 2 {
				t.Fatalf("second delivery %s with Delivered %d, want turn-1 with 2", seen[1].ID, seen[1].Delivered)
			}
		})
	})
}

// crash ends q as a killed process would: no acks, no drain. The embedded server goes
// down with it, as it lives in the same process.
func crash(q *Queue) {
	q.nc.Close()
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
}

// A tenant's backlog does not starve another tenant.
func TestFairness(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		q := open(t, config(t, b), tenantA, tenantB)
		for i := range 200 {
			publish(t, q, tenantA, fmt.Sprintf("a-%03d", i))
		}
		for i := range 5 {
			publish(t, q, tenantB, fmt.Sprintf("b-%d", i))
		}
		rec := newRecord()
		stop := consume(t, q, 2, func(_ context.Context, m Msg) error {
			time.Sleep(5 * time.Millisecond)
			rec.add(m)
			return nil
		})
		countB := func(s []Msg) int {
			n := 0
			for _, m := range s {
				if m.Tenant == tenantB {
					n++
				}
			}
			return n
		}
		seen := rec.waitFor(t, 20*time.Second, "tenant B's 5 messages handled", func(s []Msg) bool { return countB(s) == 5 })
		if err := stop(); err != nil {
			t.Fatalf("Consume: %v", err)
		}
		if len(seen) > 20 {
			t.Fatalf("B's 5 messages were done only after %d handled, want within 20: %v", len(seen), ids(seen))
		}
		t.Logf("B's 5 messages done after %d handled", len(seen))
	})
}

// Drain lets in-flight handlers finish and be acknowledged; after a restart nothing
// they handled comes back.
func TestDrainInFlight(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		cfg := config(t, b)
		cfg.AckWait = 2 * time.Second
		leaks := goleak.IgnoreCurrent()
		q := open(t, cfg, tenantA)
		var all []string
		for i := range 6 {
			id := fmt.Sprintf("turn-%d", i)
			publish(t, q, tenantA, id)
			all = append(all, id)
		}
		started, finished := newRecord(), newRecord()
		release := make(chan struct{})
		stop := consume(t, q, 3, func(ctx context.Context, m Msg) error {
			started.add(m)
			<-release
			time.Sleep(50 * time.Millisecond) // storing the work
			finished.add(m)
			return nil
		})
		started.waitFor(t, 5*time.Second, "3 handlers running", atLeast(3))

		drained := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			drained <- q.Drain(ctx)
		}()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with handlers still running", err)
		case <-time.After(200 * time.Millisecond):
		}
		close(release)
		if err := <-drained; err != nil {
			t.Fatalf("Drain: %v", err)
		}
		if err := stop(); err != nil {
			t.Fatalf("Consume after Drain: %v", err)
		}
		first := finished.snapshot()
		if len(first) != 3 || len(started.snapshot()) != 3 {
			t.Fatalf("before the drain: %d handlers started and %d finished, want 3 and 3", len(started.snapshot()), len(first))
		}
		goleak.VerifyNone(t, leaks)

		// Restart on the same data directory or stream.
		q2 := open(t, cfg, tenantA)
		ci, err := q2.consumers[tenantA].Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// The handled messages are gone. At most one more is still counted as ack
		// pending: either the one fetched but not started, handed back (Nak) at the
		// drain, or one the server sent at the very moment the pull was cancelled,
		// which only AckWait brings back.
		remaining := uint64(len(all) - len(first))
		if ci.NumAckPending > 1 || ci.NumPending+uint64(ci.NumAckPending) != remaining {
			t.Fatalf("after restart: %d pending, %d ack pending; want %d in all, at most 1 ack pending", ci.NumPending, ci.NumAckPending, remaining)
		}
		rest := newRecord()
		consume(t, q2, 3, func(_ context.Context, m Msg) error { rest.add(m); return nil })
		rest.waitFor(t, cfg.AckWait+5*time.Second, "the rest handled", atLeast(int(remaining)))
		time.Sleep(300 * time.Millisecond) // room for a wrong redelivery
		second := rest.snapshot()
		exactlyOnce(t, append(first, second...), all)
		for _, m := range second {
			// One message per tenant may have been fetched and handed back unstarted at
			// the drain; it comes back with Delivered 2. None handled before may.
			if m.Delivered > 1 && slices.ContainsFunc(first, func(f Msg) bool { return f.ID == m.ID }) {
				t.Errorf("%s handled before the drain was delivered again", m.ID)
			}
		}
		if got := streamMsgs(t, q2); got != 0 {
			t.Fatalf("stream holds %d messages, want 0", got)
		}
	})
}

// Two replicas consuming the same tenant split the work, each message once.
func TestReplicasSplitWork(t *testing.T) {
	// The embedded server lives inside one Queue's process: two replicas need a
	// shared server, the external one.
	b := queuetest.Backends[1]
	cfg := config(t, b)
	q1, q2 := open(t, cfg, tenantA), open(t, cfg, tenantA)
	var all []string
	for i := range 40 {
		id := fmt.Sprintf("turn-%02d", i)
		publish(t, q1, tenantA, id)
		all = append(all, id)
	}
	rec1, rec2, both := newRecord(), newRecord(), newRecord()
	handler := func(rec *record) Handler {
		return func(_ context.Context, m Msg) error {
			time.Sleep(10 * time.Millisecond)
			rec.add(m)
			both.add(m)
			return nil
		}
	}
	stop1 := consume(t, q1, 2, handler(rec1))
	stop2 := consume(t, q2, 2, handler(rec2))
	both.waitFor(t, 10*time.Second, "all handled", atLeast(len(all)))
	time.Sleep(300 * time.Millisecond)
	if err := errors.Join(stop1(), stop2()); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	exactlyOnce(t, both.snapshot(), all)
	n1, n2 := len(rec1.snapshot()), len(rec2.snapshot())
	if n1 == 0 || n2 == 0 {
		t.Fatalf("replica 1 handled %d and replica 2 handled %d, want both some", n1, n2)
	}
	t.Logf("replica 1 handled %d, replica 2 handled %d", n1, n2)
}

// A tenant's messages keep flowing: the pull iterator's bookkeeping can miss sending
// the next pull request when a reply arrives very fast, and without the short first
// wait the consumer then sat until the missed heartbeat (about 10s).
func TestNoPullStall(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		q := open(t, config(t, b), tenantA)
		const n = 300
		for i := range n {
			publish(t, q, tenantA, fmt.Sprint(i))
		}
		var last time.Time
		var worst time.Duration
		rec := newRecord()
		consume(t, q, 1, func(_ context.Context, m Msg) error {
			now := time.Now()
			if !last.IsZero() {
				worst = max(worst, now.Sub(last))
			}
			last = now
			rec.add(m)
			return nil
		})
		rec.waitFor(t, 30*time.Second, "all handled", atLeast(n))
		if worst > 2*time.Second {
			t.Fatalf("the consumer stalled for %s between two messages", worst)
		}
		t.Logf("longest gap between two messages: %s", worst)
	})
}

// Drain past its deadline cancels the handlers; a handler that gives up hands its
// message back, and it is worked again after a restart without waiting out AckWait.
func TestDrainDeadline(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		cfg := config(t, b)
		q := open(t, cfg, tenantA)
		publish(t, q, tenantA, "turn-1")
		started := newRecord()
		consume(t, q, 1, func(ctx context.Context, m Msg) error {
			started.add(m)
			<-ctx.Done() // a slow model call, cut short
			return ctx.Err()
		})
		started.waitFor(t, 5*time.Second, "handler running", atLeast(1))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := q.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Drain = %v, want context.DeadlineExceeded", err)
		}

		q2 := open(t, cfg, tenantA)
		again := newRecord()
		consume(t, q2, 1, func(_ context.Context, m Msg) error { again.add(m); return nil })
		m := again.waitFor(t, 5*time.Second, "the message worked again", atLeast(1))[0]
		if m.ID != "turn-1" || m.Delivered != 2 {
			t.Fatalf("worked %s with Delivered %d, want turn-1 with 2", m.ID, m.Delivered)
		}
	})
}
