package knowledge

import (
	"context"
	"fmt"
	"sync"

	"github.com/fengda-ai/fengda/tenant"
)

// MemoryStore keeps the bases in this process only: edits are lost on a restart, and
// other replicas do not see them. It serves queue.mode off. Safe for concurrent use.
type MemoryStore struct {
	keep int

	mu      sync.Mutex
	tenants map[tenant.ID]*memTenant
	changed chan struct{} // closed and replaced by every commit
}

type memTenant struct {
	head  Head
	bases map[int]*Base
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store keeping the last keep versions of each base.
func NewMemoryStore(keep int) (*MemoryStore, error) {
	if keep < 1 {
		return nil, fmt.Errorf("knowledge: keep %d versions: must be positive", keep)
	}
	return &MemoryStore{keep: keep, tenants: make(map[tenant.ID]*memTenant), changed: make(chan struct{})}, nil
}

// Head returns t's newest version, or ErrNotFound.
func (s *MemoryStore) Head(ctx context.Context, t tenant.ID) (Head, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mt := s.tenants[t]
	if mt == nil {
		return Head{}, fmt.Errorf("knowledge: tenant %s has no base: %w", t, ErrNotFound)
	}
	return mt.head, nil
}

// Load returns version n of t's base, or ErrNotFound.
func (s *MemoryStore) Load(ctx context.Context, t tenant.ID, n int) (*Base, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mt := s.tenants[t]; mt != nil {
		if b := mt.bases[n]; b != nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("knowledge: tenant %s version %d: %w", t, n, ErrNotFound)
}

// Commit stores b as the next version if prev is still the head, or returns ErrConflict.
func (s *MemoryStore) Commit(ctx context.Context, t tenant.ID, prev Head, v Version, b *Base) (Head, error) {
	b, _, err := copyBase(b)
	if err != nil {
		return Head{}, err
	}
	v.At = v.At.Round(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	mt := s.tenants[t]
	var cur Head
	if mt != nil {
		cur = mt.head
	}
	if cur.Rev != prev.Rev || v.Version != cur.Latest.Version+1 {
		return Head{}, fmt.Errorf("knowledge: tenant %s: head is version %d, not %d: %w", t, cur.Latest.Version, prev.Latest.Version, ErrConflict)
	}
	if mt == nil {
		mt = &memTenant{bases: make(map[int]*Base)}
		s.tenants[t] = mt
	}
	log, dropped := nextLog(v, cur.Log, s.keep)
	mt.head = Head{Latest: v, Log: log, Rev: cur.Rev + 1}
	mt.bases[v.Version] = b
	for _, d := range dropped {
		delete(mt.bases, d.Version)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return mt.head, nil
}

// Watch calls fn with t's head and every later one until ctx ends.
func (s *MemoryStore) Watch(ctx context.Context, t tenant.ID, fn func(Head)) error {
	seen := uint64(0)
	for {
		s.mu.Lock()
		changed := s.changed
		var head Head
		if mt := s.tenants[t]; mt != nil {
			head = mt.head
		}
		s.mu.Unlock()
		if head.Rev > seen {
			seen = head.Rev
			fn(head)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
