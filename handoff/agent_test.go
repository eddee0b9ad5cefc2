package handoff

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/session"
)

// A claim moves the customers who waited after the claimed one up the queue, and
// their streams say so; the customers ahead of it hear nothing.
func TestClaimMovesTheQueueUp(t *testing.T) {
	f := newFixture(t, options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var refs []session.Ref
	for i, user := range []string{"u1", "u2", "u3", "u4"} {
		ref := f.customer(t, bank, user)
		if o := f.open(t, ref, "转人工"); o.Status.Position != i+1 {
			t.Fatalf("customer %d: position %d, want %d", i+1, o.Status.Position, i+1)
		}
		refs = append(refs, ref)
		f.clock.Advance(time.Second)
	}
	streams := make([]<-chan Event, len(refs))
	for i, ref := range refs {
		ch, err := f.desk.SessionEvents(ctx, ref, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st := decode[Status](t, next(t, ch, "status now").Data); st.Position != i+1 {
			t.Fatalf("customer %d's stream starts at position %d", i+1, st.Position)
		}
		streams[i] = ch
	}
	position := func(i int, want Status) {
		t.Helper()
		e := next(t, streams[i], "customer's event")
		if got := decode[Status](t, e.Data); e.Name != eventHandoff || got.Status != want.Status || got.Position != want.Position {
			t.Fatalf("customer %d: event %s %s, want %+v", i+1, e.Name, e.Data, want)
		}
	}

	// The second is claimed: the third and fourth move up, the first stays first.
	if _, err := f.desk.Claim(ctx, agentOf(bank, "a1", "Li"), refs[1].Session); err != nil {
		t.Fatal(err)
	}
	position(1, Status{Status: StatusAgent})
	position(2, Status{Status: StatusWaiting, Position: 2})
	position(3, Status{Status: StatusWaiting, Position: 3})

	// The last is claimed: nobody waits behind it, so the first hears only its own claim.
	if _, err := f.desk.Claim(ctx, agentOf(bank, "a2", "Wang"), refs[3].Session); err != nil {
		t.Fatal(err)
	}
	position(3, Status{Status: StatusAgent})
	quiet(t, streams[0], func() {
		if _, err := f.desk.Claim(ctx, agentOf(bank, "a3", "Zhao"), refs[0].Session); err != nil {
			t.Fatal(err)
		}
	}, func(e Event) bool { return decode[Status](t, e.Data).Status == StatusAgent })
	// The first's claim moves the third, the only one left, to the front.
	position(2, Status{Status: StatusWaiting, Position: 1})
}

// An event stored just after a stream opens, before the stream has read where the
// session's events stand, still reaches it.
func TestStreamMissesNothingJustAfterItOpens(t *testing.T) {
	f := newFixture(t, options{})
	ref := f.customer(t, bank, "u1")
	f.open(t, ref, "转人工")
	for i := range 100 {
		ctx, cancel := context.WithCancel(context.Background())
		ch, err := f.desk.SessionEvents(ctx, ref, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.desk.sessionEvent(ctx, bank, ref.Session, eventHandoff, Status{Status: StatusWaiting, Position: i + 2})
		next(t, ch, "status now")
		e := next(t, ch, "the event just stored")
		if st := decode[Status](t, e.Data); st.Position != i+2 {
			t.Fatalf("round %d: got %s, want position %d", i, e.Data, i+2)
		}
		cancel()
		for range ch { // until the stream ends
		}
	}
}

// turnLog records what a desk tells its TurnObserver.
type turnLog struct {
	mu    sync.Mutex
	turns []string // session/source/cause
}

func (l *turnLog) TurnAnswered(ref session.Ref, t session.Turn, cause string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.turns = append(l.turns, ref.Session+"/"+t.Source+"/"+cause)
}

// The widget's button stores a notice, which is recorded with the cause "button"; a
// second press stores nothing and records nothing.
func TestRequestRecordsTheNotice(t *testing.T) {
	log := &turnLog{}
	f := newFixture(t, options{turns: log})
	ref := f.customer(t, shop, "u1")
	for range 2 {
		if _, _, err := f.desk.Request(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if want := []string{ref.Session + "/handoff/button"}; !slices.Equal(log.turns, want) {
		t.Errorf("recorded %q, want %q", log.turns, want)
	}
}
