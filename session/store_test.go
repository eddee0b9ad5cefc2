package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
	"github.com/google/go-cmp/cmp"
)

// Store is the method set both stores share; the contract suite runs against it.
type Store interface {
	Load(ctx context.Context, ref Ref) ([]Turn, error)
	LoadRecent(ctx context.Context, ref Ref, n int, turnID, clientMsgID string) (Recent, error)
	Append(ctx context.Context, ref Ref, t Turn, ttl time.Duration) (Turn, error)
	Delete(ctx context.Context, ref Ref) error
	SaveQueued(ctx context.Context, q QueuedTurn, ttl time.Duration) error
	LoadQueued(ctx context.Context, t tenant.ID, user, turnID string) (QueuedTurn, error)
	Ping(ctx context.Context) error
}

var (
	_ Store = (*MemoryStore)(nil)
	_ Store = (*RedisStore)(nil)
)

// lookup finds the retained turn whose ClientMsgID is clientMsgID as the engine does,
// through LoadRecent: ErrNotFound when the session or the turn is not there.
func lookup(ctx context.Context, s interface {
	LoadRecent(ctx context.Context, ref Ref, n int, turnID, clientMsgID string) (Recent, error)
}, ref Ref, clientMsgID string) (Turn, error) {
	rec, err := s.LoadRecent(ctx, ref, 0, "", clientMsgID)
	if err != nil {
		return Turn{}, err
	}
	if rec.Found == nil {
		return Turn{}, ErrNotFound
	}
	return *rec.Found, nil
}

// contractMaxTurns is the MaxTurns every store under the contract suite must have.
const contractMaxTurns = 5

// testRef returns a reference to a fresh session of user in tenant tn.
func testRef(tn, user string) Ref {
	return Ref{Tenant: tenant.ID(tn), Session: NewID(), User: user}
}

var testEpoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// testTurn returns a distinct turn numbered n.
func testTurn(n int, clientMsgID string) Turn {
	at := testEpoch.Add(time.Duration(n) * time.Minute)
	return Turn{
		ID:          NewTurnID(),
		ClientMsgID: clientMsgID,
		User:        fmt.Sprintf("question %d: 我的订单在哪里?", n),
		Answer:      fmt.Sprintf("answer %d", n),
		Source:      "faq",
		Confidence:  0.875,
		Citations:   []Citation{{ID: fmt.Sprintf("kb-%d", n), Question: "Where is my order?"}},
		Suggestions: []Citation{{ID: "kb-refund", Question: "How do I get a refund?"}},
		At:          at,
		AnsweredAt:  at.Add(1500 * time.Millisecond),
	}
}

// testQueued returns a queued turn record of a fresh session and turn of user in tenant tn.
func testQueued(tn, user, clientMsgID string) QueuedTurn {
	return QueuedTurn{Ref: testRef(tn, user), TurnID: NewTurnID(), ClientMsgID: clientMsgID}
}

func mustSaveQueued(t *testing.T, s Store, q QueuedTurn, ttl time.Duration) {
	t.Helper()
	if err := s.SaveQueued(context.Background(), q, ttl); err != nil {
		t.Fatalf("SaveQueued: %v", err)
	}
}

func mustAppend(t *testing.T, s Store, ref Ref, turn Turn) Turn {
	t.Helper()
	got, err := s.Append(context.Background(), ref, turn, 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return got
}

func mustLoad(t *testing.T, s Store, ref Ref) []Turn {
	t.Helper()
	got, err := s.Load(context.Background(), ref)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return got
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("%s: got error %v, want ErrNotFound", what, err)
	}
}

