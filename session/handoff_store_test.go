package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/tenant"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// handoffStore is the method set of a store that keeps handoffs: the contract
// suite's Store and what the desk (handoff.Store) needs besides; the handoff contract
// suite runs against it. session must not import handoff, so the set is spelled out
// here.
type handoffStore interface {
	Store
	OpenHandoff(ctx context.Context, ref Ref, cause, lastMessage string, now time.Time) (Handoff, bool, error)
	GetHandoff(ctx context.Context, t tenant.ID, sessionID string) (Handoff, error)
	ClaimHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, agentName string, now time.Time) (Handoff, error)
	CloseHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, resolution string, now time.Time) (Handoff, error)
	NoteHandoffMessage(ctx context.Context, t tenant.ID, sessionID, message string, at time.Time) error
	ListHandoffs(ctx context.Context, t tenant.ID, status string, limit int) ([]Handoff, error)
	CountWaiting(ctx context.Context, t tenant.ID) (int, error)
	AppendEvent(ctx context.Context, t tenant.ID, sessionID string, data []byte) (int64, error)
	EventsAfter(ctx context.Context, t tenant.ID, sessionID string, after int64) ([]Event, error)
	SeeAgent(ctx context.Context, t tenant.ID, agentID string, until time.Time) error
	AgentsOnline(ctx context.Context, t tenant.ID, now time.Time) (int, error)
}

var (
	_ handoffStore = (*MemoryStore)(nil)
	_ handoffStore = (*RedisStore)(nil)
)

func TestMemoryStoreHandoffs(t *testing.T) {
	runHandoffContract(t, func(t *testing.T) handoffStore {
		s, err := NewMemoryStore(MemoryConfig{MaxTurns: contractMaxTurns})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestRedisStoreHandoffs(t *testing.T) {
	runHandoffContract(t, func(t *testing.T) handoffStore {
		s, _ := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
		return s
	})
}

// handoffEpoch is the clock of the handoff suite, to the millisecond (the Redis
// store's index scores).
var handoffEpoch = time.Now().UTC().Truncate(time.Millisecond)

// at returns handoffEpoch plus n seconds.
func at(n int) time.Time { return handoffEpoch.Add(time.Duration(n) * time.Second) }

func mustOpen(t *testing.T, s handoffStore, ref Ref, cause, last string, now time.Time) (Handoff, bool) {
	t.Helper()
	h, opened, err := s.OpenHandoff(context.Background(), ref, cause, last, now)
	if err != nil {
		t.Fatalf("OpenHandoff: %v", err)
	}
	return h, opened
}

func mustGet(t *testing.T, s handoffStore, ref Ref) Handoff {
	t.Helper()
	h, err := s.GetHandoff(context.Background(), ref.Tenant, ref.Session)
	if err != nil {
		t.Fatalf("GetHandoff: %v", err)
	}
	return h
}

func mustClaim(t *testing.T, s handoffStore, ref Ref, agent string, now time.Time) Handoff {
	t.Helper()
	h, err := s.ClaimHandoff(context.Background(), ref.Tenant, ref.Session, agent, "Agent "+agent, now)
	if err != nil {
		t.Fatalf("ClaimHandoff: %v", err)
	}
	return h
}

func mustClose(t *testing.T, s handoffStore, ref Ref, agent string, now time.Time) Handoff {
	t.Helper()
	h, err := s.CloseHandoff(context.Background(), ref.Tenant, ref.Session, agent, "solved", now)
	if err != nil {
		t.Fatalf("CloseHandoff: %v", err)
	}
	return h
}

func mustList(t *testing.T, s handoffStore, tn tenant.ID, status string, limit int) []Handoff {
	t.Helper()
	hs, err := s.ListHandoffs(context.Background(), tn, status, limit)
	if err != nil {
		t.Fatalf("ListHandoffs(%s, %d): %v", status, limit, err)
	}
	return hs
}

func mustCount(t *testing.T, s handoffStore, tn tenant.ID) int {
	t.Helper()
	n, err := s.CountWaiting(context.Background(), tn)
	if err != nil {
		t.Fatalf("CountWaiting: %v", err)
	}
	return n
}

func wantConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrConflict) {
		t.Errorf("%s: got error %v, want ErrConflict", what, err)
	}
}

// sessionsOf returns the session ids of hs, in order.
func sessionsOf(hs []Handoff) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Session
	}
	return out
}

// positionsOf returns the positions of hs, in order.
func positionsOf(hs []Handoff) []int {
	out := make([]int, len(hs))
	for i, h := range hs {
		out[i] = h.Position
	}
	return out
}

