package dialogue_test

import (
	"context"
	"sync"
	"testing"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

var _ dialogue.Handoff = (*handoff.Desk)(nil)

// scripted answers with the sources it is given, in order, then faq; it records the
// history each answer was shown.
type scripted struct {
	mu      sync.Mutex
	sources []nlpclient.Source
	seen    []string
	history [][]nlpclient.Exchange
}

func (s *scripted) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := nlpclient.SourceFAQ
	if len(s.sources) > 0 {
		src, s.sources = s.sources[0], s.sources[1:]
	}
	s.seen = append(s.seen, req.Message)
	s.history = append(s.history, req.History)
	return nlpclient.Answer{Text: "bot: " + req.Message, Source: src, Confidence: 0.5}, nil
}

func (s *scripted) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// startDesk runs an engine with a handoff desk on one memory store.
func startDesk(t *testing.T, a dialogue.Answerer) (*dialogue.Engine, *handoff.Desk, *session.MemoryStore) {
	t.Helper()
	store, err := session.NewMemoryStore(session.MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tn := &tenant.Tenant{ID: bank, FallbackAnswer: "busy, try later",
		Handoff: tenant.Handoff{Phrases: tenant.DefaultHandoffPhrases, AfterUnresolved: 2}}
	ts := tenants{bank: tn}
	desk, err := handoff.New(handoff.Deps{Store: store, Tenants: ts}, []*tenant.Tenant{tn})
	if err != nil {
		t.Fatal(err)
	}
	e, err := dialogue.New(dialogue.Config{}, dialogue.Deps{
		Store:     store,
		Answerers: map[tenant.ID]dialogue.Answerer{bank: a},
		Tenants:   ts,
		Handoff:   desk,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = e.Run(ctx); done <- struct{}{} }()
	go func() { _ = desk.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return e, desk, store
}

func submit(t *testing.T, e *dialogue.Engine, sessionID, msg, cmid string) dialogue.Reply {
	t.Helper()
	r, err := e.Submit(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", SessionID: sessionID, Message: msg, ClientMsgID: cmid})
	if err != nil {
		t.Fatalf("submit %q: %v", msg, err)
	}
	return r
}

func TestAskingForAPersonSilencesTheBotUntilTheAgentCloses(t *testing.T) {
	a := &scripted{}
	e, desk, store := startDesk(t, a)
	first := submit(t, e, "", "my card is lost", "")
	sid := first.SessionID

	asked := submit(t, e, sid, "转人工", "m-ask")
	if asked.Source != session.SourceHandoff || asked.Answer == "" {
		t.Fatalf("asking reply: source %q answer %q, want handoff with a notice", asked.Source, asked.Answer)
	}
	if asked.Handoff == nil || asked.Handoff.Status != session.HandoffWaiting || asked.Handoff.Position != 1 {
		t.Fatalf("asking reply's handoff = %+v, want waiting at position 1", asked.Handoff)
	}
	// A retry of the same message is the stored reply, not a second handoff turn.
	again := submit(t, e, sid, "转人工", "m-ask")
	if !again.Duplicate || again.TurnID != asked.TurnID || again.Handoff == nil || again.Handoff.Status != session.HandoffWaiting {
		t.Fatalf("retry = %+v, want the stored handoff reply", again)
	}

	held := submit(t, e, sid, "are you there?", "")
	if held.Source != session.SourceHandoff || held.Answer != "" || held.Handoff == nil || held.Handoff.Status != session.HandoffWaiting {
		t.Fatalf("message while waiting = %+v, want a silent handoff reply with the waiting status", held)
	}
	if got := a.messages(); len(got) != 1 {
		t.Fatalf("the bot saw %q; want only the first message", got)
	}

	agent := tenant.Principal{Tenant: bank, User: "agent-1", Role: "agent", Name: "Li Wei"}
	ctx := context.Background()
	convs, err := desk.List(ctx, bank, session.HandoffWaiting)
	if err != nil || len(convs) != 1 || convs[0].SessionID != sid || convs[0].Cause != session.CauseAsked || convs[0].LastMessage != "are you there?" {
		t.Fatalf("waiting list = %+v, %v", convs, err)
	}
	if _, err := desk.Claim(ctx, agent, sid); err != nil {
		t.Fatal(err)
	}
	with := submit(t, e, sid, "hello?", "")
	if with.Handoff == nil || with.Handoff.Status != session.HandoffAgent || with.Handoff.Agent == nil || with.Handoff.Agent.Name != "Li Wei" {
		t.Fatalf("message while with an agent: handoff %+v", with.Handoff)
	}
	if _, err := desk.Post(ctx, agent, sid, "I froze your card."); err != nil {
		t.Fatal(err)
	}
	if _, err := desk.Close(ctx, agent, sid, "card frozen"); err != nil {
		t.Fatal(err)
	}

	back := submit(t, e, sid, "thanks, one more question", "")
	if back.Source != string(nlpclient.SourceFAQ) || back.Handoff != nil {
		t.Fatalf("after close: %+v, want the bot's answer", back)
	}
	// The bot's context holds its own exchanges only: not the notice, the customer's
	// messages to the agent, or the agent's.
	a.mu.Lock()
	last := a.history[len(a.history)-1]
	a.mu.Unlock()
	for _, ex := range last {
		if ex.User != "my card is lost" {
			t.Errorf("the bot was shown %+v", ex)
		}
	}
	turns, err := store.Load(ctx, session.Ref{Tenant: bank, Session: sid, User: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	var sources []string
	for _, tr := range turns {
		sources = append(sources, tr.Source)
	}
	want := []string{"faq", "handoff", "handoff", "handoff", "agent", "faq"}
	if len(sources) != len(want) {
		t.Fatalf("stored sources %q, want %q", sources, want)
	}
	for i := range want {
		if sources[i] != want[i] {
			t.Fatalf("stored sources %q, want %q", sources, want)
		}
	}
	if turns[4].AgentName != "Li Wei" || turns[4].Answer != "I froze your card." || turns[4].User != "" {
		t.Errorf("agent turn = %+v", turns[4])
	}
}

func TestUnresolvedAnswersInARowHandOver(t *testing.T) {
	a := &scripted{sources: []nlpclient.Source{nlpclient.SourceClarify, nlpclient.SourceFAQ, nlpclient.SourceClarify, nlpclient.SourceFallback}}
	e, desk, _ := startDesk(t, a)
	r1 := submit(t, e, "", "hmm", "")
	sid := r1.SessionID
	if r1.Source != string(nlpclient.SourceClarify) {
		t.Fatalf("first: %q", r1.Source)
	}
	// A resolved answer between two unresolved ones breaks the streak.
	if r := submit(t, e, sid, "ok", ""); r.Source != string(nlpclient.SourceFAQ) {
		t.Fatalf("second: %q", r.Source)
	}
	if r := submit(t, e, sid, "what?", ""); r.Source != string(nlpclient.SourceClarify) {
		t.Fatalf("third: %q, want clarify (one unresolved in a row)", r.Source)
	}
	r := submit(t, e, sid, "still lost", "")
	if r.Source != session.SourceHandoff || r.Handoff == nil || r.Handoff.Status != session.HandoffWaiting {
		t.Fatalf("second unresolved in a row: %+v, want a handoff", r)
	}
	convs, err := desk.List(context.Background(), bank, session.HandoffWaiting)
	if err != nil || len(convs) != 1 || convs[0].Cause != session.CauseUnresolved {
		t.Fatalf("waiting = %+v, %v; want one, cause unresolved", convs, err)
	}
}

func TestStreamedHandoffEndsWithTheStatus(t *testing.T) {
	e, _, _ := startDesk(t, &scripted{})
	ch, err := e.Stream(context.Background(), dialogue.Turn{Tenant: bank, User: "u1", Message: "I want to talk to a person"})
	if err != nil {
		t.Fatal(err)
	}
	_, deltas, last := collect(t, ch)
	if last.Kind != dialogue.EventDone || last.Reply.Source != session.SourceHandoff || last.Reply.Handoff == nil {
		t.Fatalf("last event %+v", last)
	}
	text := ""
	for _, d := range deltas {
		text += d
	}
	if text != last.Reply.Answer || text == "" {
		t.Fatalf("streamed %q, reply %q", text, last.Reply.Answer)
	}
}
