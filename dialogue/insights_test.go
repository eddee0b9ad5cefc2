package dialogue_test

import (
	"context"
	"sync"
	"testing"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/insights"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

var _ dialogue.Insights = (*insights.Recorder)(nil)

// told records what the engine told its insights.
type told struct {
	mu    sync.Mutex
	turns []string // turn id, source, cause
	users []string
}

func (t *told) TurnAnswered(ref session.Ref, turn session.Turn, cause string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.turns = append(t.turns, turn.ID+" "+turn.Source+" "+cause)
	t.users = append(t.users, ref.User)
}

func (t *told) got() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.turns...)
}

// TestInsightsToldOfAnsweredTurns: an answered turn is told once, a retry of it by
// client message id not again, and a turn handed to a person with its cause.
func TestInsightsToldOfAnsweredTurns(t *testing.T) {
	store, err := session.NewMemoryStore(session.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tn := &tenant.Tenant{ID: bank, FallbackAnswer: "busy", Handoff: tenant.Handoff{Phrases: tenant.DefaultHandoffPhrases}}
	ts := tenants{bank: tn}
	desk, err := handoff.New(handoff.Deps{Store: store, Tenants: ts}, []*tenant.Tenant{tn})
	if err != nil {
		t.Fatal(err)
	}
	rec := &told{}
	e, err := dialogue.New(dialogue.Config{}, dialogue.Deps{
		Store: store, Answerers: map[tenant.ID]dialogue.Answerer{bank: &scripted{}}, Tenants: ts, Handoff: desk, Insights: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = e.Run(ctx); done <- struct{}{} }()
	go func() { _ = desk.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	r1 := submit(t, e, "", "hello", "m1")
	submit(t, e, r1.SessionID, "hello", "m1") // a retry: stored already
	r2 := submit(t, e, r1.SessionID, tenant.DefaultHandoffPhrases[0], "m2")
	want := []string{r1.TurnID + " faq ", r2.TurnID + " handoff " + session.CauseAsked}
	if got := rec.got(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("told %q, want %q", got, want)
	}
	if rec.users[0] != "u1" {
		t.Errorf("told user %q, want u1", rec.users[0])
	}
}

// BenchmarkSubmitRecorded is BenchmarkSubmit with the insights recorder on.
func BenchmarkSubmitRecorded(b *testing.B) {
	store, _ := session.NewMemoryStore(session.MemoryConfig{})
	is, _ := insights.NewMemoryStore(insights.Config{})
	rec, _ := insights.NewRecorder(is, nil, nil)
	e, _ := dialogue.New(dialogue.Config{Workers: 8, Backlog: 1024}, dialogue.Deps{
		Store:     store,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: &echo{}},
		Tenants:   tenants{bank: {ID: bank}},
		Insights:  rec,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = e.Run(ctx); done <- struct{}{} }()
	go func() { _ = rec.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "hi"}); err != nil {
				b.Error(err)
			}
		}
	})
}