// runHandoffContract checks the handoff behaviour every store that keeps handoffs
// must have. newStore returns an empty store with a TTL of at least a minute.
func runHandoffContract(t *testing.T, newStore func(t *testing.T) handoffStore) {
	ctx := context.Background()

	t.Run("open waits with a position", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		h, opened := mustOpen(t, s, ref, CauseAsked, "人工客服", at(0))
		want := Handoff{
			Session: ref.Session, User: "u1", Status: HandoffWaiting, Cause: CauseAsked,
			WaitingSince: at(0), LastMessage: "人工客服", LastAt: at(0), Position: 1,
		}
		if !opened {
			t.Error("OpenHandoff of a new handoff returned false")
		}
		if diff := cmp.Diff(h, want); diff != "" {
			t.Errorf("OpenHandoff (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(mustGet(t, s, ref), want); diff != "" {
			t.Errorf("GetHandoff (-got +want):\n%s", diff)
		}
		// The session was created for its user, empty.
		if turns := mustLoadTurns(t, s, ref); len(turns) != 0 {
			t.Errorf("the session OpenHandoff created holds %d turns", len(turns))
		}
	})

	t.Run("open without a message", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustAppend(t, s, ref, testTurn(1, "m1"))
		h, _ := mustOpen(t, s, ref, CauseButton, "", at(0))
		if h.LastMessage != "" || !h.LastAt.IsZero() {
			t.Errorf("OpenHandoff without a message: LastMessage %q, LastAt %v; want none", h.LastMessage, h.LastAt)
		}
		if got := mustLoadTurns(t, s, ref); len(got) != 1 {
			t.Errorf("the session holds %d turns after OpenHandoff, want its 1", len(got))
		}
	})

	t.Run("open again is not new", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		first, _ := mustOpen(t, s, ref, CauseAsked, "help", at(0))
		again, opened := mustOpen(t, s, ref, CauseButton, "other", at(5))
		if opened {
			t.Error("second OpenHandoff returned true")
		}
		if diff := cmp.Diff(again, first); diff != "" {
			t.Errorf("second OpenHandoff (-got +want):\n%s", diff)
		}
		mustClaim(t, s, ref, "a1", at(6))
		withAgent, opened := mustOpen(t, s, ref, CauseButton, "other", at(7))
		if opened || withAgent.Status != HandoffAgent || withAgent.AgentID != "a1" || withAgent.Position != 0 {
			t.Errorf("OpenHandoff while with an agent: %+v, %v; want the agent's record, false", withAgent, opened)
		}
		if n := mustCount(t, s, ref.Tenant); n != 0 {
			t.Errorf("CountWaiting after an open of a claimed session: %d, want 0", n)
		}
	})

	t.Run("positions are oldest first", func(t *testing.T) {
		s := newStore(t)
		refs := []Ref{testRef("acme", "u0"), testRef("acme", "u1"), testRef("acme", "u2")}
		// Opened out of order: the queue follows WaitingSince.
		for _, i := range []int{2, 0, 1} {
			h, _ := mustOpen(t, s, refs[i], CauseAsked, "", at(i))
			if i == 2 && h.Position != 1 {
				t.Errorf("first open's position %d, want 1", h.Position)
			}
		}
		for i, ref := range refs {
			if got := mustGet(t, s, ref).Position; got != i+1 {
				t.Errorf("session %d: position %d, want %d", i, got, i+1)
			}
		}
		mustClaim(t, s, refs[0], "a1", at(10))
		if got := mustGet(t, s, refs[0]).Position; got != 0 {
			t.Errorf("claimed session's position %d, want 0", got)
		}
		for i, ref := range refs[1:] {
			if got := mustGet(t, s, ref).Position; got != i+1 {
				t.Errorf("after the claim, session %d: position %d, want %d", i+1, got, i+1)
			}
		}
		late, _ := mustOpen(t, s, testRef("acme", "u3"), CauseAsked, "", at(20))
		if late.Position != 3 {
			t.Errorf("a later open's position %d, want 3", late.Position)
		}
	})

	t.Run("get of no record", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		_, err := s.GetHandoff(ctx, ref.Tenant, ref.Session)
		wantNotFound(t, "GetHandoff of no session", err)
		mustAppend(t, s, ref, testTurn(1, "m1"))
		_, err = s.GetHandoff(ctx, ref.Tenant, ref.Session)
		wantNotFound(t, "GetHandoff of a session without a record", err)
	})

	t.Run("claim gives it to the agent", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustOpen(t, s, ref, CauseAsked, "help", at(0))
		h := mustClaim(t, s, ref, "a1", at(3))
		want := Handoff{
			Session: ref.Session, User: "u1", Status: HandoffAgent, Cause: CauseAsked,
			WaitingSince: at(0), AgentID: "a1", AgentName: "Agent a1", ClaimedAt: at(3),
			LastMessage: "help", LastAt: at(0),
		}
		if diff := cmp.Diff(h, want); diff != "" {
			t.Errorf("ClaimHandoff (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(mustGet(t, s, ref), want); diff != "" {
			t.Errorf("GetHandoff after the claim (-got +want):\n%s", diff)
		}
		// The holder's repeated claim returns the record unchanged.
		if diff := cmp.Diff(mustClaim(t, s, ref, "a1", at(9)), want); diff != "" {
			t.Errorf("repeated ClaimHandoff by the holder (-got +want):\n%s", diff)
		}
		_, err := s.ClaimHandoff(ctx, ref.Tenant, ref.Session, "a2", "Agent a2", at(4))
		wantConflict(t, "ClaimHandoff by another agent", err)
		if _, err := s.ClaimHandoff(ctx, ref.Tenant, ref.Session, "", "", at(4)); err == nil {
			t.Error("ClaimHandoff without an agent id succeeded")
		}
		other := testRef("acme", "u2")
		_, err = s.ClaimHandoff(ctx, other.Tenant, other.Session, "a1", "Agent a1", at(4))
		wantNotFound(t, "ClaimHandoff of an unknown session", err)
		mustAppend(t, s, other, testTurn(1, "m1"))
		_, err = s.ClaimHandoff(ctx, other.Tenant, other.Session, "a1", "Agent a1", at(4))
		wantNotFound(t, "ClaimHandoff of a session without a record", err)
	})

	t.Run("concurrent claims: exactly one wins", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustOpen(t, s, ref, CauseAsked, "", at(0))
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = s.ClaimHandoff(ctx, ref.Tenant, ref.Session, fmt.Sprintf("a%d", i), "", at(1))
			})
		}
		close(start)
		wg.Wait()
		checkOneClaim(t, errs, mustGet(t, s, ref))
		if n := mustCount(t, s, ref.Tenant); n != 0 {
			t.Errorf("CountWaiting after the claims: %d, want 0", n)
		}
		if hs := mustList(t, s, ref.Tenant, HandoffAgent, 0); len(hs) != 1 {
			t.Errorf("ListHandoffs(agent) after the claims: %d records, want 1", len(hs))
		}
	})

	t.Run("close", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustOpen(t, s, ref, CauseAsked, "help", at(0))
		_, err := s.CloseHandoff(ctx, ref.Tenant, ref.Session, "a1", "", at(1))
		wantConflict(t, "CloseHandoff of a waiting handoff", err)
		mustClaim(t, s, ref, "a1", at(2))
		_, err = s.CloseHandoff(ctx, ref.Tenant, ref.Session, "a2", "", at(3))
		wantConflict(t, "CloseHandoff by a non-holder", err)
		h := mustClose(t, s, ref, "a1", at(4))
		want := Handoff{
			Session: ref.Session, User: "u1", Status: HandoffClosed, Cause: CauseAsked,
			WaitingSince: at(0), AgentID: "a1", AgentName: "Agent a1", ClaimedAt: at(2),
			ClosedAt: at(4), Resolution: "solved", LastMessage: "help", LastAt: at(0),
		}
		if diff := cmp.Diff(h, want); diff != "" {
			t.Errorf("CloseHandoff (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(mustGet(t, s, ref), want); diff != "" {
			t.Errorf("GetHandoff after the close (-got +want):\n%s", diff)
		}
		_, err = s.CloseHandoff(ctx, ref.Tenant, ref.Session, "a1", "", at(5))
		wantConflict(t, "CloseHandoff of a closed handoff", err)
		_, err = s.ClaimHandoff(ctx, ref.Tenant, ref.Session, "a1", "", at(5))
		wantConflict(t, "ClaimHandoff of a closed handoff", err)
		other := testRef("acme", "u2")
		_, err = s.CloseHandoff(ctx, other.Tenant, other.Session, "a1", "", at(5))
		wantNotFound(t, "CloseHandoff of an unknown session", err)

		// Opened again, the session gets a new record and queues again.
		again, opened := mustOpen(t, s, ref, CauseUnresolved, "", at(6))
		wantAgain := Handoff{
			Session: ref.Session, User: "u1", Status: HandoffWaiting, Cause: CauseUnresolved,
			WaitingSince: at(6), Position: 1,
		}
		if !opened {
			t.Error("OpenHandoff after the close returned false")
		}
		if diff := cmp.Diff(again, wantAgain); diff != "" {
			t.Errorf("OpenHandoff after the close (-got +want):\n%s", diff)
		}
		if hs := mustList(t, s, ref.Tenant, HandoffClosed, 0); len(hs) != 0 {
			t.Errorf("ListHandoffs(closed) after the re-open: %v, want none", sessionsOf(hs))
		}
		if n := mustCount(t, s, ref.Tenant); n != 1 {
			t.Errorf("CountWaiting after the re-open: %d, want 1", n)
		}
		mustClaim(t, s, ref, "a2", at(7))
		if got := mustClose(t, s, ref, "a2", at(8)); got.Status != HandoffClosed || got.AgentID != "a2" {
			t.Errorf("second close: %+v", got)
		}
	})

	t.Run("note message", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustOpen(t, s, ref, CauseAsked, "first", at(0))
		if err := s.NoteHandoffMessage(ctx, ref.Tenant, ref.Session, "second", at(2)); err != nil {
			t.Fatal(err)
		}
		if h := mustGet(t, s, ref); h.LastMessage != "second" || !h.LastAt.Equal(at(2)) {
			t.Errorf("after a note: LastMessage %q, LastAt %v; want second, %v", h.LastMessage, h.LastAt, at(2))
		}
		long := strings.Repeat("我", MaxLastMessage) // 3 bytes a rune
		if err := s.NoteHandoffMessage(ctx, ref.Tenant, ref.Session, long, at(3)); err != nil {
			t.Fatal(err)
		}
		got := mustGet(t, s, ref).LastMessage
		if want := long[:MaxLastMessage/3*3]; got != want || !utf8.ValidString(got) {
			t.Errorf("a long note: kept %d bytes (valid UTF-8 %v), want %d", len(got), utf8.ValidString(got), len(want))
		}
		h, _ := mustOpen(t, s, testRef("acme", "u2"), CauseAsked, long, at(4))
		if len(h.LastMessage) != MaxLastMessage/3*3 {
			t.Errorf("a long message on open: kept %d bytes, want %d", len(h.LastMessage), MaxLastMessage/3*3)
		}
		mustClaim(t, s, ref, "a1", at(5))
		mustClose(t, s, ref, "a1", at(6))
		if err := s.NoteHandoffMessage(ctx, ref.Tenant, ref.Session, "after", at(7)); err != nil {
			t.Errorf("a note on a closed record: %v", err)
		}
		other := testRef("acme", "u3")
		wantNotFound(t, "a note on no session", s.NoteHandoffMessage(ctx, other.Tenant, other.Session, "x", at(1)))
		mustAppend(t, s, other, testTurn(1, "m1"))
		wantNotFound(t, "a note on no record", s.NoteHandoffMessage(ctx, other.Tenant, other.Session, "x", at(1)))
	})

	t.Run("list per status, in order, limited", func(t *testing.T) {
		s := newStore(t)
		tn := tenant.ID("acme")
		refs := make([]Ref, 5)
		for i := range refs {
			refs[i] = testRef(string(tn), fmt.Sprintf("u%d", i))
		}
		for _, i := range []int{3, 1, 4, 0, 2} {
			mustOpen(t, s, refs[i], CauseAsked, "", at(i))
		}
		ids := func(is ...int) []string {
			out := make([]string, len(is))
			for j, i := range is {
				out[j] = refs[i].Session
			}
			return out
		}
		waiting := mustList(t, s, tn, HandoffWaiting, 0)
		if diff := cmp.Diff(sessionsOf(waiting), ids(0, 1, 2, 3, 4)); diff != "" {
			t.Errorf("waiting (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(positionsOf(waiting), []int{1, 2, 3, 4, 5}); diff != "" {
			t.Errorf("waiting positions (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(sessionsOf(mustList(t, s, tn, HandoffWaiting, 2)), ids(0, 1)); diff != "" {
			t.Errorf("waiting, limit 2 (-got +want):\n%s", diff)
		}
		// Claimed out of order: the agents' list follows WaitingSince too.
		for _, i := range []int{3, 0, 1} {
			mustClaim(t, s, refs[i], "a1", at(10+i))
		}
		if diff := cmp.Diff(sessionsOf(mustList(t, s, tn, HandoffAgent, 0)), ids(0, 1, 3)); diff != "" {
			t.Errorf("agent (-got +want):\n%s", diff)
		}
		waiting = mustList(t, s, tn, HandoffWaiting, 0)
		if diff := cmp.Diff(sessionsOf(waiting), ids(2, 4)); diff != "" {
			t.Errorf("waiting after the claims (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(positionsOf(waiting), []int{1, 2}); diff != "" {
			t.Errorf("waiting positions after the claims (-got +want):\n%s", diff)
		}
		// Closed last first, 3 then 0 then 1: the newest closes, oldest wait first.
		for j, i := range []int{3, 0, 1} {
			mustClose(t, s, refs[i], "a1", at(20+j))
		}
		closed := mustList(t, s, tn, HandoffClosed, 0)
		if diff := cmp.Diff(sessionsOf(closed), ids(0, 1, 3)); diff != "" {
			t.Errorf("closed (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(positionsOf(closed), []int{0, 0, 0}); diff != "" {
			t.Errorf("closed positions (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(sessionsOf(mustList(t, s, tn, HandoffClosed, 2)), ids(0, 1)); diff != "" {
			t.Errorf("closed, limit 2: the two closed last (-got +want):\n%s", diff)
		}
		if hs := mustList(t, s, tn, HandoffAgent, 0); len(hs) != 0 {
			t.Errorf("agent after the closes: %v, want none", sessionsOf(hs))
		}
		if _, err := s.ListHandoffs(ctx, tn, "bot", 0); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("ListHandoffs of an unknown status: %v, want an error", err)
		}
		if hs := mustList(t, s, "globex", HandoffWaiting, 0); len(hs) != 0 {
			t.Errorf("a tenant without handoffs lists %d", len(hs))
		}
	})

	t.Run("list defaults to 100", func(t *testing.T) {
		s := newStore(t)
		for i := range defaultListLimit + 3 {
			mustOpen(t, s, testRef("acme", "u1"), CauseAsked, "", at(i))
		}
		if hs := mustList(t, s, "acme", HandoffWaiting, 0); len(hs) != defaultListLimit || hs[len(hs)-1].Position != defaultListLimit {
			t.Errorf("ListHandoffs(limit 0): %d records, want %d", len(hs), defaultListLimit)
		}
		if hs := mustList(t, s, "acme", HandoffWaiting, defaultListLimit+10); len(hs) != defaultListLimit+3 {
			t.Errorf("ListHandoffs(limit %d): %d records, want %d", defaultListLimit+10, len(hs), defaultListLimit+3)
		}
	})

	t.Run("closed index keeps the newest", func(t *testing.T) {
		if testing.Short() {
			t.Skip("opens and closes MaxClosedHandoffs+1 handoffs")
		}
		s := newStore(t)
		refs := make([]Ref, MaxClosedHandoffs+1)
		for i := range refs {
			refs[i] = testRef("acme", "u1")
			mustOpen(t, s, refs[i], CauseAsked, "", at(i))
			mustClaim(t, s, refs[i], "a1", at(i))
			mustClose(t, s, refs[i], "a1", at(i))
		}
		closed := mustList(t, s, "acme", HandoffClosed, 2*MaxClosedHandoffs)
		if len(closed) != MaxClosedHandoffs {
			t.Fatalf("closed index lists %d, want %d", len(closed), MaxClosedHandoffs)
		}
		if closed[0].Session != refs[1].Session {
			t.Errorf("the oldest listed closed handoff is not the second closed")
		}
		// The record itself lives on with its session.
		if h := mustGet(t, s, refs[0]); h.Status != HandoffClosed {
			t.Errorf("the first closed record: status %q, want closed", h.Status)
		}
	})

	t.Run("count waiting", func(t *testing.T) {
		s := newStore(t)
		if n := mustCount(t, s, "acme"); n != 0 {
			t.Errorf("CountWaiting of an empty store: %d", n)
		}
		refs := []Ref{testRef("acme", "u1"), testRef("acme", "u2"), testRef("acme", "u3")}
		for i, ref := range refs {
			mustOpen(t, s, ref, CauseAsked, "", at(i))
		}
		mustOpen(t, s, refs[0], CauseAsked, "", at(5)) // not new: counted once
		if n := mustCount(t, s, "acme"); n != 3 {
			t.Errorf("CountWaiting: %d, want 3", n)
		}
		mustClaim(t, s, refs[1], "a1", at(6))
		if n := mustCount(t, s, "acme"); n != 2 {
			t.Errorf("CountWaiting after a claim: %d, want 2", n)
		}
		if n := mustCount(t, s, "globex"); n != 0 {
			t.Errorf("CountWaiting of another tenant: %d, want 0", n)
		}
	})

	t.Run("events", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		_, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, []byte(`{}`))
		wantNotFound(t, "AppendEvent of no session", err)
		_, err = s.EventsAfter(ctx, ref.Tenant, ref.Session, 0)
		wantNotFound(t, "EventsAfter of no session", err)
		mustAppend(t, s, ref, testTurn(1, "m1"))
		if evs, err := s.EventsAfter(ctx, ref.Tenant, ref.Session, 0); err != nil || len(evs) != 0 {
			t.Errorf("EventsAfter of a session without events: %v, %v", evs, err)
		}
		var want []Event
		for i := 1; i <= 5; i++ {
			data := []byte(fmt.Sprintf(`{"n":%d}`, i))
			seq, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, data)
			if err != nil {
				t.Fatal(err)
			}
			if seq != int64(i) {
				t.Errorf("event %d: seq %d", i, seq)
			}
			want = append(want, Event{Seq: int64(i), Data: slices.Clone(data)})
			data[0] = 'X' // the store kept its own copy
		}
		for _, after := range []int64{-1, 0, 2, 4, 5, 9} {
			got, err := s.EventsAfter(ctx, ref.Tenant, ref.Session, after)
			if err != nil {
				t.Fatal(err)
			}
			w := want[min(max(after, 0), 5):]
			if len(w) == 0 {
				w = nil
			}
			if diff := cmp.Diff(got, w, cmp.Comparer(func(a, b []byte) bool { return string(a) == string(b) })); diff != "" {
				t.Errorf("EventsAfter(%d) (-got +want):\n%s", after, diff)
			}
		}
		for i := 6; i <= MaxEvents+10; i++ {
			if _, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.EventsAfter(ctx, ref.Tenant, ref.Session, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != MaxEvents || got[0].Seq != 11 || got[len(got)-1].Seq != MaxEvents+10 ||
			string(got[0].Data) != `{"n":11}` {
			t.Errorf("after %d events: kept %d, seq %d..%d", MaxEvents+10, len(got), got[0].Seq, got[len(got)-1].Seq)
		}
		if got, _ := s.EventsAfter(ctx, ref.Tenant, ref.Session, MaxEvents+5); len(got) != 5 || got[0].Seq != MaxEvents+6 {
			t.Errorf("EventsAfter(%d): %d events", MaxEvents+5, len(got))
		}
	})

	t.Run("agent presence expires", func(t *testing.T) {
		s := newStore(t)
		now := time.Now().Truncate(time.Millisecond)
		tn := tenant.ID("acme")
		if n, err := s.AgentsOnline(ctx, tn, now); err != nil || n != 0 {
			t.Errorf("AgentsOnline with none seen: %d, %v", n, err)
		}
		for _, a := range []struct {
			id    string
			until time.Duration
		}{{"a1", time.Minute}, {"a2", 2 * time.Minute}, {"a1", 90 * time.Second}} {
			if err := s.SeeAgent(ctx, tn, a.id, now.Add(a.until)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			at   time.Duration
			want int
		}{{0, 2}, {80 * time.Second, 2}, {90 * time.Second, 1}, {2 * time.Minute, 0}} {
			if n, err := s.AgentsOnline(ctx, tn, now.Add(c.at)); err != nil || n != c.want {
				t.Errorf("AgentsOnline at +%v: %d, %v; want %d", c.at, n, err, c.want)
			}
		}
		if err := s.SeeAgent(ctx, tn, "a1", now.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if n, _ := s.AgentsOnline(ctx, "globex", now); n != 0 {
			t.Errorf("AgentsOnline of another tenant: %d, want 0", n)
		}
		if n, _ := s.AgentsOnline(ctx, tn, now.Add(2*time.Minute)); n != 1 {
			t.Errorf("AgentsOnline after a1 came back: %d, want 1", n)
		}
	})

	t.Run("tenants do not share handoffs", func(t *testing.T) {
		s := newStore(t)
		a := testRef("acme", "u1")
		b := a
		b.Tenant = "globex"
		mustOpen(t, s, a, CauseAsked, "", at(0))
		if _, err := s.AppendEvent(ctx, a.Tenant, a.Session, []byte(`{"t":"a"}`)); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetHandoff(ctx, b.Tenant, b.Session)
		wantNotFound(t, "GetHandoff in the other tenant", err)
		_, err = s.ClaimHandoff(ctx, b.Tenant, b.Session, "a1", "", at(1))
		wantNotFound(t, "ClaimHandoff in the other tenant", err)
		wantNotFound(t, "NoteHandoffMessage in the other tenant", s.NoteHandoffMessage(ctx, b.Tenant, b.Session, "x", at(1)))
		_, err = s.AppendEvent(ctx, b.Tenant, b.Session, []byte(`{}`))
		wantNotFound(t, "AppendEvent in the other tenant", err)
		_, err = s.EventsAfter(ctx, b.Tenant, b.Session, 0)
		wantNotFound(t, "EventsAfter in the other tenant", err)
		if hs := mustList(t, s, b.Tenant, HandoffWaiting, 0); len(hs) != 0 {
			t.Errorf("the other tenant lists %d waiting", len(hs))
		}
		// The same session id in the other tenant is a session of its own.
		h, opened := mustOpen(t, s, b, CauseButton, "", at(1))
		if !opened || h.Position != 1 {
			t.Errorf("OpenHandoff in the other tenant: position %d, new %v; want 1, true", h.Position, opened)
		}
		if seq, err := s.AppendEvent(ctx, b.Tenant, b.Session, []byte(`{"t":"b"}`)); err != nil || seq != 1 {
			t.Errorf("the other tenant's first event: seq %d, %v; want 1", seq, err)
		}
		mustClaim(t, s, b, "a1", at(2))
		if h := mustGet(t, s, a); h.Status != HandoffWaiting || h.Cause != CauseAsked {
			t.Errorf("tenant a's record after tenant b's claim: %+v", h)
		}
		if n := mustCount(t, s, a.Tenant); n != 1 {
			t.Errorf("CountWaiting of tenant a: %d, want 1", n)
		}
		evs, err := s.EventsAfter(ctx, a.Tenant, a.Session, 0)
		if err != nil || len(evs) != 1 || string(evs[0].Data) != `{"t":"a"}` {
			t.Errorf("tenant a's events: %v, %v", evs, err)
		}
	})

	t.Run("foreign user cannot open", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "owner")
		mustAppend(t, s, ref, testTurn(1, "m1"))
		other := ref
		other.User = "intruder"
		_, _, err := s.OpenHandoff(ctx, other, CauseAsked, "", at(0))
		wantNotFound(t, "OpenHandoff by another user", err)
		_, err = s.GetHandoff(ctx, ref.Tenant, ref.Session)
		wantNotFound(t, "GetHandoff after the intruder's open", err)
		mustOpen(t, s, ref, CauseAsked, "", at(1))
		_, _, err = s.OpenHandoff(ctx, other, CauseAsked, "", at(2))
		wantNotFound(t, "OpenHandoff by another user of a waiting session", err)
		_, err = s.LoadRecent(ctx, other, 1, "", "")
		wantNotFound(t, "LoadRecent by another user", err)
	})

	t.Run("malformed ids are not found", func(t *testing.T) {
		s := newStore(t)
		good := testRef("acme", "u1")
		mustOpen(t, s, good, CauseAsked, "", at(0))
		for _, c := range []struct {
			tn      tenant.ID
			session string
		}{
			{"acme", "short"},
			{"acme", good.Session + "}:x"},
			{"Acme", good.Session},
			{"ac{me}", good.Session},
			{"", good.Session},
		} {
			ref := Ref{Tenant: c.tn, Session: c.session, User: "u1"}
			_, _, err := s.OpenHandoff(ctx, ref, CauseAsked, "", at(1))
			wantNotFound(t, "OpenHandoff "+c.session, err)
			_, err = s.GetHandoff(ctx, c.tn, c.session)
			wantNotFound(t, "GetHandoff", err)
			_, err = s.ClaimHandoff(ctx, c.tn, c.session, "a1", "", at(1))
			wantNotFound(t, "ClaimHandoff", err)
			_, err = s.CloseHandoff(ctx, c.tn, c.session, "a1", "", at(1))
			wantNotFound(t, "CloseHandoff", err)
			wantNotFound(t, "NoteHandoffMessage", s.NoteHandoffMessage(ctx, c.tn, c.session, "x", at(1)))
			_, err = s.AppendEvent(ctx, c.tn, c.session, []byte(`{}`))
			wantNotFound(t, "AppendEvent", err)
			_, err = s.EventsAfter(ctx, c.tn, c.session, 0)
			wantNotFound(t, "EventsAfter", err)
			if c.session != good.Session {
				continue // tenant-wide calls take no session
			}
			_, err = s.ListHandoffs(ctx, c.tn, HandoffWaiting, 0)
			wantNotFound(t, "ListHandoffs", err)
			_, err = s.CountWaiting(ctx, c.tn)
			wantNotFound(t, "CountWaiting", err)
			wantNotFound(t, "SeeAgent", s.SeeAgent(ctx, c.tn, "a1", time.Now().Add(time.Minute)))
			_, err = s.AgentsOnline(ctx, c.tn, time.Now())
			wantNotFound(t, "AgentsOnline", err)
		}
	})

	t.Run("delete erases the handoff and events", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustOpen(t, s, ref, CauseAsked, "", at(0))
		if _, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetHandoff(ctx, ref.Tenant, ref.Session)
		wantNotFound(t, "GetHandoff after Delete", err)
		_, err = s.EventsAfter(ctx, ref.Tenant, ref.Session, 0)
		wantNotFound(t, "EventsAfter after Delete", err)
		if n := mustCount(t, s, ref.Tenant); n != 0 {
			t.Errorf("CountWaiting after Delete: %d", n)
		}
		if hs := mustList(t, s, ref.Tenant, HandoffWaiting, 0); len(hs) != 0 {
			t.Errorf("ListHandoffs after Delete: %d", len(hs))
		}
		// The same id again is a new session: no record, events from 1.
		mustAppend(t, s, ref, testTurn(1, "m1"))
		_, err = s.GetHandoff(ctx, ref.Tenant, ref.Session)
		wantNotFound(t, "GetHandoff of the session made again", err)
		if seq, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, []byte(`{}`)); err != nil || seq != 1 {
			t.Errorf("first event of the session made again: seq %d, %v; want 1", seq, err)
		}

		// A deleted claimed or closed handoff leaves its index too.
		for _, status := range []string{HandoffAgent, HandoffClosed} {
			ref := testRef("acme", "u1")
			mustOpen(t, s, ref, CauseAsked, "", at(1))
			mustClaim(t, s, ref, "a1", at(2))
			if status == HandoffClosed {
				mustClose(t, s, ref, "a1", at(3))
			}
			if err := s.Delete(ctx, ref); err != nil {
				t.Fatal(err)
			}
			if hs := mustList(t, s, ref.Tenant, status, 0); len(hs) != 0 {
				t.Errorf("ListHandoffs(%s) after Delete: %d", status, len(hs))
			}
		}
	})

	t.Run("load recent carries the handoff", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		turn := testTurn(1, "m1")
		mustAppend(t, s, ref, turn)
		rec, err := s.LoadRecent(ctx, ref, 1, "", "m1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rec.Handoff, Handoff{}); diff != "" {
			t.Errorf("LoadRecent before a handoff (-got +want):\n%s", diff)
		}
		mustOpen(t, s, testRef("acme", "u0"), CauseAsked, "", at(0)) // ahead in the queue
		mustOpen(t, s, ref, CauseAsked, "help", at(1))
		want := mustGet(t, s, ref)
		if want.Position != 2 {
			t.Errorf("position %d, want 2", want.Position)
		}
		want.Position = 0
		for _, c := range []struct {
			n           int
			turnID, cid string
		}{{0, "", ""}, {1, "", "m1"}, {1, turn.ID, ""}, {5, "", "nope"}} {
			rec, err = s.LoadRecent(ctx, ref, c.n, c.turnID, c.cid)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(rec.Handoff, want); diff != "" {
				t.Errorf("LoadRecent(%d, %q, %q).Handoff (-got +want):\n%s", c.n, c.turnID, c.cid, diff)
			}
			if (c.turnID != "" || c.cid == "m1") && (rec.Found == nil || rec.Found.ID != turn.ID) {
				t.Errorf("LoadRecent(%d, %q, %q) did not find the turn", c.n, c.turnID, c.cid)
			}
		}
		mustClaim(t, s, ref, "a1", at(2))
		rec, err = s.LoadRecent(ctx, ref, 0, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Handoff.Status != HandoffAgent || rec.Handoff.AgentName != "Agent a1" || !rec.Handoff.Active() {
			t.Errorf("LoadRecent after the claim: %+v", rec.Handoff)
		}
	})
}

