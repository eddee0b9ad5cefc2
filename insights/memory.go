package insights

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// MemoryStore keeps the records in this process, for queue.mode off: each tenant's at
// most max, none older than retention. Safe for concurrent use.
type MemoryStore struct {
	retention time.Duration
	max       int
	now       func() time.Time

	mu      sync.Mutex
	tenants map[tenant.ID]*memTenant
}

// memTenant is one tenant's records, oldest first, and how many of them each key
// (kind and turn) has: a key met again is replaced, found without a scan.
type memTenant struct {
	recs []Event
	keys map[memKey]int
}

type memKey struct {
	kind Kind
	turn string
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore(cfg Config) (*MemoryStore, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &MemoryStore{retention: cfg.Retention, max: cfg.MaxRecordsPerTenant, now: time.Now, tenants: map[tenant.ID]*memTenant{}}, nil
}

// Append stores events; a record of a kind and turn already kept replaces it.
func (s *MemoryStore) Append(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		mt := s.prune(e.Tenant)
		k := memKey{e.Kind, e.TurnID}
		if mt.keys[k] > 0 {
			for i := range mt.recs {
				if mt.recs[i].Kind == e.Kind && mt.recs[i].TurnID == e.TurnID {
					mt.recs = append(mt.recs[:i], mt.recs[i+1:]...)
					mt.keys[k]--
					break
				}
			}
		}
		mt.recs = append(mt.recs, e)
		mt.keys[k]++
		if over := len(mt.recs) - s.max; over > 0 {
			mt.drop(over)
		}
	}
	return nil
}

// drop forgets the n oldest records.
func (mt *memTenant) drop(n int) {
	for _, e := range mt.recs[:n] {
		k := memKey{e.Kind, e.TurnID}
		if mt.keys[k]--; mt.keys[k] <= 0 {
			delete(mt.keys, k)
		}
	}
	clear(mt.recs[:n])
	mt.recs = mt.recs[n:]
}

// prune drops t's records older than the retention (by their At) and returns the
// tenant's records. With s.mu held.
func (s *MemoryStore) prune(t tenant.ID) *memTenant {
	mt := s.tenants[t]
	if mt == nil {
		mt = &memTenant{keys: map[memKey]int{}}
		s.tenants[t] = mt
	}
	cut := s.now().Add(-s.retention)
	i := 0
	for i < len(mt.recs) && mt.recs[i].At.Before(cut) {
		i++
	}
	if i > 0 {
		mt.drop(i)
	}
	return mt
}

// Turn returns t's record of turnID, or ErrNotFound.
func (s *MemoryStore) Turn(_ context.Context, t tenant.ID, turnID string) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mt := s.prune(t)
	if mt.keys[memKey{KindTurn, turnID}] > 0 {
		for i := len(mt.recs) - 1; i >= 0; i-- {
			if mt.recs[i].Kind == KindTurn && mt.recs[i].TurnID == turnID {
				return mt.recs[i], nil
			}
		}
	}
	return Event{}, fmt.Errorf("tenant %s turn %s: %w", t, turnID, ErrNotFound)
}

// List returns t's records at or after since, oldest first, of kinds.
func (s *MemoryStore) List(_ context.Context, t tenant.ID, since time.Time, kinds ...Kind) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.prune(t).recs {
		if !e.At.Before(since) && wanted(e.Kind, kinds) {
			out = append(out, e)
		}
	}
	return out, nil
}
