package knowledge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/tenant"
)

// The contract of a Store, run through the Service against the memory store and the
// JetStream store on the embedded and the machine's server.

const (
	tenantA tenant.ID = "bank-a"
	tenantB tenant.ID = "shop-b"
)

// backend opens stores that share their data: each call of open is another replica
// (JetStream) or the same store (memory); reopen is a restart where one exists.
type backend struct {
	name    string
	durable bool
	open    func(t *testing.T, keep int) Store
	restart func(t *testing.T)
}

func backends(t *testing.T) []backend {
	mem := func() backend {
		stores := map[int]*MemoryStore{} // one a keep: the same store for every replica
		return backend{name: "memory", open: func(t *testing.T, keep int) Store {
			if stores[keep] == nil {
				s, err := NewMemoryStore(keep)
				if err != nil {
					t.Fatal(err)
				}
				stores[keep] = s
			}
			return stores[keep]
		}}
	}
	out := []backend{mem()}
	for _, b := range queuetest.Backends {
		out = append(out, jsBackend(b))
	}
	return out
}

// jsBackend opens a queue (one connection, and for the embedded mode one server) per
// backend and a store on it per open; restart drains the queue and opens it again on
// the same data.
func jsBackend(b queuetest.Backend) backend {
	var (
		place queuetest.Place
		q     *queue.Queue
		ready bool
	)
	openQueue := func(t *testing.T) {
		t.Helper()
		c := queue.Config{Mode: place.Mode, DataDir: place.DataDir, URL: place.URL, Stream: place.Stream, Subject: place.Subject}
		var err error
		if q, err = queue.Open(context.Background(), c, []tenant.ID{tenantA}, nil); err != nil {
			t.Fatal(err)
		}
		qq := q
		t.Cleanup(func() { _ = qq.Drain(context.Background()) })
	}
	return backend{
		name:    "jetstream-" + b.Name,
		durable: true,
		open: func(t *testing.T, keep int) Store {
			t.Helper()
			if !ready {
				place = b.Place(t)
				openQueue(t)
				ready = true
			}
			js, replicas := q.JetStream()
			s, err := NewJetStreamStore(js, q.Stream(), replicas, keep)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		restart: func(t *testing.T) {
			t.Helper()
			if err := q.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			openQueue(t)
		},
	}
}

// served records what a service's Serve was given.
type served struct {
	mu    sync.Mutex
	bases map[tenant.ID]*Base
	n     map[tenant.ID]int
}

func (s *served) serve(t tenant.ID, b *Base) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bases == nil {
		s.bases, s.n = map[tenant.ID]*Base{}, map[tenant.ID]int{}
	}
	s.bases[t] = b
	s.n[t]++
	return nil
}

func (s *served) answer(t tenant.ID, id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.bases[t]; b != nil {
		for _, e := range b.Entries {
			if e.ID == id {
				return e.Answer
			}
		}
	}
	return ""
}

func seedBase(t tenant.ID) *Base {
	return &Base{Language: "en", Entries: []Entry{
		{ID: "hours", Question: "When are you open?", Answer: "9 to 5 at " + string(t) + "."},
		{ID: "fees", Question: "What does an account cost?", Answer: "Nothing."},
	}}
}

// newService opens a service of tenants A and B on store, seeded with seedBase.
func newService(t *testing.T, store Store, cfg Config) (*Service, *served) {
	t.Helper()
	rec := &served{}
	s, err := New(cfg, Deps{
		Store: store,
		Seed:  func(id tenant.ID) (*Base, string, error) { return seedBase(id), "kb/" + string(id) + ".yaml", nil },
		Serve: rec.serve,
	}, tenantA, tenantB)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func TestKnowledgeStoreContract(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { storeContract(t, b) })
	}
}

