package dialogue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/faq"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	_ dialogue.Store    = (*session.MemoryStore)(nil)
	_ dialogue.Store    = (*session.RedisStore)(nil)
	_ dialogue.Answerer = (*faq.FAQ)(nil)
	_ dialogue.Tenants  = (*tenant.Registry)(nil)
)

const bank tenant.ID = "bank"

type tenants map[tenant.ID]*tenant.Tenant

func (ts tenants) Get(id tenant.ID) (*tenant.Tenant, error) {
	if t, ok := ts[id]; ok {
		return t, nil
	}
	return nil, tenant.ErrUnknown
}

// echo answers with the message and how many earlier turns it was shown; it can be made
// slow or failing, and records the order it saw messages in.
type echo struct {
	delay time.Duration
	fail  error
	gate  chan struct{} // if set, each answer waits for a value
	// started, if set, receives each message as its answer starts (before the gate).
	started chan string

	mu   sync.Mutex
	seen []string
}

func (e *echo) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	if e.started != nil {
		e.started <- req.Message
	}
	if e.gate != nil {
		select {
		case <-e.gate:
		case <-ctx.Done():
			return nlpclient.Answer{}, ctx.Err()
		}
	}
	if e.delay > 0 {
		time.Sleep(e.delay)
	}
	e.mu.Lock()
	e.seen = append(e.seen, req.Message)
	e.mu.Unlock()
	if e.fail != nil {
		return nlpclient.Answer{}, e.fail
	}
	return nlpclient.Answer{
		Text:       fmt.Sprintf("%s (after %d)", req.Message, len(req.History)),
		Source:     nlpclient.SourceFAQ,
		Confidence: 0.9,
		Citations:  []nlpclient.Citation{{ID: "e1", Question: "q"}},
	}, nil
}

// start runs an engine with a memory store until the test ends.
func start(t *testing.T, cfg dialogue.Config, a dialogue.Answerer) (*dialogue.Engine, *session.MemoryStore) {
	t.Helper()
	store, err := session.NewMemoryStore(session.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := dialogue.New(cfg, dialogue.Deps{
		Store:     store,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: a},
		Tenants:   tenants{bank: {ID: bank, FallbackAnswer: "busy, try later"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, store
}

func TestSubmitStoresAndRemembers(t *testing.T) {
	e, store := start(t, dialogue.Config{Workers: 2, Backlog: 8}, &echo{})
	ctx := context.Background()
	r1, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.SessionID == "" || r1.TurnID == "" || r1.Answer != "hello (after 0)" || r1.Source != "faq" || len(r1.Citations) != 1 {
		t.Fatalf("first reply: got %+v", r1)
	}
	r2, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", SessionID: r1.SessionID, Message: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r2.Answer, "again (after 1)"; got != want {
		t.Errorf("second reply: got %q, want %q", got, want)
	}
	turns, err := store.Load(ctx, session.Ref{Tenant: bank, Session: r1.SessionID, User: "u1"})
	if err != nil || len(turns) != 2 {
		t.Fatalf("stored turns: got %d, %v; want 2", len(turns), err)
	}
	if turns[0].User != "hello" || turns[1].ID != r2.TurnID {
		t.Errorf("stored: got %+v", turns)
	}
}

func TestSubmitErrors(t *testing.T) {
	e, _ := start(t, dialogue.Config{Workers: 1, Backlog: 4}, &echo{})
	ctx := context.Background()
	r, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "mine"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		turn dialogue.Turn
		want error
	}{
		{"empty message", dialogue.Turn{Tenant: bank, User: "u1"}, dialogue.ErrInvalid},
		{"bad session id", dialogue.Turn{Tenant: bank, User: "u1", SessionID: "a b", Message: "x"}, dialogue.ErrInvalid},
		{"unknown session", dialogue.Turn{Tenant: bank, User: "u1", SessionID: "abcdefgh12345678", Message: "x"}, dialogue.ErrNotFound},
		{"another user's session", dialogue.Turn{Tenant: bank, User: "u2", SessionID: r.SessionID, Message: "x"}, dialogue.ErrNotFound},
		{"unknown tenant", dialogue.Turn{Tenant: "other", User: "u1", SessionID: r.SessionID, Message: "x"}, dialogue.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Submit(ctx, tc.turn)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFallbackWhenEngineFails(t *testing.T) {
	e, _ := start(t, dialogue.Config{Workers: 1, Backlog: 4}, &echo{fail: nlpclient.ErrUnavailable})
	r, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source != "fallback" || r.Answer != "busy, try later" {
		t.Errorf("got %q %q, want the tenant's fallback", r.Source, r.Answer)
	}
}

func TestOverloadedRefusesAtOnce(t *testing.T) {
	gate := make(chan struct{})
	e, _ := start(t, dialogue.Config{Workers: 1, Backlog: 2}, &echo{gate: gate})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// One turn in progress and two waiting fill the engine; each is its own session.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() {
			_, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: fmt.Sprint("m", i)})
			errs <- err
		})
		time.Sleep(20 * time.Millisecond) // let each be accepted before the next
	}
	begin := time.Now()
	_, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "one too many"})
	if !errors.Is(err, dialogue.ErrOverloaded) {
		t.Errorf("fourth turn: got %v, want ErrOverloaded", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("refusal took %s, want at once", d)
	}
	for range 3 {
		gate <- struct{}{}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("accepted turn failed: %v", err)
		}
	}
}