// checkOneClaim checks that exactly one of concurrent claims, which returned errs,
// won, that the others were ErrConflict, and that the record h names the winner.
func checkOneClaim(t *testing.T, errs []error, h Handoff) {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("claims %d and %d both won", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrConflict):
			t.Errorf("claim %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no claim won")
	}
	if h.Status != HandoffAgent || h.AgentID != fmt.Sprintf("a%d", winner) {
		t.Errorf("record after the claims: status %q agent %q; want agent a%d", h.Status, h.AgentID, winner)
	}
}

func mustLoadTurns(t *testing.T, s handoffStore, ref Ref) []Turn {
	t.Helper()
	turns, err := s.Load(context.Background(), ref)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return turns
}

func TestRedisStoreHandoffKeys(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns, TTL: time.Hour})
	ref := testRef("acme", "u1")
	mustOpen(t, s, ref, CauseAsked, "help", at(0))
	if _, err := s.AppendEvent(ctx, ref.Tenant, ref.Session, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SeeAgent(ctx, ref.Tenant, "a1", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, err := scanKeys(ctx, c, s.prefix)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	base := s.prefix + "{acme:" + ref.Session + "}:"
	want := []string{
		s.prefix + "agents:{acme}",
		s.prefix + "handoffs:{acme}:waiting",
		base + "events", base + "evseq", base + "handoff", base + "owner",
	}
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("keys: got %q, want %q", keys, want)
	}
	if got := c.HGet(ctx, base+"handoff", fieldStatus).Val(); got != HandoffWaiting {
		t.Errorf("record status field %q, want waiting", got)
	}
	if got := c.ZScore(ctx, s.prefix+"handoffs:{acme}:waiting", ref.Session).Val(); got != float64(at(0).UnixMilli()) {
		t.Errorf("queue score %v, want WaitingSince in ms %d", got, at(0).UnixMilli())
	}
	for _, k := range []string{base + "handoff", base + "events", base + "evseq"} {
		if got := c.PTTL(ctx, k).Val(); got < 59*time.Minute || got > time.Hour {
			t.Errorf("PTTL %s = %v, want the session's", k, got)
		}
	}
	if got := c.PTTL(ctx, s.prefix+"agents:{acme}").Val(); got <= 0 || got > time.Minute+time.Second {
		t.Errorf("agents key PTTL %v, want until its last agent's presence ends", got)
	}
}