// runStoreContract checks the behaviour every Store must have. newStore returns an
// empty store (or one whose other sessions do not matter) with MaxTurns ==
// contractMaxTurns and a TTL of at least a minute.
func runStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("append creates session then load", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		wantNotFound(t, "Load before Append", func() error { _, err := s.Load(ctx, ref); return err }())
		turn := testTurn(1, "m1")
		if got := mustAppend(t, s, ref, turn); !cmp.Equal(got, turn) {
			t.Errorf("Append returned a different turn (-got +want):\n%s", cmp.Diff(got, turn))
		}
		if diff := cmp.Diff(mustLoad(t, s, ref), []Turn{turn}); diff != "" {
			t.Errorf("Load (-got +want):\n%s", diff)
		}
	})

	t.Run("load returns oldest first", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		var want []Turn
		for i := range 3 {
			turn := testTurn(i, "")
			mustAppend(t, s, ref, turn)
			want = append(want, turn)
		}
		if diff := cmp.Diff(mustLoad(t, s, ref), want); diff != "" {
			t.Errorf("Load (-got +want):\n%s", diff)
		}
	})

	t.Run("trims to max turns", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		var all []Turn
		for i := range contractMaxTurns + 3 {
			turn := testTurn(i, fmt.Sprintf("m%d", i))
			mustAppend(t, s, ref, turn)
			all = append(all, turn)
		}
		want := all[len(all)-contractMaxTurns:]
		if diff := cmp.Diff(mustLoad(t, s, ref), want); diff != "" {
			t.Errorf("Load (-got +want):\n%s", diff)
		}
		// A lookup by client message id sees exactly the retained turns.
		_, err := lookup(ctx, s, ref, all[0].ClientMsgID)
		wantNotFound(t, "lookup of a trimmed turn", err)
		got, err := lookup(ctx, s, ref, want[0].ClientMsgID)
		if err != nil || got.ID != want[0].ID {
			t.Errorf("lookup of the oldest retained turn: got %q, %v; want %q", got.ID, err, want[0].ID)
		}
	})

	t.Run("foreign user sees nothing and changes nothing", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "owner")
		turn := testTurn(1, "m1")
		mustAppend(t, s, ref, turn)
		other := ref
		other.User = "intruder"
		_, err := s.Load(ctx, other)
		wantNotFound(t, "Load", err)
		_, err = s.Append(ctx, other, testTurn(2, "m2"), 0)
		wantNotFound(t, "Append", err)
		_, err = lookup(ctx, s, other, "m1")
		wantNotFound(t, "lookup", err)
		wantNotFound(t, "Delete", s.Delete(ctx, other))
		if diff := cmp.Diff(mustLoad(t, s, ref), []Turn{turn}); diff != "" {
			t.Errorf("owner's Load after the intruder (-got +want):\n%s", diff)
		}
	})

	t.Run("tenants do not share sessions", func(t *testing.T) {
		s := newStore(t)
		a := testRef("acme", "u1")
		b := a
		b.Tenant = "globex"
		ta, tb := testTurn(1, "m1"), testTurn(2, "m1")
		mustAppend(t, s, a, ta)
		_, err := s.Load(ctx, b)
		wantNotFound(t, "Load in the other tenant", err)
		_, err = lookup(ctx, s, b, "m1")
		wantNotFound(t, "lookup in the other tenant", err)
		wantNotFound(t, "Delete in the other tenant", s.Delete(ctx, b))
		if got := mustAppend(t, s, b, tb); got.ID != tb.ID {
			t.Errorf("Append in the other tenant with the same client msg id returned turn %q, want its own %q", got.ID, tb.ID)
		}
		if diff := cmp.Diff(mustLoad(t, s, a), []Turn{ta}); diff != "" {
			t.Errorf("Load in tenant a (-got +want):\n%s", diff)
		}
		if diff := cmp.Diff(mustLoad(t, s, b), []Turn{tb}); diff != "" {
			t.Errorf("Load in tenant b (-got +want):\n%s", diff)
		}
	})

	t.Run("append is idempotent by client msg id", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		first, retry := testTurn(1, "m1"), testTurn(2, "m1")
		mustAppend(t, s, ref, first)
		if diff := cmp.Diff(mustAppend(t, s, ref, retry), first); diff != "" {
			t.Errorf("second Append returned (-got +want):\n%s", diff)
		}
		noID := testTurn(3, "")
		mustAppend(t, s, ref, noID)
		mustAppend(t, s, ref, noID) // no client msg id: stored again
		if diff := cmp.Diff(mustLoad(t, s, ref), []Turn{first, noID, noID}); diff != "" {
			t.Errorf("Load (-got +want):\n%s", diff)
		}
	})

	t.Run("concurrent appends of one client msg id store once", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		const n = 16
		got := make([]Turn, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = s.Append(ctx, ref, testTurn(i, "same"), 0) })
		}
		wg.Wait()
		stored := mustLoad(t, s, ref)
		if len(stored) != 1 {
			t.Fatalf("Load: got %d turns, want 1", len(stored))
		}
		for i := range n {
			if errs[i] != nil || got[i].ID != stored[0].ID {
				t.Errorf("Append %d: got turn %q, %v; want the stored %q", i, got[i].ID, errs[i], stored[0].ID)
			}
		}
	})

	t.Run("concurrent distinct appends are all stored", func(t *testing.T) {
		s := newStore(t)
		const sessions = 4
		refs := make([]Ref, sessions)
		for i := range refs {
			refs[i] = testRef("acme", fmt.Sprintf("u%d", i))
		}
		var wg sync.WaitGroup
		for i := range sessions * contractMaxTurns {
			wg.Go(func() {
				if _, err := s.Append(ctx, refs[i%sessions], testTurn(i, fmt.Sprintf("m%d", i)), 0); err != nil {
					t.Errorf("Append %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		for i, ref := range refs {
			turns := mustLoad(t, s, ref)
			seen := map[string]bool{}
			for _, turn := range turns {
				seen[turn.ClientMsgID] = true
			}
			for j := i; j < sessions*contractMaxTurns; j += sessions {
				if !seen[fmt.Sprintf("m%d", j)] {
					t.Errorf("session %d: turn m%d missing from %d turns", i, j, len(turns))
				}
			}
		}
	})

	t.Run("delete erases the session", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		mustAppend(t, s, ref, testTurn(1, "m1"))
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := s.Load(ctx, ref)
		wantNotFound(t, "Load after Delete", err)
		_, err = lookup(ctx, s, ref, "m1")
		wantNotFound(t, "lookup after Delete", err)
		wantNotFound(t, "second Delete", s.Delete(ctx, ref))
		// The idempotency data went too: the same client msg id stores a new turn.
		again := testTurn(2, "m1")
		if got := mustAppend(t, s, ref, again); got.ID != again.ID {
			t.Errorf("Append after Delete returned turn %q, want the new %q", got.ID, again.ID)
		}
		if got := mustLoad(t, s, ref); len(got) != 1 {
			t.Errorf("Load after Delete and Append: got %d turns, want 1", len(got))
		}
	})

	t.Run("lookup", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		want := testTurn(1, "m1")
		mustAppend(t, s, ref, want)
		mustAppend(t, s, ref, testTurn(2, "m2"))
		got, err := lookup(ctx, s, ref, "m1")
		if err != nil {
			t.Fatalf("lookup: %v", err)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("lookup (-got +want):\n%s", diff)
		}
		_, err = lookup(ctx, s, ref, "unknown")
		wantNotFound(t, "lookup of an unknown id", err)
		_, err = lookup(ctx, s, ref, "")
		wantNotFound(t, "lookup of an empty id", err)
		_, err = lookup(ctx, s, testRef("acme", "u1"), "m1")
		wantNotFound(t, "lookup in a missing session", err)
	})

	t.Run("load recent", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		var all []Turn // all[i] has client msg id m<i>
		for i := range 4 {
			turn := testTurn(i, fmt.Sprintf("m%d", i))
			mustAppend(t, s, ref, turn)
			all = append(all, turn)
		}
		for _, tc := range []struct {
			name          string
			n             int
			turnID, cmid  string
			turns         []Turn
			found         *Turn
			foundInReturn bool
		}{
			{name: "fewer than retained", n: 2, turns: all[2:]},
			{name: "more than retained", n: 10, turns: all},
			{name: "exactly retained", n: 4, turns: all},
			{name: "none", n: 0},
			{name: "negative", n: -1, cmid: "m1", found: &all[1]},
			{name: "by client msg id", n: 1, cmid: "m1", turns: all[3:], found: &all[1]},
			{name: "by turn id", n: 1, turnID: all[0].ID, turns: all[3:], found: &all[0]},
			{name: "by turn id among the returned", n: 2, turnID: all[2].ID, turns: all[2:], found: &all[2], foundInReturn: true},
			{name: "by client msg id among the returned", n: 2, cmid: "m3", turns: all[2:], found: &all[3], foundInReturn: true},
			{name: "turn id match newer than client msg id match", n: 1, turnID: all[2].ID, cmid: "m0", turns: all[3:], found: &all[2]},
			{name: "client msg id match newer than turn id match", n: 1, turnID: all[0].ID, cmid: "m2", turns: all[3:], found: &all[2]},
			{name: "both match one turn", n: 0, turnID: all[1].ID, cmid: "m1", found: &all[1]},
			{name: "turn id known, client msg id not", n: 0, turnID: all[1].ID, cmid: "unknown", found: &all[1]},
			{name: "client msg id known, turn id not", n: 0, turnID: NewTurnID(), cmid: "m1", found: &all[1]},
			{name: "neither known", n: 2, turnID: NewTurnID(), cmid: "unknown", turns: all[2:]},
			{name: "client msg id is not a turn id", n: 0, turnID: "m1"},
			{name: "turn id is not a client msg id", n: 0, cmid: all[1].ID},
			{name: "turn id prefix is not a turn id", n: 0, turnID: all[1].ID[:10]},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.LoadRecent(ctx, ref, tc.n, tc.turnID, tc.cmid)
				if err != nil {
					t.Fatalf("LoadRecent: %v", err)
				}
				if diff := cmp.Diff(got.Turns, tc.turns); diff != "" {
					t.Errorf("Turns (-got +want):\n%s", diff)
				}
				if diff := cmp.Diff(got.Found, tc.found); diff != "" {
					t.Errorf("Found (-got +want):\n%s", diff)
				}
				if tc.foundInReturn {
					pointsIn := false
					for i := range got.Turns {
						pointsIn = pointsIn || got.Found == &got.Turns[i]
					}
					if !pointsIn {
						t.Errorf("Found does not point into Turns")
					}
				}
			})
		}
	})

	t.Run("load recent finds the newest of equal turn ids", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		older, newer := testTurn(1, ""), testTurn(2, "")
		newer.ID = older.ID
		mustAppend(t, s, ref, older)
		mustAppend(t, s, ref, newer)
		mustAppend(t, s, ref, testTurn(3, ""))
		got, err := s.LoadRecent(ctx, ref, 1, older.ID, "")
		if err != nil {
			t.Fatalf("LoadRecent: %v", err)
		}
		if diff := cmp.Diff(got.Found, &newer); diff != "" {
			t.Errorf("Found (-got +want):\n%s", diff)
		}
	})

	t.Run("load recent searches by turn id only when given", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		blank := testTurn(1, "")
		blank.ID = ""
		mustAppend(t, s, ref, blank)
		got, err := s.LoadRecent(ctx, ref, 1, "", "")
		if err != nil {
			t.Fatalf("LoadRecent: %v", err)
		}
		if got.Found != nil {
			t.Errorf("Found %+v with no turn id and no client msg id, want nil", got.Found)
		}
		if diff := cmp.Diff(got.Turns, []Turn{blank}); diff != "" {
			t.Errorf("Turns (-got +want):\n%s", diff)
		}
	})

	t.Run("load recent does not find trimmed turns", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		var all []Turn
		for i := range contractMaxTurns + 2 {
			turn := testTurn(i, fmt.Sprintf("m%d", i))
			mustAppend(t, s, ref, turn)
			all = append(all, turn)
		}
		retained := all[len(all)-contractMaxTurns:]
		for _, trimmed := range all[:2] {
			got, err := s.LoadRecent(ctx, ref, 100, trimmed.ID, trimmed.ClientMsgID)
			if err != nil {
				t.Fatalf("LoadRecent: %v", err)
			}
			if got.Found != nil {
				t.Errorf("Found trimmed turn %s", got.Found.ClientMsgID)
			}
			if diff := cmp.Diff(got.Turns, retained); diff != "" {
				t.Errorf("Turns (-got +want):\n%s", diff)
			}
		}
		oldest := retained[0]
		got, err := s.LoadRecent(ctx, ref, 0, oldest.ID, "")
		if err != nil || got.Found == nil || got.Found.ID != oldest.ID {
			t.Errorf("LoadRecent of the oldest retained turn: got %+v, %v", got.Found, err)
		}
		got, err = s.LoadRecent(ctx, ref, 0, "", oldest.ClientMsgID)
		if err != nil || got.Found == nil || got.Found.ID != oldest.ID {
			t.Errorf("LoadRecent of the oldest retained client msg id: got %+v, %v", got.Found, err)
		}
	})

	t.Run("load recent of a session the caller cannot see", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "owner")
		turn := testTurn(1, "m1")
		mustAppend(t, s, ref, turn)
		other := ref
		other.User = "intruder"
		_, err := s.LoadRecent(ctx, other, 1, turn.ID, "m1")
		wantNotFound(t, "LoadRecent by another user", err)
		otherTenant := ref
		otherTenant.Tenant = "globex"
		_, err = s.LoadRecent(ctx, otherTenant, 1, turn.ID, "m1")
		wantNotFound(t, "LoadRecent in another tenant", err)
		_, err = s.LoadRecent(ctx, testRef("acme", "owner"), 1, "", "")
		wantNotFound(t, "LoadRecent of a missing session", err)
		if err := s.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		_, err = s.LoadRecent(ctx, ref, 1, turn.ID, "m1")
		wantNotFound(t, "LoadRecent after Delete", err)
	})

	t.Run("stored turns are not shared with callers", func(t *testing.T) {
		s := newStore(t)
		ref := testRef("acme", "u1")
		turn := testTurn(1, "m1")
		want := testTurn(1, "m1")
		want.ID = turn.ID
		mustAppend(t, s, ref, turn)
		turn.Citations[0].ID = "changed by caller"
		loaded := mustLoad(t, s, ref)
		loaded[0].Citations[0].ID = "changed by reader"
		for _, cmid := range []string{"m1", "other"} {
			rec, err := s.LoadRecent(ctx, ref, 1, "", cmid)
			if err != nil {
				t.Fatal(err)
			}
			rec.Turns[0].Citations[0].ID = "changed by reader"
			if rec.Found != nil {
				rec.Found.Suggestions[0].ID = "changed by reader"
			}
		}
		rec, err := s.LoadRecent(ctx, ref, 0, turn.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		rec.Found.Citations[0].ID = "changed by reader"
		if diff := cmp.Diff(mustLoad(t, s, ref), []Turn{want}); diff != "" {
			t.Errorf("Load (-got +want):\n%s", diff)
		}
	})

	t.Run("malformed refs are not found", func(t *testing.T) {
		s := newStore(t)
		good := testRef("acme", "u1")
		bad := map[string]Ref{
			"short session id":    {Tenant: good.Tenant, Session: "abc", User: "u1"},
			"hash tag in session": {Tenant: good.Tenant, Session: "abcdefgh}{x", User: "u1"},
			"no user":             {Tenant: good.Tenant, Session: good.Session},
			"no tenant":           {Session: good.Session, User: "u1"},
			"bad tenant":          {Tenant: "Acme:{x}", Session: good.Session, User: "u1"},
		}
		for name, ref := range bad {
			_, err := s.Append(ctx, ref, testTurn(1, ""), 0)
			wantNotFound(t, name+": Append", err)
			_, err = s.Load(ctx, ref)
			wantNotFound(t, name+": Load", err)
			_, err = s.LoadRecent(ctx, ref, 1, "", "")
			wantNotFound(t, name+": LoadRecent", err)
		}
	})

	t.Run("queued turn saved then loaded", func(t *testing.T) {
		s := newStore(t)
		for _, q := range []QueuedTurn{testQueued("acme", "u1", "m1"), testQueued("acme", "u1", "")} {
			mustSaveQueued(t, s, q, 0)
			got, err := s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
			if err != nil {
				t.Fatalf("LoadQueued: %v", err)
			}
			if diff := cmp.Diff(got, q); diff != "" {
				t.Errorf("LoadQueued (-got +want):\n%s", diff)
			}
		}
	})

	t.Run("queued turn is its owner's only", func(t *testing.T) {
		s := newStore(t)
		q := testQueued("acme", "owner", "m1")
		mustSaveQueued(t, s, q, 0)
		_, err := s.LoadQueued(ctx, q.Ref.Tenant, "intruder", q.TurnID)
		wantNotFound(t, "LoadQueued by another user", err)
		_, err = s.LoadQueued(ctx, "globex", q.Ref.User, q.TurnID)
		wantNotFound(t, "LoadQueued in another tenant", err)
		_, err = s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, NewTurnID())
		wantNotFound(t, "LoadQueued of an unknown turn", err)

		// The same turn id in another tenant is another record.
		other := q
		other.Ref = testRef("globex", "u2")
		mustSaveQueued(t, s, other, 0)
		for _, want := range []QueuedTurn{q, other} {
			got, err := s.LoadQueued(ctx, want.Ref.Tenant, want.Ref.User, want.TurnID)
			if err != nil || !cmp.Equal(got, want) {
				t.Errorf("LoadQueued in tenant %s: got %+v, %v; want %+v", want.Ref.Tenant, got, err, want)
			}
		}
	})

	t.Run("queued turn saved again is overwritten", func(t *testing.T) {
		s := newStore(t)
		q := testQueued("acme", "u1", "m1")
		mustSaveQueued(t, s, q, 0)
		again := q
		again.Ref = testRef("acme", "u2")
		again.ClientMsgID = ""
		mustSaveQueued(t, s, again, 0)
		got, err := s.LoadQueued(ctx, again.Ref.Tenant, again.Ref.User, again.TurnID)
		if err != nil {
			t.Fatalf("LoadQueued: %v", err)
		}
		if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("LoadQueued (-got +want):\n%s", diff)
		}
		_, err = s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
		wantNotFound(t, "LoadQueued by the first record's user", err)
	})

	t.Run("queued turn expires", func(t *testing.T) {
		s := newStore(t)
		const ttl = 50 * time.Millisecond
		q := testQueued("acme", "u1", "")
		mustSaveQueued(t, s, q, ttl)
		time.Sleep(ttl)
		deadline := time.Now().Add(2 * time.Second)
		for {
			_, err := s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("LoadQueued of a record saved for %v: %v, still there after %v", ttl, err, ttl+2*time.Second)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("malformed queued turns are not found", func(t *testing.T) {
		s := newStore(t)
		good := testQueued("acme", "u1", "")
		bad := map[string]QueuedTurn{
			"short turn id":       {Ref: good.Ref, TurnID: "abc"},
			"hash tag in turn id": {Ref: good.Ref, TurnID: "abcdefgh}{x"},
			"no turn id":          {Ref: good.Ref},
			"short session id":    {Ref: Ref{Tenant: good.Ref.Tenant, Session: "abc", User: "u1"}, TurnID: good.TurnID},
			"no user":             {Ref: Ref{Tenant: good.Ref.Tenant, Session: good.Ref.Session}, TurnID: good.TurnID},
			"no tenant":           {Ref: Ref{Session: good.Ref.Session, User: "u1"}, TurnID: good.TurnID},
			"bad tenant":          {Ref: Ref{Tenant: "Acme:{x}", Session: good.Ref.Session, User: "u1"}, TurnID: good.TurnID},
		}
		for name, q := range bad {
			wantNotFound(t, name+": SaveQueued", s.SaveQueued(ctx, q, 0))
			_, err := s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
			wantNotFound(t, name+": LoadQueued", err)
		}
	})

	t.Run("ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}
