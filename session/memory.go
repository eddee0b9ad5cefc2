package session

import (
	"container/heap"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/fengda-ai/fengda/tenant"
)

// Defaults shared by both stores.
const (
	DefaultMaxTurns = 100
	DefaultTTL      = 7 * 24 * time.Hour
	// DefaultMaxBytes is the MemoryStore's memory budget.
	DefaultMaxBytes = 256 << 20
)

// sweepBatch bounds how many expired sessions one Append removes, so a write never
// pays for a large backlog of expiries at once; expired sessions it leaves behind are
// invisible to readers and still count against MaxBytes, which keeps memory bounded.
const sweepBatch = 8

// maxQueuedTurns caps the queued turn records a MemoryStore keeps. Past it, saving a
// new record drops the one nearest its expiry, which with the one TTL the server uses
// is the oldest. The records are not counted against MaxBytes: with IDs as long as the
// tenant package and the gateway allow, one takes under 1 KiB, so the cap holds them
// under 64 MiB (about 20 MiB with the IDs NewTurnID makes).
const maxQueuedTurns = 1 << 16

// MemoryConfig configures a MemoryStore. Zero values take the documented defaults.
type MemoryConfig struct {
	// MaxTurns is how many turns a session keeps, oldest dropped first (default 100).
	MaxTurns int `yaml:"max_turns"`
	// TTL is how long a session lives after its last Append (default 168h).
	TTL time.Duration `yaml:"ttl"`
	// MaxBytes is the approximate memory budget; past it the least recently used
	// sessions are evicted (default 256 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time `yaml:"-"`
}

// MemoryStore keeps sessions in process memory. It is the embedded default for a single
// instance: nothing survives a restart and instances do not share sessions.
//
// One mutex guards everything. Every critical section is a map lookup plus work
// bounded by MaxTurns (no encoding, no allocation proportional to the store), and a
// single lock keeps the least-recently-used order and the byte budget exact across
// all sessions, which sharding would blur.
//
// Queued turn records live apart from the sessions, in a map with an expiry heap of
// their own: each SaveQueued removes up to sweepBatch expired records, and at most
// maxQueuedTurns are kept.
//
// A session's handoff record and events hang off the session and go with it; each
// tenant's records are also indexed by status, in trees ordered by time (see
// handoffTree) kept under the same mutex, so a queue position costs O(log n). Records
// and events count against MaxBytes with their session.
//
// A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	maxTurns  int
	ttl       time.Duration
	maxBytes  int64
	maxQueued int
	now       func() time.Time

	mu       sync.Mutex
	sessions map[memKey]*memSession
	lru      list.List // of *memSession; front is the most recently used
	expiry   expiryHeap[*memSession]
	bytes    int64 // approximate size of every session held
	queued   map[queuedKey]*memQueued
	qexpiry  expiryHeap[*memQueued]
	tenants  map[tenant.ID]*memTenant // handoff indexes and agent presence
}

type memKey struct {
	tenant  tenant.ID
	session string
}

// memSession is one session. turns is a ring: once full, head is the oldest turn.
// handoff and events stay nil until the session has a handoff record or an event,
// so a session the bot alone answers costs nothing more.
type memSession struct {
	key     memKey
	owner   string
	turns   []Turn
	head    int
	size    int64
	elem    *list.Element
	handoff *memHandoff
	events  *memEvents
	expiring
}

type queuedKey struct {
	tenant tenant.ID
	turn   string
}

// memQueued is one queued turn record.
type memQueued struct {
	q QueuedTurn
	expiring
}

