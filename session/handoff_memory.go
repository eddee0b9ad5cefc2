package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
	"unsafe"

	"github.com/fengda-ai/fengda/tenant"
)

// memHandoff is a session's handoff record in a MemoryStore, and its node in the
// tenant's index of its status (see handoffTree). h.Position is always 0: positions
// are computed from the tree when asked for.
type memHandoff struct {
	h Handoff
	s *memSession

	tree        *handoffTree // the index holding it; nil when in none
	at          time.Time    // its key there: WaitingSince, or ClosedAt when closed
	left, right *memHandoff
	prio        uint64
	n           int // nodes in the subtree rooted here
}

// memEvents is a session's event log: a ring of the newest MaxEvents events, and the
// seq of the newest one (the oldest kept is seq-len(ring)+1).
type memEvents struct {
	ring []Event
	head int // once full, the oldest event
	seq  int64
}

// memTenant is a tenant's handoff indexes, one per status, and its agents' presence.
type memTenant struct {
	index  [len(handoffStatuses)]handoffTree
	agents map[string]time.Time // agent id → online until
	// prune is the size of agents at which SeeAgent next drops the agents gone: twice
	// the size after the last prune, so the work is constant per call on average.
	prune int
}

// minAgentPrune is the smallest presence map SeeAgent prunes.
const minAgentPrune = 64

// Approximate sizes of handoff data for the byte budget, like sessionOverhead.
const (
	handoffOverhead = int64(unsafe.Sizeof(memHandoff{}))
	eventsOverhead  = int64(unsafe.Sizeof(memEvents{}))
	eventOverhead   = int64(unsafe.Sizeof(Event{}))
)

// handoffSize is the memory h takes beyond its session: its Session and User are
// the session's own strings.
func handoffSize(h *Handoff) int64 {
	return handoffOverhead + int64(len(h.Cause)+len(h.AgentID)+len(h.AgentName)+len(h.Resolution)+len(h.LastMessage))
}

// tenantState returns t's handoff state, creating it when create is set; nil otherwise
// when t has none. m.mu must be held.
func (m *MemoryStore) tenantState(t tenant.ID, create bool) *memTenant {
	mt := m.tenants[t]
	if mt == nil && create {
		mt = &memTenant{agents: make(map[string]time.Time)}
		m.tenants[t] = mt
	}
	return mt
}

// session returns tenant t's live session sessionID whoever owns it, or nil; an
// expired one is removed on the way. m.mu must be held.
func (m *MemoryStore) session(t tenant.ID, sessionID string, now time.Time) *memSession {
	s := m.sessions[memKey{t, sessionID}]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		m.remove(s)
		return nil
	}
	return s
}

// setHandoff makes h s's handoff record, keeping the byte budget. It does not
// touch the indexes. m.mu must be held.
func (m *MemoryStore) setHandoff(s *memSession, h Handoff) {
	var old int64
	if s.handoff == nil {
		s.handoff = &memHandoff{s: s}
	} else {
		old = handoffSize(&s.handoff.h)
	}
	h.Position = 0
	s.handoff.h = h
	delta := handoffSize(&h) - old
	s.size += delta
	m.bytes += delta
}

// place moves r into mt's index of its status, keeping at most MaxClosedHandoffs in
// the closed one (the newest). m.mu must be held.
func (mt *memTenant) place(r *memHandoff) {
	if r.tree != nil {
		r.tree.remove(r)
	}
	i := statusIndex(r.h.Status)
	if i < 0 {
		return
	}
	r.at = r.h.WaitingSince
	if r.h.Status == HandoffClosed {
		r.at = r.h.ClosedAt
	}
	tree := &mt.index[i]
	tree.insert(r)
	if r.h.Status == HandoffClosed && tree.len() > MaxClosedHandoffs {
		// The record stays with its session; only the index forgets it.
		tree.remove(tree.first())
	}
}

// record returns r's record with its queue position when it waits. m.mu must be held.
func (r *memHandoff) record() Handoff {
	h := r.h
	if h.Status == HandoffWaiting && r.tree != nil {
		h.Position = r.tree.rank(r) + 1
	}
	return h
}

