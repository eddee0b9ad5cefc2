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
	tenants map[tenant.ID][]Event // oldest first
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore(cfg Config) (*MemoryStore, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &MemoryStore{retention: cfg.Retention, max: cfg.MaxRecordsPerTenant, now: time.Now, tenants: map[tenant.ID][]Event{}}, nil
}

// Append stores events; a feedback replaces the earlier one on its turn.
func (s *MemoryStore) Append(_ context.Context, events []Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range events {
		recs := s.prune(e.Tenant)
		for i := range recs {
			if recs[i].Kind == e.Kind && recs[i].TurnID == e.TurnID {
				recs = append(recs[:i], recs[i+1:]...)
				break
			}
		}
		recs = append(recs, e)
		if over := len(recs) - s.max; over > 0 {
			recs = append(recs[:0:0], recs[over:]...)
		}
		s.tenants[e.Tenant] = recs
	}
	return nil
}

// prune drops t's records older than the retention (by their At) and returns the
// rest. With s.mu held.
func (s *MemoryStore) prune(t tenant.ID) []Event {
	recs := s.tenants[t]
	cut := s.now().Add(-s.retention)
	i := 0
	for i < len(recs) && recs[i].At.Before(cut) {
		i++
	}
	if i > 0 {
		recs = append(recs[:0:0], recs[i:]...)
		s.tenants[t] = recs
	}
	return recs
}

// Turn returns t's record of turnID, or ErrNotFound.
func (s *MemoryStore) Turn(_ context.Context, t tenant.ID, turnID string) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.prune(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Kind == KindTurn && recs[i].TurnID == turnID {
			return recs[i], nil
		}
	}
	return Event{}, fmt.Errorf("tenant %s turn %s: %w", t, turnID, ErrNotFound)
}

// List returns t's records at or after since, oldest first, of kinds.
func (s *MemoryStore) List(_ context.Context, t tenant.ID, since time.Time, kinds ...Kind) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.prune(t) {
		if !e.At.Before(since) && wanted(e.Kind, kinds) {
			out = append(out, e)
		}
	}
	return out, nil
}