// NewMemoryStore validates cfg and returns an empty store.
func NewMemoryStore(cfg MemoryConfig) (*MemoryStore, error) {
	if cfg.MaxTurns < 0 || cfg.TTL < 0 || cfg.MaxBytes < 0 {
		return nil, fmt.Errorf("session: memory store: negative max_turns, ttl or max_bytes")
	}
	if cfg.MaxTurns == 0 {
		cfg.MaxTurns = DefaultMaxTurns
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryStore{
		maxTurns:  cfg.MaxTurns,
		ttl:       cfg.TTL,
		maxBytes:  cfg.MaxBytes,
		maxQueued: maxQueuedTurns,
		now:       cfg.Now,
		sessions:  make(map[memKey]*memSession),
		queued:    make(map[queuedKey]*memQueued),
		tenants:   make(map[tenant.ID]*memTenant),
	}, nil
}

// Load returns the session's turns, oldest first. It returns ErrNotFound if the session
// does not exist, has expired or is not ref.User's.
func (m *MemoryStore) Load(ctx context.Context, ref Ref) ([]Turn, error) {
	if err := checkRef(ref); err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	s := m.visible(ref, now)
	if s == nil {
		m.mu.Unlock()
		return nil, ErrNotFound
	}
	m.lru.MoveToFront(s.elem)
	out := make([]Turn, 0, len(s.turns))
	out = append(out, s.turns[s.head:]...)
	out = append(out, s.turns[:s.head]...)
	m.mu.Unlock()
	cloneCitations(out)
	return out, nil
}

// LoadRecent returns what answering a turn needs from the session: its newest n turns
// (none if n <= 0), oldest first, and the newest retained turn whose ID is turnID (when
// turnID is not empty) or whose ClientMsgID is clientMsgID (when that is not empty).
// Found points into Turns when the turn is among them. Like Load, it marks the session
// used. It returns ErrNotFound if the session does not exist, has expired or is not
// ref.User's.
func (m *MemoryStore) LoadRecent(ctx context.Context, ref Ref, n int, turnID, clientMsgID string) (Recent, error) {
	if err := checkRef(ref); err != nil {
		return Recent{}, err
	}
	now := m.now()
	m.mu.Lock()
	s := m.visible(ref, now)
	if s == nil {
		m.mu.Unlock()
		return Recent{}, ErrNotFound
	}
	m.lru.MoveToFront(s.elem)
	total := len(s.turns)
	// The turn at position i, oldest first, is s.turns[(s.head+i)%total].
	var rec Recent
	if s.handoff != nil {
		rec.Handoff = s.handoff.h
	}
	if k := min(max(n, 0), total); k > 0 {
		rec.Turns = make([]Turn, k)
		for j := range rec.Turns {
			rec.Turns[j] = s.turns[(s.head+total-k+j)%total]
		}
	}
	var found Turn
	at := -1
	if turnID != "" || clientMsgID != "" {
		for i := total - 1; i >= 0; i-- {
			t := &s.turns[(s.head+i)%total]
			if t.ID == turnID && turnID != "" || t.ClientMsgID == clientMsgID && clientMsgID != "" {
				at, found = i, *t
				break
			}
		}
	}
	m.mu.Unlock()
	cloneCitations(rec.Turns)
	if first := total - len(rec.Turns); at >= first {
		rec.Found = &rec.Turns[at-first]
	} else if at >= 0 {
		found = cloneTurn(found)
		rec.Found = &found
	}
	return rec, nil
}

// Append stores t as the session's newest turn, creating the session for ref.User if
// needed, dropping turns past MaxTurns and pushing the expiry to now plus ttl (the
// store's TTL when ttl <= 0). If a retained turn has t's non-empty ClientMsgID, it
// stores nothing and returns that turn. It returns ErrNotFound if the session is
// another user's.
func (m *MemoryStore) Append(ctx context.Context, ref Ref, t Turn, ttl time.Duration) (Turn, error) {
	if err := checkRef(ref); err != nil {
		return Turn{}, err
	}
	if ttl <= 0 {
		ttl = m.ttl
	}
	stored := cloneTurn(t) // the caller keeps t; the store keeps its own slices
	size := turnSize(&stored)
	now := m.now()

	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	key := memKey{ref.Tenant, ref.Session}
	s := m.sessions[key]
	if s != nil && !now.Before(s.expires) {
		m.remove(s)
		s = nil
	}
	if s == nil {
		s = m.create(key, ref.User, now.Add(ttl))
	} else if s.owner != ref.User {
		return Turn{}, ErrNotFound
	} else {
		m.lru.MoveToFront(s.elem)
		if t.ClientMsgID != "" {
			if i := s.find(t.ClientMsgID); i >= 0 {
				return cloneTurn(s.turns[i]), nil
			}
		}
		s.expires = now.Add(ttl)
		heap.Fix(&m.expiry, s.heapIdx)
	}

	if len(s.turns) < m.maxTurns {
		s.turns = append(s.turns, stored)
	} else {
		old := &s.turns[s.head]
		delta := -turnSize(old)
		*old = stored
		s.head = (s.head + 1) % len(s.turns)
		s.size += delta
		m.bytes += delta
	}
	s.size += size
	m.bytes += size
	m.evict(s)
	return t, nil
}

// Delete erases the session. It returns ErrNotFound if the session is missing, expired
// or another user's.
func (m *MemoryStore) Delete(ctx context.Context, ref Ref) error {
	if err := checkRef(ref); err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.visible(ref, now)
	if s == nil {
		return ErrNotFound
	}
	m.remove(s)
	return nil
}

// SaveQueued records q for ttl (the store's TTL when ttl <= 0), replacing any record of
// the same tenant and turn ID. Past maxQueuedTurns records it drops the one nearest its
// expiry. It returns ErrNotFound for a malformed ref or turn ID.
func (m *MemoryStore) SaveQueued(ctx context.Context, q QueuedTurn, ttl time.Duration) error {
	if err := checkRef(q.Ref); err != nil {
		return err
	}
	if !ValidID(q.TurnID) {
		return ErrNotFound
	}
	if ttl <= 0 {
		ttl = m.ttl
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepQueued(now)
	key := queuedKey{q.Ref.Tenant, q.TurnID}
	if r := m.queued[key]; r != nil {
		r.q, r.expires = q, now.Add(ttl)
		heap.Fix(&m.qexpiry, r.heapIdx)
		return nil
	}
	if len(m.queued) >= m.maxQueued {
		m.removeQueued(m.qexpiry[0])
	}
	r := &memQueued{q: q, expiring: expiring{expires: now.Add(ttl)}}
	m.queued[key] = r
	heap.Push(&m.qexpiry, r)
	return nil
}

// LoadQueued returns the record of turnID in tenant t. It returns ErrNotFound if there
// is none, it has expired or it is not user's, and for a malformed tenant or turn ID.
func (m *MemoryStore) LoadQueued(ctx context.Context, t tenant.ID, user, turnID string) (QueuedTurn, error) {
	if err := checkTurnLookup(t, user, turnID); err != nil {
		return QueuedTurn{}, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.queued[queuedKey{t, turnID}]
	if r == nil {
		return QueuedTurn{}, ErrNotFound
	}
	if !now.Before(r.expires) {
		m.removeQueued(r)
		return QueuedTurn{}, ErrNotFound
	}
	if r.q.Ref.User != user {
		return QueuedTurn{}, ErrNotFound
	}
	return r.q, nil
}

// Ping always succeeds: process memory is always reachable.
func (m *MemoryStore) Ping(ctx context.Context) error { return nil }

// Len returns how many sessions the store holds, expired ones not yet swept included.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Bytes returns the approximate memory the store's sessions take.
func (m *MemoryStore) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// create adds an empty session of owner that expires at expires. m.mu must be held.
func (m *MemoryStore) create(key memKey, owner string, expires time.Time) *memSession {
	s := &memSession{
		key:   key,
		owner: owner,
		turns: make([]Turn, 0, min(m.maxTurns, 8)),
		size:  sessionOverhead + int64(len(key.tenant)+len(key.session)+len(owner)),
	}
	s.expires = expires
	m.sessions[key] = s
	s.elem = m.lru.PushFront(s)
	heap.Push(&m.expiry, s)
	m.bytes += s.size
	return s
}

// visible returns ref's session if it exists, is live and is ref.User's; an expired one
// is removed on the way. m.mu must be held.
func (m *MemoryStore) visible(ref Ref, now time.Time) *memSession {
	s := m.sessions[memKey{ref.Tenant, ref.Session}]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		m.remove(s)
		return nil
	}
	if s.owner != ref.User {
		return nil
	}
	return s
}

// sweep removes up to sweepBatch expired sessions, soonest expiry first. m.mu must be held.
func (m *MemoryStore) sweep(now time.Time) {
	for i := 0; i < sweepBatch && len(m.expiry) > 0 && !now.Before(m.expiry[0].expires); i++ {
		m.remove(m.expiry[0])
	}
}

// sweepQueued removes up to sweepBatch expired queued turn records, soonest expiry
// first. m.mu must be held.
func (m *MemoryStore) sweepQueued(now time.Time) {
	for i := 0; i < sweepBatch && len(m.qexpiry) > 0 && !now.Before(m.qexpiry[0].expires); i++ {
		m.removeQueued(m.qexpiry[0])
	}
}

// removeQueued forgets r. m.mu must be held.
func (m *MemoryStore) removeQueued(r *memQueued) {
	delete(m.queued, queuedKey{r.q.Ref.Tenant, r.q.TurnID})
	heap.Remove(&m.qexpiry, r.heapIdx)
}

// evict removes least recently used sessions, never keep, until the store fits its
// budget. m.mu must be held.
func (m *MemoryStore) evict(keep *memSession) {
	for m.bytes > m.maxBytes {
		back := m.lru.Back()
		if back == nil || back.Value.(*memSession) == keep {
			return
		}
		m.remove(back.Value.(*memSession))
	}
}

// remove forgets s entirely: its turns, its handoff record and index entry, its
// events. m.mu must be held.
func (m *MemoryStore) remove(s *memSession) {
	if s.handoff != nil && s.handoff.tree != nil {
		s.handoff.tree.remove(s.handoff)
	}
	delete(m.sessions, s.key)
	m.lru.Remove(s.elem)
	heap.Remove(&m.expiry, s.heapIdx)
	m.bytes -= s.size
}

// find returns the index in s.turns of the turn with that ClientMsgID, or -1. A linear
// scan over at most MaxTurns turns is cheaper than keeping a map in step with the ring.
func (s *memSession) find(clientMsgID string) int {
	for i := range s.turns {
		if s.turns[i].ClientMsgID == clientMsgID {
			return i
		}
	}
	return -1
}

// Approximate sizes for the byte budget: struct sizes plus string bytes, ignoring
// allocator rounding.
const (
	sessionOverhead  = int64(unsafe.Sizeof(memSession{})) + 128 // map entry, list element, heap slot
	turnOverhead     = int64(unsafe.Sizeof(Turn{}))
	citationOverhead = int64(unsafe.Sizeof(Citation{}))
)

func turnSize(t *Turn) int64 {
	n := turnOverhead + int64(len(t.ID)+len(t.ClientMsgID)+len(t.User)+len(t.Answer)+len(t.Source))
	for _, cs := range [2][]Citation{t.Citations, t.Suggestions} {
		for _, c := range cs {
			n += citationOverhead + int64(len(c.ID)+len(c.Question))
		}
	}
	return n
}

// cloneTurn copies t's slices so the store and its callers never share them.
func cloneTurn(t Turn) Turn {
	t.Citations = slices.Clone(t.Citations)
	t.Suggestions = slices.Clone(t.Suggestions)
	return t
}

// cloneCitations gives the turns copies of their citation slices, all cut from one
// allocation; each is capped so an append by the caller cannot reach its neighbour.
func cloneCitations(turns []Turn) {
	n := 0
	for i := range turns {
		n += len(turns[i].Citations) + len(turns[i].Suggestions)
	}
	if n == 0 {
		return
	}
	buf := make([]Citation, 0, n)
	cut := func(cs []Citation) []Citation {
		if cs == nil {
			return nil
		}
		start := len(buf)
		buf = append(buf, cs...)
		return buf[start:len(buf):len(buf)]
	}
	for i := range turns {
		turns[i].Citations = cut(turns[i].Citations)
		turns[i].Suggestions = cut(turns[i].Suggestions)
	}
}

// expiring is what an expiryHeap orders by: an entry's expiry and its place in the heap.
type expiring struct {
	expires time.Time
	heapIdx int // -1 once out of the heap
}

func (e *expiring) slot() *expiring { return e }

// expiryHeap orders sessions or queued turn records by expiry, soonest first, keeping
// each one's heapIdx current for heap.Fix and heap.Remove.
type expiryHeap[T interface{ slot() *expiring }] []T

func (h expiryHeap[T]) Len() int { return len(h) }
func (h expiryHeap[T]) Less(i, j int) bool {
	return h[i].slot().expires.Before(h[j].slot().expires)
}
func (h expiryHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot().heapIdx = i
	h[j].slot().heapIdx = j
}
func (h *expiryHeap[T]) Push(x any) {
	e := x.(T)
	e.slot().heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap[T]) Pop() any {
	old := *h
	e := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	e.slot().heapIdx = -1
	return e
}