// OpenHandoff hands ref's session to a person for cause at now: the session (created
// for ref.User, empty, with the store's TTL, if it does not exist) gets a new waiting
// record holding lastMessage (cut to MaxLastMessage bytes), which joins the end of
// its tenant's queue; it returns the record with its position and true. A session
// already waiting or with an agent keeps its record, which it returns with false. It
// returns ErrNotFound if the session is another user's.
func (m *MemoryStore) OpenHandoff(ctx context.Context, ref Ref, cause, lastMessage string, now time.Time) (Handoff, bool, error) {
	if err := checkRef(ref); err != nil {
		return Handoff{}, false, err
	}
	last := cutLastMessage(lastMessage)
	clock := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(clock)
	s := m.session(ref.Tenant, ref.Session, clock)
	switch {
	case s == nil:
		s = m.create(memKey{ref.Tenant, ref.Session}, ref.User, clock.Add(m.ttl))
	case s.owner != ref.User:
		return Handoff{}, false, ErrNotFound
	default:
		m.lru.MoveToFront(s.elem)
	}
	if s.handoff != nil && s.handoff.h.Active() {
		return s.handoff.record(), false, nil
	}
	h := Handoff{
		Session:      s.key.session,
		User:         s.owner,
		Status:       HandoffWaiting,
		Cause:        cause,
		WaitingSince: now,
		LastMessage:  last,
	}
	if last != "" {
		h.LastAt = now
	}
	m.setHandoff(s, h)
	m.tenantState(ref.Tenant, true).place(s.handoff)
	m.evict(s)
	return s.handoff.record(), true, nil
}

// GetHandoff returns the handoff record of session sessionID of tenant t, with its
// queue position when it waits, whoever owns the session. It returns ErrNotFound if
// the session does not exist or has no record.
func (m *MemoryStore) GetHandoff(ctx context.Context, t tenant.ID, sessionID string) (Handoff, error) {
	if err := checkSession(t, sessionID); err != nil {
		return Handoff{}, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(t, sessionID, now)
	if s == nil || s.handoff == nil {
		return Handoff{}, ErrNotFound
	}
	return s.handoff.record(), nil
}

// ClaimHandoff gives the waiting handoff of session sessionID of tenant t to agent
// agentID (shown as agentName) at now and returns the record; of concurrent claims,
// exactly one succeeds. A claim by the agent that holds it already returns the record
// unchanged. It returns ErrNotFound if there is no record and ErrConflict if it is
// with another agent or closed.
func (m *MemoryStore) ClaimHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, agentName string, now time.Time) (Handoff, error) {
	if err := checkSession(t, sessionID); err != nil {
		return Handoff{}, err
	}
	if agentID == "" {
		return Handoff{}, errors.New("session: claim handoff: no agent id")
	}
	clock := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(t, sessionID, clock)
	if s == nil || s.handoff == nil {
		return Handoff{}, ErrNotFound
	}
	h := s.handoff.h
	switch {
	case h.Status == HandoffAgent && h.AgentID == agentID:
		return h, nil
	case h.Status != HandoffWaiting:
		return Handoff{}, ErrConflict
	}
	h.Status, h.AgentID, h.AgentName, h.ClaimedAt = HandoffAgent, agentID, agentName, now
	m.setHandoff(s, h)
	m.tenantState(t, true).place(s.handoff)
	m.lru.MoveToFront(s.elem)
	m.evict(s)
	return s.handoff.h, nil
}

// CloseHandoff closes the handoff of session sessionID of tenant t, held by agent
// agentID, at now with the agent's resolution note, and returns the record. It
// returns ErrNotFound if there is no record and ErrConflict unless agentID holds it.
func (m *MemoryStore) CloseHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, resolution string, now time.Time) (Handoff, error) {
	if err := checkSession(t, sessionID); err != nil {
		return Handoff{}, err
	}
	clock := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(t, sessionID, clock)
	if s == nil || s.handoff == nil {
		return Handoff{}, ErrNotFound
	}
	h := s.handoff.h
	if h.Status != HandoffAgent || h.AgentID != agentID {
		return Handoff{}, ErrConflict
	}
	h.Status, h.ClosedAt, h.Resolution = HandoffClosed, now, resolution
	m.setHandoff(s, h)
	m.tenantState(t, true).place(s.handoff)
	m.lru.MoveToFront(s.elem)
	m.evict(s)
	return s.handoff.h, nil
}

// NoteHandoffMessage records message (cut to MaxLastMessage bytes), which came at
// at, as the last customer message of the handoff of session sessionID of tenant t.
// It returns ErrNotFound if there is no record.
func (m *MemoryStore) NoteHandoffMessage(ctx context.Context, t tenant.ID, sessionID, message string, at time.Time) error {
	if err := checkSession(t, sessionID); err != nil {
		return err
	}
	message = cutLastMessage(message)
	clock := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(t, sessionID, clock)
	if s == nil || s.handoff == nil {
		return ErrNotFound
	}
	h := s.handoff.h
	h.LastMessage, h.LastAt = message, at
	m.setHandoff(s, h)
	m.evict(s)
	return nil
}