func TestTurnsOfOneSessionRunInOrder(t *testing.T) {
	a := &echo{delay: 2 * time.Millisecond}
	e, store := start(t, dialogue.Config{Workers: 8, Backlog: 64}, a)
	ctx := context.Background()
	r, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "m00"})
	if err != nil {
		t.Fatal(err)
	}
	// Fire quick messages; each is accepted before the next is sent, as a client sending
	// them one after another would, but none waits for the previous answer.
	const n = 20
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		accepted := make(chan struct{})
		wg.Go(func() {
			ch, err := e.Stream(ctx, dialogue.Turn{Tenant: bank, User: "u1", SessionID: r.SessionID, Message: fmt.Sprintf("m%02d", i)})
			close(accepted)
			if err != nil {
				t.Error(err)
				return
			}
			for range ch {
			}
		})
		<-accepted
	}
	wg.Wait()
	turns, err := store.Load(ctx, session.Ref{Tenant: bank, Session: r.SessionID, User: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(turns) != n+1 {
		t.Fatalf("stored %d turns, want %d", len(turns), n+1)
	}
	for i, turn := range turns {
		if want := fmt.Sprintf("m%02d", i); turn.User != want {
			t.Fatalf("turn %d is %q, want %q (order lost)", i, turn.User, want)
		}
		if want := fmt.Sprintf("m%02d (after %d)", i, min(i, 6)); turn.Answer != want {
			t.Errorf("turn %d answer %q, want %q (did not see the turns before it)", i, turn.Answer, want)
		}
	}
}

func TestRetryWithClientMsgIDStoresOnce(t *testing.T) {
	a := &echo{}
	e, store := start(t, dialogue.Config{Workers: 4, Backlog: 64}, a)
	ctx := context.Background()
	r, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "start"})
	if err != nil {
		t.Fatal(err)
	}
	turn := dialogue.Turn{Tenant: bank, User: "u1", SessionID: r.SessionID, Message: "pay", ClientMsgID: "c-1"}
	var wg sync.WaitGroup
	replies := make([]dialogue.Reply, 5)
	for i := range replies {
		wg.Go(func() {
			var err error
			replies[i], err = e.Submit(ctx, turn)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	dups := 0
	for _, rep := range replies {
		if rep.TurnID != replies[0].TurnID {
			t.Errorf("turn ids differ: %q vs %q", rep.TurnID, replies[0].TurnID)
		}
		if rep.Duplicate {
			dups++
		}
	}
	if dups != len(replies)-1 {
		t.Errorf("%d replies marked duplicate, want %d", dups, len(replies)-1)
	}
	turns, _ := store.Load(ctx, session.Ref{Tenant: bank, Session: r.SessionID, User: "u1"})
	if len(turns) != 2 {
		t.Errorf("stored %d turns, want 2", len(turns))
	}
	a.mu.Lock()
	answered := len(a.seen)
	a.mu.Unlock()
	if answered != 2 {
		t.Errorf("engine answered %d times, want 2 (start + pay once)", answered)
	}
}

func TestStreamEvents(t *testing.T) {
	e, _ := start(t, dialogue.Config{Workers: 1, Backlog: 4}, &echo{})
	msg := strings.Repeat("长", 40)
	ch, err := e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []dialogue.EventKind
	var text strings.Builder
	var done dialogue.Reply
	for ev := range ch {
		kinds = append(kinds, ev.Kind)
		switch ev.Kind {
		case dialogue.EventDelta:
			text.WriteString(ev.Delta)
		case dialogue.EventDone:
			done = *ev.Reply
		case dialogue.EventError:
			t.Fatal(ev.Err)
		}
	}
	if len(kinds) < 4 || kinds[0] != dialogue.EventMeta || kinds[len(kinds)-1] != dialogue.EventDone {
		t.Fatalf("event kinds %v, want meta, deltas, done", kinds)
	}
	if text.String() != done.Answer {
		t.Errorf("deltas %q, done %q", text.String(), done.Answer)
	}

	ch, err = e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", SessionID: "abcdefgh12345678", Message: "x"})
	if err != nil {
		t.Fatal(err)
	}
	first := <-ch
	if first.Kind != dialogue.EventError || !errors.Is(first.Err, dialogue.ErrNotFound) {
		t.Errorf("unknown session stream: first event %+v, want an ErrNotFound error", first)
	}
}

func TestCallerGoneWhileWaiting(t *testing.T) {
	gate := make(chan struct{})
	a := &echo{gate: gate}
	e, _ := start(t, dialogue.Config{Workers: 1, Backlog: 4}, a)
	blocker := make(chan error, 1)
	go func() {
		_, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "first"})
		blocker <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "late"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want DeadlineExceeded", err)
	}
	gate <- struct{}{}
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	// The abandoned turn is skipped, not answered.
	close(gate) // later turns pass the gate
	if _, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "next"}); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.Join(a.seen, ",") != "first,next" {
		t.Errorf("answered %v, want first,next (the abandoned turn skipped)", a.seen)
	}
}

