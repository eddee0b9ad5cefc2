package session

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMemoryStore(t *testing.T) {
	runStoreContract(t, func(t *testing.T) Store {
		s, err := NewMemoryStore(MemoryConfig{MaxTurns: contractMaxTurns})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// fakeClock is a settable clock for MemoryConfig.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestMemoryStoreTTL(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: testEpoch}
	s, err := NewMemoryStore(MemoryConfig{MaxTurns: contractMaxTurns, TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ref := testRef("acme", "u1")
	mustAppend(t, s, ref, testTurn(1, "m1"))
	clock.Advance(59 * time.Minute)
	mustLoad(t, s, ref)
	mustAppend(t, s, ref, testTurn(2, "m2")) // slides the expiry to +1h from here
	clock.Advance(59 * time.Minute)
	if got := mustLoad(t, s, ref); len(got) != 2 {
		t.Fatalf("Load after the TTL slid: got %d turns, want 2", len(got))
	}
	clock.Advance(time.Minute)
	_, err = s.LoadRecent(ctx, ref, 1, "", "m1")
	wantNotFound(t, "LoadRecent at expiry", err)
	_, err = s.Load(ctx, ref)
	wantNotFound(t, "Load at expiry", err)
	_, err = lookup(ctx, s, ref, "m1")
	wantNotFound(t, "lookup at expiry", err)
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Errorf("after expiry: Len %d, Bytes %d; want 0, 0", s.Len(), s.Bytes())
	}
	// The expired session's owner is forgotten too: anyone may start it afresh.
	fresh := ref
	fresh.User = "u2"
	mustAppend(t, s, fresh, testTurn(3, "m1"))
	if got := mustLoad(t, s, fresh); len(got) != 1 || got[0].User != testTurn(3, "").User {
		t.Errorf("Load of the restarted session: %+v", got)
	}

	// A ttl argument overrides the store's TTL.
	short := testRef("acme", "u1")
	if _, err := s.Append(ctx, short, testTurn(1, ""), time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	_, err = s.Load(ctx, short)
	wantNotFound(t, "Load after a ttl override expired", err)
}

func TestMemoryStoreSweepsExpiredSessions(t *testing.T) {
	clock := &fakeClock{now: testEpoch}
	s, err := NewMemoryStore(MemoryConfig{MaxTurns: contractMaxTurns, TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3 * sweepBatch
	for range n {
		mustAppend(t, s, testRef("acme", "u1"), testTurn(1, ""))
	}
	clock.Advance(time.Hour)
	live := testRef("acme", "u2")
	for i := range 3 {
		mustAppend(t, s, live, testTurn(i, ""))
		if got, want := s.Len(), n-(i+1)*sweepBatch+1; got != want {
			t.Errorf("after Append %d: Len %d, want %d (each Append sweeps at most %d)", i, got, want, sweepBatch)
		}
	}
}

func TestMemoryStoreEvictsLeastRecentlyUsed(t *testing.T) {
	big := testTurn(1, "")
	big.Answer = strings.Repeat("a", 4096)

	// Measure one session of one big turn.
	probe, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, probe, testRef("acme", "u1"), big)
	one := probe.Bytes()

	ctx := context.Background()
	// Load and LoadRecent both mark a session used.
	reads := map[string]func(s *MemoryStore, ref Ref) error{
		"Load": func(s *MemoryStore, ref Ref) error { _, err := s.Load(ctx, ref); return err },
		"LoadRecent": func(s *MemoryStore, ref Ref) error {
			_, err := s.LoadRecent(ctx, ref, 1, "", "")
			return err
		},
	}
	for name, read := range reads {
		s, err := NewMemoryStore(MemoryConfig{MaxBytes: 3*one + one/2})
		if err != nil {
			t.Fatal(err)
		}
		refs := make([]Ref, 4)
		for i := range refs {
			refs[i] = testRef("acme", "u1")
		}
		for _, ref := range refs[:3] {
			mustAppend(t, s, ref, big)
		}
		if err := read(s, refs[0]); err != nil { // refs[1] is now the least recently used
			t.Fatalf("%s: %v", name, err)
		}
		mustAppend(t, s, refs[3], big)

		for i, ref := range refs {
			_, err := s.Load(ctx, ref)
			if i == 1 {
				wantNotFound(t, "after "+name+": Load of the least recently used session", err)
			} else if err != nil {
				t.Errorf("after %s: Load of session %d: %v", name, i, err)
			}
		}
		if s.Bytes() > 3*one+one/2 {
			t.Errorf("after %s: Bytes %d over the budget %d", name, s.Bytes(), 3*one+one/2)
		}
	}

	// Turns dropped by trimming are given back to the budget.
	trim, err := NewMemoryStore(MemoryConfig{MaxTurns: 2})
	if err != nil {
		t.Fatal(err)
	}
	ref := testRef("acme", "u1")
	for range 2 {
		mustAppend(t, trim, ref, big)
	}
	full := trim.Bytes()
	for range 5 {
		mustAppend(t, trim, ref, big)
	}
	if trim.Bytes() != full {
		t.Errorf("Bytes after trimming: %d, want %d", trim.Bytes(), full)
	}
	if err := trim.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if trim.Bytes() != 0 {
		t.Errorf("Bytes after Delete: %d, want 0", trim.Bytes())
	}
}

func TestNewMemoryStoreConfig(t *testing.T) {
	for _, cfg := range []MemoryConfig{{MaxTurns: -1}, {TTL: -time.Second}, {MaxBytes: -1}} {
		if _, err := NewMemoryStore(cfg); err == nil {
			t.Errorf("NewMemoryStore(%+v): no error", cfg)
		}
	}
	s, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if s.maxTurns != DefaultMaxTurns || s.ttl != DefaultTTL || s.maxBytes != DefaultMaxBytes {
		t.Errorf("defaults: %d, %v, %d", s.maxTurns, s.ttl, s.maxBytes)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		for _, id := range []string{NewID(), NewTurnID()} {
			if len(id) < 22 || !ValidID(id) || seen[id] {
				t.Fatalf("bad or repeated id %q", id)
			}
			seen[id] = true
		}
	}
	for s, want := range map[string]bool{
		"abcdefgh":              true,
		"AZaz09_-":              true,
		strings.Repeat("a", 64): true,
		strings.Repeat("a", 65): false,
		"abcdefg":               false,
		"abcdefg}":              false,
		"abc:defgh":             false,
		"abcdefgh ":             false,
		"会话会话会话会话":              false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestMemoryStoreBookkeeping mixes every operation from several goroutines, with
// expiries and evictions under way, then checks the map, the LRU list, the expiry heap
// and the byte count still agree.
func TestMemoryStoreBookkeeping(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: testEpoch}
	big := testTurn(1, "")
	big.Answer = strings.Repeat("a", 1024)
	s, err := NewMemoryStore(MemoryConfig{MaxTurns: 3, TTL: time.Minute, MaxBytes: 20 << 10, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	refs := make([]Ref, 32)
	for i := range refs {
		refs[i] = testRef("acme", "u1")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				ref := refs[(g*7+i*13)%len(refs)]
				switch i % 6 {
				case 0, 1:
					turn := big
					turn.ClientMsgID = strconv.Itoa(i % 5)
					_, err := s.Append(ctx, ref, turn, time.Duration(i%3)*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
				case 2:
					s.Load(ctx, ref)
				case 3:
					lookup(ctx, s, ref, "1")
				case 4:
					clock.Advance(time.Second)
				case 5:
					if i%30 == 5 {
						s.Delete(ctx, ref)
					}
				}
			}
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) != s.lru.Len() || len(s.sessions) != len(s.expiry) {
		t.Fatalf("sessions %d, lru %d, heap %d", len(s.sessions), s.lru.Len(), len(s.expiry))
	}
	var total int64
	for i, ms := range s.expiry {
		if ms.heapIdx != i || s.sessions[ms.key] != ms {
			t.Fatalf("heap slot %d holds a session indexed %d or not in the map", i, ms.heapIdx)
		}
		if i > 0 && ms.expires.Before(s.expiry[(i-1)/2].expires) {
			t.Fatalf("heap order broken at %d", i)
		}
		size := sessionOverhead + int64(len(ms.key.tenant)+len(ms.key.session)+len(ms.owner))
		for j := range ms.turns {
			size += turnSize(&ms.turns[j])
		}
		if size != ms.size {
			t.Errorf("session %s: size %d, recomputed %d", ms.key.session, ms.size, size)
		}
		total += ms.size
	}
	if total != s.bytes {
		t.Errorf("bytes %d, sum of sessions %d", s.bytes, total)
	}
	if s.bytes > s.maxBytes {
		t.Errorf("bytes %d over the budget %d", s.bytes, s.maxBytes)
	}
}

func TestMemoryStoreQueuedTTL(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: testEpoch}
	s, err := NewMemoryStore(MemoryConfig{MaxTurns: contractMaxTurns, TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	load := func(q QueuedTurn) error {
		_, err := s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
		return err
	}
	byStore, byArg := testQueued("acme", "u1", "m1"), testQueued("acme", "u1", "")
	if err := s.SaveQueued(ctx, byStore, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveQueued(ctx, byArg, time.Minute); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute - time.Nanosecond)
	if err := load(byArg); err != nil {
		t.Errorf("LoadQueued just before the ttl argument ran out: %v", err)
	}
	clock.Advance(time.Nanosecond)
	wantNotFound(t, "LoadQueued when the ttl argument ran out", load(byArg))

	// Saving again restarts the clock.
	clock.Advance(58 * time.Minute)
	if err := s.SaveQueued(ctx, byStore, 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(59 * time.Minute)
	if err := load(byStore); err != nil {
		t.Errorf("LoadQueued 59m after it was saved again: %v", err)
	}
	clock.Advance(time.Minute)
	wantNotFound(t, "LoadQueued when the store TTL ran out", load(byStore))
	if n := len(s.queued); n != 0 {
		t.Errorf("%d expired records remain after they were read", n)
	}
}

func TestMemoryStoreQueuedIsBounded(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: testEpoch}
	s, err := NewMemoryStore(MemoryConfig{MaxTurns: contractMaxTurns, TTL: time.Hour, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 4
	s.maxQueued = limit
	save := func(q QueuedTurn, ttl time.Duration) {
		t.Helper()
		if err := s.SaveQueued(ctx, q, ttl); err != nil {
			t.Fatal(err)
		}
	}
	loaded := func(q QueuedTurn) bool {
		_, err := s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
		return err == nil
	}

	// Full, a new record drops the one nearest its expiry; a record saved again is not
	// a new one and drops nothing.
	qs := make([]QueuedTurn, limit+1)
	for i := range qs {
		qs[i] = testQueued("acme", "u1", "")
	}
	for i, q := range qs[:limit] {
		save(q, time.Duration(limit-i)*time.Minute) // qs[limit-1] expires first
		clock.Advance(time.Second)
	}
	save(qs[0], time.Hour)
	save(qs[limit], time.Hour)
	for i, q := range qs {
		if want := i != limit-1; loaded(q) != want {
			t.Errorf("record %d loaded %v, want %v", i, !want, want)
		}
	}
	if n := len(s.queued); n != limit {
		t.Errorf("%d records held, want %d", n, limit)
	}

	// Expired records are swept by later saves, sweepBatch at a time.
	s.maxQueued = maxQueuedTurns
	for range 3 * sweepBatch {
		save(testQueued("acme", "u1", ""), time.Minute)
	}
	clock.Advance(time.Hour) // every record held has expired
	expired := len(s.queued)
	for i := 1; i <= 3; i++ {
		save(testQueued("acme", "u1", ""), time.Hour)
		if got, want := len(s.queued), expired-i*sweepBatch+i; got != want {
			t.Errorf("after save %d: %d records, want %d", i, got, want)
		}
	}
}

// TestMemoryStoreQueuedBookkeeping saves and loads queued turn records from several
// goroutines, with expiries and evictions under way, then checks the map and the
// expiry heap still agree.
func TestMemoryStoreQueuedBookkeeping(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: testEpoch}
	s, err := NewMemoryStore(MemoryConfig{TTL: time.Minute, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	const limit = 16
	s.maxQueued = limit
	qs := make([]QueuedTurn, 3*limit)
	for i := range qs {
		qs[i] = testQueued("acme", "u1", "")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				q := qs[(g*7+i*13)%len(qs)]
				switch i % 4 {
				case 0, 1:
					if err := s.SaveQueued(ctx, q, time.Duration(i%3)*time.Second); err != nil {
						t.Error(err)
						return
					}
				case 2:
					s.LoadQueued(ctx, q.Ref.Tenant, q.Ref.User, q.TurnID)
				case 3:
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queued) != len(s.qexpiry) || len(s.queued) > limit {
		t.Fatalf("records %d, heap %d, limit %d", len(s.queued), len(s.qexpiry), limit)
	}
	for i, r := range s.qexpiry {
		if r.heapIdx != i || s.queued[queuedKey{r.q.Ref.Tenant, r.q.TurnID}] != r {
			t.Fatalf("heap slot %d holds a record indexed %d or not in the map", i, r.heapIdx)
		}
		if i > 0 && r.expires.Before(s.qexpiry[(i-1)/2].expires) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}