// ListHandoffs returns at most limit (100 when limit <= 0) of tenant t's handoff
// records with status, oldest WaitingSince first, waiting ones with their queue
// position. For waiting and agent these are the oldest waits; for closed, the most
// recently closed. Records of expired sessions met on the way are removed. An unknown
// status is an error.
func (m *MemoryStore) ListHandoffs(ctx context.Context, t tenant.ID, status string, limit int) ([]Handoff, error) {
	i := statusIndex(status)
	if i < 0 {
		return nil, fmt.Errorf("session: list handoffs: unknown status %q", status)
	}
	if err := checkTenant(t); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultListLimit
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mt := m.tenantState(t, false)
	if mt == nil {
		return nil, nil
	}
	tree := &mt.index[i]
	var out []Handoff
	var expired []*memSession
	visit := func(r *memHandoff) bool {
		if !now.Before(r.s.expires) {
			expired = append(expired, r.s)
			return true
		}
		h := r.h
		if status == HandoffWaiting {
			// Walking from the head of the queue, with the expired sessions before
			// this one about to go: its place is the live ones before it plus one.
			h.Position = len(out) + 1
		}
		out = append(out, h)
		return len(out) < limit
	}
	if status == HandoffClosed {
		tree.descend(visit)
		slices.SortFunc(out, compareWaits)
	} else {
		tree.ascend(visit)
	}
	for _, s := range expired {
		m.remove(s)
	}
	return out, nil
}

// compareWaits orders handoff records by WaitingSince, then session id.
func compareWaits(a, b Handoff) int {
	if c := a.WaitingSince.Compare(b.WaitingSince); c != 0 {
		return c
	}
	if a.Session < b.Session {
		return -1
	}
	if a.Session > b.Session {
		return 1
	}
	return 0
}