func TestRunDrainsAcceptedTurns(t *testing.T) {
	store, _ := session.NewMemoryStore(session.MemoryConfig{})
	e, err := dialogue.New(dialogue.Config{Workers: 1, Backlog: 8}, dialogue.Deps{
		Store:     store,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: &echo{delay: 20 * time.Millisecond}},
		Tenants:   tenants{bank: {ID: bank}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = e.Run(ctx); close(stopped) }()

	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for i := range 5 {
		wg.Go(func() {
			if _, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: fmt.Sprint(i)}); err == nil {
				mu.Lock()
				answered++
				mu.Unlock()
			}
		})
	}
	time.Sleep(10 * time.Millisecond)
	cancel()
	<-stopped
	wg.Wait()
	if answered != 5 {
		t.Errorf("answered %d of 5 accepted turns before stopping", answered)
	}
	if _, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "late"}); !errors.Is(err, dialogue.ErrDraining) {
		t.Errorf("after stop: got %v, want ErrDraining", err)
	}
	if err := e.Ready(context.Background()); !errors.Is(err, dialogue.ErrDraining) {
		t.Errorf("Ready after stop: got %v, want ErrDraining", err)
	}
}

func BenchmarkSubmit(b *testing.B) {
	store, _ := session.NewMemoryStore(session.MemoryConfig{})
	e, _ := dialogue.New(dialogue.Config{Workers: 8, Backlog: 1024}, dialogue.Deps{
		Store:     store,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: &echo{}},
		Tenants:   tenants{bank: {ID: bank}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hi"}); err != nil {
				b.Error(err)
			}
		}
	})
}

