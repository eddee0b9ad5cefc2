package knowledge

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// Version is one version of a tenant's base: its number, when and by whom it was
// written, and what changed, in words ("put entry x", "rollback to 7").
type Version struct {
	Version int       `json:"version"`
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Change  string    `json:"change"`
}

// Head is the newest version of a tenant's base as a store read it, with the versions
// the store keeps. Commit takes it back to write the next version only if no other write
// came in between.
type Head struct {
	Latest Version
	Log    []Version // the versions kept, newest first; Log[0] is Latest
	Rev    uint64    // the store's revision of the head; 0 when the tenant has none
	raw    any       // the store's own record of the head
}

// Store keeps the versions of every tenant's base. Each tenant's are apart from the
// others'. Bases given to and returned by a store are not modified afterwards.
type Store interface {
	// Head returns tenant t's newest version, or ErrNotFound when it has none yet.
	Head(ctx context.Context, t tenant.ID) (Head, error)
	// Load returns version n of t's base, or ErrNotFound when it is unknown or pruned.
	Load(ctx context.Context, t tenant.ID, n int) (*Base, error)
	// Commit stores b as version v.Version (prev.Version+1) if prev is still t's head
	// (prev zero: t has none), and prunes the versions past the store's keep. It returns
	// the new head, or ErrConflict when another write came first: nothing is stored
	// then, and the caller reads the head again.
	Commit(ctx context.Context, t tenant.ID, prev Head, v Version, b *Base) (Head, error)
	// Watch calls fn with t's head as it is, then with every later head, until ctx ends
	// or the store closes. It blocks; fn runs on its goroutine.
	Watch(ctx context.Context, t tenant.ID, fn func(Head)) error
}

// copyBase returns b as its JSON would rebuild it, so that a store holds what it
// would have read back from disk, times without their monotonic reading included.
func copyBase(b *Base) (*Base, []byte, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, nil, fmt.Errorf("knowledge: encode base: %w", err)
	}
	var out Base
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, nil, fmt.Errorf("knowledge: decode base: %w", err)
	}
	return &out, data, nil
}

// nextLog is prev's log with v in front, cut to keep versions.
func nextLog[T any](v T, prev []T, keep int) (log, dropped []T) {
	log = append([]T{v}, prev...)
	if len(log) > keep {
		log, dropped = log[:keep], log[keep:]
	}
	return log, dropped
}