// CountWaiting returns how many of tenant t's sessions wait for an agent.
func (m *MemoryStore) CountWaiting(ctx context.Context, t tenant.ID) (int, error) {
	if err := checkTenant(t); err != nil {
		return 0, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	mt := m.tenantState(t, false)
	if mt == nil {
		return 0, nil
	}
	return mt.index[0].len(), nil
}

// AppendEvent adds data (copied) to the event log of session sessionID of tenant t and
// returns its seq: 1 for a session's first event, then one more each time. The log
// keeps the newest MaxEvents events. It returns ErrNotFound if the session does not
// exist.
func (m *MemoryStore) AppendEvent(ctx context.Context, t tenant.ID, sessionID string, data []byte) (int64, error) {
	if err := checkSession(t, sessionID); err != nil {
		return 0, err
	}
	ev := Event{Data: slices.Clone(data)}
	size := eventOverhead + int64(len(data))
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.session(t, sessionID, now)
	if s == nil {
		return 0, ErrNotFound
	}
	if s.events == nil {
		s.events = &memEvents{}
		size += eventsOverhead
	}
	e := s.events
	e.seq++
	ev.Seq = e.seq
	if len(e.ring) < MaxEvents {
		e.ring = append(e.ring, ev)
	} else {
		old := &e.ring[e.head]
		size -= eventOverhead + int64(len(old.Data))
		*old = ev
		e.head = (e.head + 1) % len(e.ring)
	}
	s.size += size
	m.bytes += size
	m.lru.MoveToFront(s.elem)
	m.evict(s)
	return ev.Seq, nil
}

// EventsAfter returns the kept events of session sessionID of tenant t whose seq is
// above after, oldest first, none if there are none. It returns ErrNotFound if the
// session does not exist.
func (m *MemoryStore) EventsAfter(ctx context.Context, t tenant.ID, sessionID string, after int64) ([]Event, error) {
	if err := checkSession(t, sessionID); err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	s := m.session(t, sessionID, now)
	if s == nil {
		m.mu.Unlock()
		return nil, ErrNotFound
	}
	var out []Event
	if e := s.events; e != nil {
		n := len(e.ring)
		first := e.seq - int64(n) + 1
		skip := int(min(max(after-first+1, 0), int64(n)))
		if skip < n {
			out = make([]Event, 0, n-skip)
			for i := skip; i < n; i++ {
				out = append(out, e.ring[(e.head+i)%n])
			}
		}
	}
	m.mu.Unlock()
	for i := range out {
		out[i].Data = slices.Clone(out[i].Data)
	}
	return out, nil
}

// SeeAgent records that agent agentID of tenant t is online until until.
func (m *MemoryStore) SeeAgent(ctx context.Context, t tenant.ID, agentID string, until time.Time) error {
	if err := checkTenant(t); err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	mt := m.tenantState(t, true)
	mt.agents[agentID] = until
	if len(mt.agents) >= max(mt.prune, minAgentPrune) {
		pruneAgents(mt.agents, now)
		mt.prune = 2 * len(mt.agents)
	}
	return nil
}

// AgentsOnline returns how many agents of tenant t are online at now.
func (m *MemoryStore) AgentsOnline(ctx context.Context, t tenant.ID, now time.Time) (int, error) {
	if err := checkTenant(t); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mt := m.tenantState(t, false)
	if mt == nil {
		return 0, nil
	}
	pruneAgents(mt.agents, now)
	return len(mt.agents), nil
}

// pruneAgents drops the agents no longer online at now.
func pruneAgents(agents map[string]time.Time, now time.Time) {
	for id, until := range agents {
		if !until.After(now) {
			delete(agents, id)
		}
	}
}

// handoffTree is one of a tenant's handoff indexes in a MemoryStore: its records
// ordered by their key (at, then session id) in a treap whose nodes are the records
// themselves, each counting its subtree. Insert, remove and a record's rank (its
// place in the queue) take O(log n) expected steps and allocate nothing, where a
// sorted slice would move the whole queue to take its head.
type handoffTree struct {
	root *memHandoff
}

func (t *handoffTree) len() int { return treeSize(t.root) }

func treeSize(n *memHandoff) int {
	if n == nil {
		return 0
	}
	return n.n
}

func (n *memHandoff) fix() { n.n = treeSize(n.left) + treeSize(n.right) + 1 }

// keyLess reports whether a's key orders before b's.
func keyLess(a, b *memHandoff) bool {
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	return a.h.Session < b.h.Session
}

// insert adds r, which is in no tree.
func (t *handoffTree) insert(r *memHandoff) {
	r.left, r.right, r.n, r.prio, r.tree = nil, nil, 1, rand.Uint64(), t
	l, g := split(t.root, r)
	t.root = merge(merge(l, r), g)
}

// remove takes r, which is in t, out of t.
func (t *handoffTree) remove(r *memHandoff) {
	t.root = removeNode(t.root, r)
	r.left, r.right, r.n, r.tree = nil, nil, 0, nil
}

// split cuts n into the nodes ordered before key and the others.
func split(n, key *memHandoff) (less, rest *memHandoff) {
	if n == nil {
		return nil, nil
	}
	if keyLess(n, key) {
		n.right, rest = split(n.right, key)
		n.fix()
		return n, rest
	}
	less, n.left = split(n.left, key)
	n.fix()
	return less, n
}

// merge joins a and b, every node of a ordering before every node of b.
func merge(a, b *memHandoff) *memHandoff {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = merge(a.right, b)
		a.fix()
		return a
	default:
		b.left = merge(a, b.left)
		b.fix()
		return b
	}
}

func removeNode(n, r *memHandoff) *memHandoff {
	if n == nil {
		return nil
	}
	if n == r {
		return merge(n.left, n.right)
	}
	if keyLess(r, n) {
		n.left = removeNode(n.left, r)
	} else {
		n.right = removeNode(n.right, r)
	}
	n.fix()
	return n
}

// rank returns how many nodes of t order before r, which is in t.
func (t *handoffTree) rank(r *memHandoff) int {
	k := 0
	for n := t.root; n != nil; {
		switch {
		case n == r:
			return k + treeSize(n.left)
		case keyLess(r, n):
			n = n.left
		default:
			k += treeSize(n.left) + 1
			n = n.right
		}
	}
	return k
}

// first returns the node ordered first, or nil.
func (t *handoffTree) first() *memHandoff {
	n := t.root
	for n != nil && n.left != nil {
		n = n.left
	}
	return n
}

// ascend calls fn with the nodes in order until it returns false. fn must not
// change the tree.
func (t *handoffTree) ascend(fn func(*memHandoff) bool) { walk(t.root, fn, false) }

// descend is ascend in reverse order.
func (t *handoffTree) descend(fn func(*memHandoff) bool) { walk(t.root, fn, true) }

func walk(n *memHandoff, fn func(*memHandoff) bool, reverse bool) bool {
	if n == nil {
		return true
	}
	a, b := n.left, n.right
	if reverse {
		a, b = b, a
	}
	return walk(a, fn, reverse) && fn(n) && walk(b, fn, reverse)
}