// streamer streams fixed pieces; cut makes it fail after them as a cut stream does, and
// block makes it wait for the caller to leave after the first piece.
type streamer struct {
	echo
	pieces []string
	cut    bool
	block  bool
}

func (s *streamer) Stream(ctx context.Context, req nlpclient.Request, emit func(string) error) (nlpclient.Answer, error) {
	var text strings.Builder
	for i, p := range s.pieces {
		if err := emit(p); err != nil {
			return nlpclient.Answer{}, err
		}
		text.WriteString(p)
		if s.block && i == 0 {
			<-ctx.Done()
			return nlpclient.Answer{}, ctx.Err()
		}
	}
	a := nlpclient.Answer{Text: text.String(), Source: nlpclient.SourceLLM, Citations: []nlpclient.Citation{{ID: "e1", Question: "q"}}}
	if s.cut {
		a.Incomplete = true
		return a, nlpclient.ErrStreamCut
	}
	return a, nil
}

func collect(t *testing.T, ch <-chan dialogue.Event) (session string, deltas []string, last dialogue.Event) {
	t.Helper()
	for ev := range ch {
		switch ev.Kind {
		case dialogue.EventMeta:
			session = ev.SessionID
		case dialogue.EventDelta:
			deltas = append(deltas, ev.Delta)
		}
		last = ev
	}
	return session, deltas, last
}

func TestStreamerPiecesPassThrough(t *testing.T) {
	e, store := start(t, dialogue.Config{Workers: 1, Backlog: 4}, &streamer{pieces: []string{"a", "b", "c"}})
	ch, err := e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	id, deltas, last := collect(t, ch)
	if strings.Join(deltas, "|") != "a|b|c" || last.Kind != dialogue.EventDone || last.Reply.Source != "llm" || last.Reply.Incomplete {
		t.Fatalf("deltas %v, last %+v; want the engine's own pieces then done", deltas, last)
	}
	turns, err := store.Load(context.Background(), session.Ref{Tenant: bank, Session: id, User: "u1"})
	if err != nil || len(turns) != 1 || turns[0].Answer != "abc" || turns[0].Incomplete {
		t.Errorf("stored %+v, %v", turns, err)
	}
}

func TestStreamCutStoresPartIncomplete(t *testing.T) {
	e, store := start(t, dialogue.Config{Workers: 1, Backlog: 4}, &streamer{pieces: []string{"a", "b"}, cut: true})
	ch, err := e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	id, deltas, last := collect(t, ch)
	if strings.Join(deltas, "|") != "a|b" || last.Kind != dialogue.EventError || !errors.Is(last.Err, dialogue.ErrIncomplete) {
		t.Fatalf("deltas %v, last %+v; want the pieces then an ErrIncomplete error", deltas, last)
	}
	turns, err := store.Load(context.Background(), session.Ref{Tenant: bank, Session: id, User: "u1"})
	if err != nil || len(turns) != 1 || turns[0].Answer != "ab" || !turns[0].Incomplete {
		t.Errorf("stored %+v, %v; want the part, marked incomplete", turns, err)
	}
}