// TestRedisStoreClaimAcrossClients claims one handoff from two stores with clients of
// their own, as two replicas would.
func TestRedisStoreClaimAcrossClients(t *testing.T) {
	ctx := context.Background()
	a, _ := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
	b, err := NewRedisStore(testRedisClient(t), RedisConfig{KeyPrefix: a.prefix, MaxTurns: contractMaxTurns})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		ref := testRef("acme", "u1")
		mustOpen(t, a, ref, CauseAsked, "", at(round))
		const n = 20
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				_, errs[i] = s.ClaimHandoff(ctx, ref.Tenant, ref.Session, fmt.Sprintf("a%d", i), "", at(round+1))
			})
		}
		close(start)
		wg.Wait()
		checkOneClaim(t, errs, mustGet(t, b, ref))
	}
	if n := mustCount(t, b, "acme"); n != 0 {
		t.Errorf("CountWaiting after the claims: %d, want 0", n)
	}
	if hs := mustList(t, a, "acme", HandoffAgent, 0); len(hs) != 5 {
		t.Errorf("ListHandoffs(agent): %d, want 5", len(hs))
	}
}

// TestRedisStoreHandoffIndexIsRepaired checks that index entries a record does not
// back (a second step that did not run, an expired session) do not count and are
// dropped, and that a record missing from its index is put back by the next open.
func TestRedisStoreHandoffIndexIsRepaired(t *testing.T) {
	ctx := context.Background()
	s, c := testRedisStore(t, RedisConfig{MaxTurns: contractMaxTurns})
	waitingKey := s.indexKeys("acme")[0]
	live, claimed := testRef("acme", "u1"), testRef("acme", "u2")
	mustOpen(t, s, claimed, CauseAsked, "", at(0))
	mustOpen(t, s, live, CauseAsked, "", at(2))
	mustClaim(t, s, claimed, "a1", at(3))
	ghost := NewID()
	// Entries a crash between the steps would leave: the claimed one still queued, and
	// a session without a record.
	c.ZAdd(ctx, waitingKey,
		redisZ(claimed.Session, at(0)), redisZ(ghost, at(1)))
	if got := mustGet(t, s, live).Position; got != 1 {
		t.Errorf("position behind stale entries: %d, want 1", got)
	}
	if n := mustCount(t, s, "acme"); n != 1 {
		t.Errorf("CountWaiting with stale entries: %d, want 1", n)
	}
	if got := c.ZRange(ctx, waitingKey, 0, -1).Val(); !slices.Equal(got, []string{live.Session}) {
		t.Errorf("queue after the count: %q, want only the live session", got)
	}

	// A waiting record its index lost is put back when the session asks again.
	c.ZRem(ctx, waitingKey, live.Session)
	if h, opened := mustOpen(t, s, live, CauseAsked, "", at(9)); opened || h.Position != 1 {
		t.Errorf("open of a waiting session missing from the queue: position %d, new %v; want 1, false", h.Position, opened)
	}
	if n := mustCount(t, s, "acme"); n != 1 {
		t.Errorf("CountWaiting after the repair: %d, want 1", n)
	}

	// An expired session's entry is dropped by the next reader.
	short := testRef("acme", "u3")
	if _, err := s.Append(ctx, short, testTurn(1, "m1"), time.Second); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, s, short, CauseAsked, "", at(10))
	if got := c.PTTL(ctx, s.keys(short)[keyHandoff]).Val(); got <= 0 || got > time.Second {
		t.Errorf("record of a session with 1s left: PTTL %v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, s.keys(short)[keyOwner]).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a session with a 1s TTL still there after 5s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := mustCount(t, s, "acme"); n != 1 {
		t.Errorf("CountWaiting after an expiry: %d, want 1", n)
	}
	if hs := mustList(t, s, "acme", HandoffWaiting, 0); len(hs) != 1 || hs[0].Session != live.Session {
		t.Errorf("ListHandoffs after an expiry: %v", sessionsOf(hs))
	}
	if n := c.ZCard(ctx, waitingKey).Val(); n != 1 {
		t.Errorf("queue holds %d entries after an expiry, want 1", n)
	}
}

func redisZ(member string, score time.Time) redis.Z {
	return redis.Z{Member: member, Score: float64(score.UnixMilli())}
}