func storeContract(t *testing.T, b backend) {
	ctx := context.Background()
	store := b.open(t, DefaultVersions)
	s, rec := newService(t, store, Config{})

	t.Run("seeded as version 1, each tenant its own", func(t *testing.T) {
		v, base, err := s.Current(ctx, tenantA)
		if err != nil {
			t.Fatal(err)
		}
		if v.Version != 1 || v.Change != "seed from kb/bank-a.yaml" || v.By != seedUser {
			t.Errorf("version %+v, want 1 seeded from kb/bank-a.yaml", v)
		}
		if got := base.Entries[0].Answer; got != "9 to 5 at bank-a." {
			t.Errorf("A's answer %q", got)
		}
		if got := rec.answer(tenantB, "hours"); got != "9 to 5 at shop-b." {
			t.Errorf("B serves %q", got)
		}
	})

	t.Run("put, get, delete", func(t *testing.T) {
		n, e, err := s.PutEntry(ctx, tenantA, Entry{ID: "card-lost", Question: "I lost my card", Answer: "Call us."}, "ops")
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 || e.UpdatedAt.IsZero() {
			t.Errorf("put: version %d, entry %+v", n, e)
		}
		if got := rec.answer(tenantA, "card-lost"); got != "Call us." {
			t.Errorf("served after put: %q", got)
		}
		if got := rec.answer(tenantB, "card-lost"); got != "" {
			t.Errorf("tenant B serves A's entry: %q", got)
		}
		if n, _, err = s.PutEntry(ctx, tenantA, Entry{ID: "card-lost", Question: "I lost my card", Answer: "Freeze it in the app."}, "ops"); err != nil || n != 3 {
			t.Fatalf("replace: %d %v", n, err)
		}
		_, base, err := s.Current(ctx, tenantA)
		if err != nil {
			t.Fatal(err)
		}
		if len(base.Entries) != 3 || base.Entries[2].Answer != "Freeze it in the app." {
			t.Errorf("after replace: %+v", base.Entries)
		}
		if n, err = s.DeleteEntry(ctx, tenantA, "fees", "ops"); err != nil || n != 4 {
			t.Fatalf("delete: %d %v", n, err)
		}
		if _, err = s.DeleteEntry(ctx, tenantA, "fees", "ops"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete of an absent entry: %v, want ErrNotFound", err)
		}
		if _, _, err := s.PutEntry(ctx, tenantA, Entry{ID: "x", Question: "", Answer: "a"}, "ops"); !errors.As(err, new(*InvalidError)) {
			t.Errorf("put of an invalid entry: %v, want *InvalidError", err)
		}
		if _, _, err := s.PutEntry(ctx, "nobody", Entry{ID: "x", Question: "q", Answer: "a"}, "ops"); !errors.Is(err, ErrNotFound) {
			t.Errorf("put for an unknown tenant: %v, want ErrNotFound", err)
		}
	})

	t.Run("versions and an exact rollback", func(t *testing.T) {
		vs, err := s.Versions(ctx, tenantA)
		if err != nil {
			t.Fatal(err)
		}
		var changes []string
		for _, v := range vs {
			changes = append(changes, fmt.Sprintf("%d %s %s", v.Version, v.By, v.Change))
		}
		want := []string{"4 ops delete entry fees", "3 ops put entry card-lost", "2 ops put entry card-lost", "1 fengda seed from kb/bank-a.yaml"}
		if diff := cmp.Diff(changes, want); diff != "" {
			t.Errorf("versions (-got +want):\n%s", diff)
		}
		at2, err := store.Load(ctx, tenantA, 2)
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.Rollback(ctx, tenantA, 2, "ops")
		if err != nil || n != 5 {
			t.Fatalf("rollback: %d %v", n, err)
		}
		at5, err := store.Load(ctx, tenantA, 5)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(at5, at2); diff != "" {
			t.Errorf("version 5 is not version 2 (-got +want):\n%s", diff)
		}
		if got := rec.answer(tenantA, "card-lost"); got != "Call us." {
			t.Errorf("served after the rollback: %q", got)
		}
		vs, _ = s.Versions(ctx, tenantA)
		if vs[0].Change != "rollback to 2" {
			t.Errorf("newest change %q", vs[0].Change)
		}
		if _, err := s.Rollback(ctx, tenantA, 99, "ops"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rollback to an unknown version: %v, want ErrNotFound", err)
		}
		if vs, _ := s.Versions(ctx, tenantB); len(vs) != 1 {
			t.Errorf("tenant B has %d versions, want its seed only", len(vs))
		}
	})

	t.Run("import replaces the whole base; a bad one changes nothing", func(t *testing.T) {
		n, count, err := s.Import(ctx, tenantA, "application/json",
			[]byte(`{"entries":[{"id":"only","question":"Only question?","answer":"Only answer."}]}`), "ops")
		if err != nil || count != 1 {
			t.Fatalf("import: %d %d %v", n, count, err)
		}
		_, base, _ := s.Current(ctx, tenantA)
		if len(base.Entries) != 1 || base.Language != "en" {
			t.Errorf("after import: %+v", base)
		}
		_, _, err = s.Import(ctx, tenantA, "application/json", []byte(`{"entries":[{"id":"a","question":"","answer":""}]}`), "ops")
		var inv *InvalidError
		if !errors.As(err, &inv) || len(inv.Errors) == 0 {
			t.Fatalf("a bad import: %v, want *InvalidError", err)
		}
		if v, _, _ := s.Current(ctx, tenantA); v.Version != n {
			t.Errorf("a bad import moved the version to %d", v.Version)
		}
		if _, _, err := s.Import(ctx, tenantA, "application/x-unknown", []byte("x"), "ops"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("an import of another type: %v, want ErrUnsupported", err)
		}
	})

	t.Run("a stale head is a conflict", func(t *testing.T) {
		head, err := store.Head(ctx, tenantB)
		if err != nil {
			t.Fatal(err)
		}
		next := Version{Version: head.Latest.Version + 1, At: time.Now(), By: "a", Change: "first"}
		if _, err := store.Commit(ctx, tenantB, head, next, seedBase(tenantB)); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Commit(ctx, tenantB, head, next, seedBase(tenantB)); !errors.Is(err, ErrConflict) {
			t.Errorf("second commit on the same head: %v, want ErrConflict", err)
		}
		if _, err := store.Commit(ctx, tenantB, Head{}, Version{Version: 1}, seedBase(tenantB)); !errors.Is(err, ErrConflict) {
			t.Errorf("a second seed: %v, want ErrConflict", err)
		}
	})

	t.Run("concurrent writes of two replicas lose none", func(t *testing.T) {
		other, _ := newService(t, b.open(t, DefaultVersions), Config{})
		before, _, _ := s.Current(ctx, tenantA)
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range 20 {
			svc := s
			if i%2 == 1 {
				svc = other
			}
			wg.Go(func() {
				_, _, errs[i] = svc.PutEntry(ctx, tenantA, Entry{ID: fmt.Sprintf("c%02d", i), Question: fmt.Sprintf("Question %d?", i), Answer: "A."}, "ops")
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("put %d: %v", i, err)
			}
		}
		after, base, _ := s.Current(ctx, tenantA)
		if after.Version != before.Version+20 {
			t.Errorf("version %d after 20 writes on %d", after.Version, before.Version)
		}
		have := map[string]bool{}
		for _, e := range base.Entries {
			have[e.ID] = true
		}
		for i := range 20 {
			if !have[fmt.Sprintf("c%02d", i)] {
				t.Errorf("entry c%02d lost", i)
			}
		}
	})

	t.Run("another replica serves a change", func(t *testing.T) {
		other, rec2 := newService(t, b.open(t, DefaultVersions), Config{})
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = other.Run(wctx) }()
		t.Cleanup(func() { cancel(); <-done })
		if _, _, err := s.PutEntry(ctx, tenantA, Entry{ID: "live", Question: "Is it live?", Answer: "Yes."}, "ops"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for rec2.answer(tenantA, "live") != "Yes." {
			if time.Now().After(deadline) {
				t.Fatal("the other replica does not serve the change within 2s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("pruning keeps the last versions", func(t *testing.T) {
		const keep = DefaultVersions
		small, _ := newService(t, b.open(t, keep), Config{Versions: keep})
		for i := range keep + 3 {
			if _, _, err := small.PutEntry(ctx, tenantB, Entry{ID: "p", Question: "Prune?", Answer: fmt.Sprintf("Answer %d.", i)}, "ops"); err != nil {
				t.Fatal(err)
			}
		}
		vs, err := small.Versions(ctx, tenantB)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != keep {
			t.Errorf("%d versions kept, want %d", len(vs), keep)
		}
		oldest := vs[len(vs)-1].Version
		if _, err := small.Rollback(ctx, tenantB, oldest-1, "ops"); !errors.Is(err, ErrNotFound) {
			t.Errorf("rollback to pruned version %d: %v, want ErrNotFound", oldest-1, err)
		}
		if js, ok := store.(*JetStreamStore); ok {
			bk, err := js.bucket(ctx, tenantB)
			if err != nil {
				t.Fatal(err)
			}
			infos, err := bk.obj.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(infos) > keep {
				var names []string
				for _, i := range infos {
					names = append(names, i.Name)
				}
				t.Errorf("%d objects left, want at most %d: %s", len(infos), keep, strings.Join(names, " "))
			}
		}
	})

	t.Run("a restart keeps the base", func(t *testing.T) {
		if !b.durable {
			t.Skip("the memory store keeps nothing across a restart")
		}
		want, wantBase, _ := s.Current(ctx, tenantA)
		b.restart(t)
		again, rec2 := newService(t, b.open(t, DefaultVersions), Config{})
		got, gotBase, err := again.Current(ctx, tenantA)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != want.Version || !cmp.Equal(gotBase, wantBase) {
			t.Errorf("after restart: version %d, want %d; bases equal %v", got.Version, want.Version, cmp.Equal(gotBase, wantBase))
		}
		if rec2.answer(tenantA, "live") != "Yes." {
			t.Error("after restart the live entry is not served")
		}
	})
}
