package insights

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

type countingObserver struct {
	mu      sync.Mutex
	dropped map[tenant.ID]int
}

func (o *countingObserver) InsightsDropped(t tenant.ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dropped == nil {
		o.dropped = map[tenant.ID]int{}
	}
	o.dropped[t]++
}

// TestRecorderNeverBlocks fills the buffer with no writer running: the next records
// return at once, dropped and counted.
func TestRecorderNeverBlocks(t *testing.T) {
	s, _ := NewMemoryStore(Config{})
	obs := &countingObserver{}
	r, err := NewRecorder(s, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range bufferSize + 10 {
		r.Record(Event{Kind: KindTurn, Tenant: tenantA, TurnID: "turn-0001"})
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("recording into a full buffer took %s", d)
	}
	if got := obs.dropped[tenantA]; got != 10 {
		t.Errorf("dropped %d, want 10", got)
	}
}

func TestRecordAllocations(t *testing.T) {
	s, _ := NewMemoryStore(Config{})
	r, _ := NewRecorder(s, nil, nil)
	ref := session.Ref{Tenant: tenantA, Session: "sess-0001", User: "u1"}
	turn := session.Turn{ID: "turn-0001", User: "hi", Source: "faq", Citations: []session.Citation{{ID: "e1"}}}
	n := testing.AllocsPerRun(100, func() {
		r.TurnAnswered(ref, turn, "")
		<-r.events
	})
	if n != 0 {
		t.Errorf("TurnAnswered allocates %v times, want 0", n)
	}
}

// TestRecorderWritesAndRedacts: a recorded turn is written within the flush interval,
// its question redacted, and its user can rate it; a bad rating or a long comment is
// refused.
func TestRecorderWritesAndRedacts(t *testing.T) {
	s, _ := NewMemoryStore(Config{})
	r, _ := NewRecorder(s, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ref := session.Ref{Tenant: tenantA, Session: "sess-0001", User: "u1"}
	r.TurnAnswered(ref, session.Turn{ID: "turn-0001", User: "my card 6222021234567890123 is lost", Source: "handoff", AnsweredAt: time.Now().UTC()}, session.CauseAsked)
	// Feedback right after the answer waits for the turn to be written.
	if err := r.Feedback(ctx, tenantA, "u1", "turn-0001", RatingDown, "no"); err != nil {
		t.Fatalf("Feedback: %v", err)
	}
	got, err := r.List(ctx, tenantA, time.Time{}, KindTurn)
	if err != nil || len(got) != 1 {
		t.Fatalf("List = %v, %v", got, err)
	}
	if strings.Contains(got[0].Question, "6222021234567890123") || got[0].Cause != session.CauseAsked {
		t.Errorf("recorded turn %+v: want the number redacted and the cause", got[0])
	}
	for _, c := range []struct{ rating, comment string }{{"meh", ""}, {RatingUp, strings.Repeat("字", MaxCommentChars+1)}} {
		if err := r.Feedback(ctx, tenantA, "u1", "turn-0001", c.rating, c.comment); !errors.Is(err, ErrInvalid) {
			t.Errorf("Feedback(%q, %d chars) = %v, want ErrInvalid", c.rating, len([]rune(c.comment)), err)
		}
	}
	if err := r.Feedback(ctx, tenantA, "u1", "turn-0001", RatingUp, strings.Repeat("字", MaxCommentChars)); err != nil {
		t.Errorf("Feedback with a comment of %d characters: %v", MaxCommentChars, err)
	}
}

// TestRecorderFlush: Flush returns once the records queued before it are written.
func TestRecorderFlush(t *testing.T) {
	s, _ := NewMemoryStore(Config{})
	r, _ := NewRecorder(s, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for i := range 150 {
		r.Record(Event{Kind: KindTurn, Tenant: tenantA, TurnID: "turn-f" + strings.Repeat("0", 4) + string(rune('a'+i%26)) + string(rune('a'+i/26)), At: time.Now()})
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List(ctx, tenantA, time.Time{}); len(got) != 150 {
		t.Errorf("after Flush %d records written, want 150", len(got))
	}
}