func TestStreamCallerGoneStoresNothing(t *testing.T) {
	e, store := start(t, dialogue.Config{Workers: 1, Backlog: 4}, &streamer{pieces: []string{"a", "b"}, block: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := e.Stream(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for ev := range ch {
		if ev.Kind == dialogue.EventMeta {
			id = ev.SessionID
		}
		if ev.Kind == dialogue.EventDelta {
			cancel() // the client leaves after the first token
		}
	}
	// The engine has finished the turn once its channel is closed.
	if _, err := store.Load(context.Background(), session.Ref{Tenant: bank, Session: id, User: "u1"}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("load after the caller left: %v, want ErrNotFound (nothing stored)", err)
	}
}

// labelled answers every message with its label, after a value arrives on gate; it
// sends the message to started, if set, as it begins.
type labelled struct {
	label   string
	gate    chan struct{}
	started chan string
}

func (l *labelled) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	if l.started != nil {
		l.started <- req.Message
	}
	select {
	case <-l.gate:
	case <-ctx.Done():
		return nlpclient.Answer{}, ctx.Err()
	}
	return nlpclient.Answer{Text: l.label, Source: nlpclient.SourceFAQ, Confidence: 0.9}, nil
}

// Two replicas sharing a store answer the same client message id at once: neither finds
// it stored before answering, the first stores it, and the second must reply with the
// first's turn marked as a duplicate instead of storing its own.
func TestConcurrentRetryOnTwoReplicasStoresOnce(t *testing.T) {
	store, err := session.NewMemoryStore(session.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	replica := func(a dialogue.Answerer) *dialogue.Engine {
		e, err := dialogue.New(dialogue.Config{Workers: 1, Backlog: 4}, dialogue.Deps{
			Store:     store,
			Answerers: map[tenant.ID]dialogue.Answerer{bank: a},
			Tenants:   tenants{bank: {ID: bank, FallbackAnswer: "busy"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = e.Run(rctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return e
	}
	first := &labelled{label: "from the first replica", gate: make(chan struct{}, 2)}
	second := &labelled{label: "from the second replica", gate: make(chan struct{}, 2)}
	e1, e2 := replica(first), replica(second)
	first.gate <- struct{}{}
	r0, err := e1.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", Message: "start"})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 2)
	first.started, second.started = started, started
	turn := dialogue.Turn{Tenant: bank, User: "u1", SessionID: r0.SessionID, Message: "pay", ClientMsgID: "c-1"}
	type out struct {
		r   dialogue.Reply
		err error
	}
	c1, c2 := make(chan out, 1), make(chan out, 1)
	go func() { r, err := e1.Submit(ctx, turn); c1 <- out{r, err} }()
	go func() { r, err := e2.Submit(ctx, turn); c2 <- out{r, err} }()
	// Both have loaded the session and are answering; let the first finish.
	<-started
	<-started
	first.gate <- struct{}{}
	o1 := <-c1
	second.gate <- struct{}{}
	o2 := <-c2
	if o1.err != nil || o2.err != nil {
		t.Fatalf("errors: %v, %v", o1.err, o2.err)
	}
	if o1.r.Duplicate || o1.r.Answer != first.label {
		t.Errorf("first reply: duplicate %v, answer %q; want the first's answer, not a duplicate", o1.r.Duplicate, o1.r.Answer)
	}
	if !o2.r.Duplicate || o2.r.Answer != first.label || o2.r.TurnID != o1.r.TurnID {
		t.Errorf("second reply: duplicate %v, answer %q, turn %s; want the first's turn %s marked duplicate",
			o2.r.Duplicate, o2.r.Answer, o2.r.TurnID, o1.r.TurnID)
	}
	turns, err := store.Load(ctx, session.Ref{Tenant: bank, Session: r0.SessionID, User: "u1"})
	if err != nil || len(turns) != 2 {
		t.Errorf("stored %d turns (%v), want 2", len(turns), err)
	}
}

// windowed is an echo that declares it reads only the newest n exchanges.
type windowed struct {
	echo
	n int
}

func (w *windowed) HistoryTurns() int { return w.n }

func TestHistoryWindow(t *testing.T) {
	for _, tc := range []struct {
		name    string
		window  int
		context int
		want    int // the most earlier turns an answer is shown
	}{
		{"engine reads fewer", 2, 6, 2},
		{"engine reads more", 9, 6, 6},
		{"engine says nothing", 0, 6, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := start(t, dialogue.Config{Workers: 1, Backlog: 4, ContextTurns: tc.context}, &windowed{n: tc.window})
			ctx := context.Background()
			sid := ""
			for i := range 9 {
				r, err := e.Submit(ctx, dialogue.Turn{Tenant: bank, User: "u1", SessionID: sid, Message: fmt.Sprintf("m%d", i)})
				if err != nil {
					t.Fatal(err)
				}
				sid = r.SessionID
				if want := fmt.Sprintf("m%d (after %d)", i, min(i, tc.want)); r.Answer != want {
					t.Errorf("turn %d: answer %q, want %q", i, r.Answer, want)
				}
			}
		})
	}
}
