package knowledge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/tenant"
)

// Observer receives the figures of the bases served; the metrics package implements it.
type Observer interface {
	// ObserveKBVersion records the version of t's base this process serves.
	ObserveKBVersion(t tenant.ID, version int)
	// ObserveKBReload records how long building and swapping in an engine took.
	ObserveKBReload(d time.Duration)
}

// Deps are what a Service works with.
type Deps struct {
	Store Store
	// Seed returns tenant t's configured base and where it comes from (its file), read
	// only while the store has no version of t: it becomes version 1.
	Seed func(t tenant.ID) (b *Base, source string, err error)
	// Serve builds t's answer engine from b and serves it from now on, in place of the
	// one before. On an error the engine before keeps serving.
	Serve    func(t tenant.ID, b *Base) error
	Observer Observer    // nil: none
	Log      *zap.Logger // nil: discard
}

// Service keeps every tenant's base: it reads and writes the versions in its Store,
// and serves each new version, whichever replica wrote it, through Deps.Serve. Its
// methods are safe for concurrent use.
type Service struct {
	store   Store
	lim     Limits
	seed    func(tenant.ID) (*Base, string, error)
	serve   func(tenant.ID, *Base) error
	obs     Observer
	log     *zap.Logger
	now     func() time.Time
	tenants map[tenant.ID]*live
	order   []tenant.ID
}

// live is what this process serves of one tenant.
type live struct {
	// write is held by a write of this process from reading the head to moving it: the
	// writes of one replica take turns, and only those of different replicas race.
	write sync.Mutex

	mu      sync.Mutex // held while an engine is built, so versions are served in order
	version int        // served now; 0 before Open
	base    *Base
}

// writeAttempts is how many times a write reads the head and tries to move it before
// it gives up with ErrConflict.
const writeAttempts = 5

// seedUser is the Version.By of a seeded version.
const seedUser = "fengda"

// New returns the service of the given tenants' bases. It reads nothing yet: Open does.
func New(cfg Config, deps Deps, tenants ...tenant.ID) (*Service, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("knowledge: %w", err)
	}
	switch {
	case deps.Store == nil:
		return nil, errors.New("knowledge: nil store")
	case deps.Seed == nil || deps.Serve == nil:
		return nil, errors.New("knowledge: Seed and Serve are required")
	}
	s := &Service{
		store:   deps.Store,
		lim:     cfg.Limits(),
		seed:    deps.Seed,
		serve:   deps.Serve,
		obs:     deps.Observer,
		log:     deps.Log,
		now:     time.Now,
		tenants: make(map[tenant.ID]*live, len(tenants)),
	}
	if s.obs == nil {
		s.obs = noObserver{}
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.Named("kb")
	for _, t := range tenants {
		if _, ok := s.tenants[t]; !ok {
			s.tenants[t] = &live{}
			s.order = append(s.order, t)
		}
	}
	return s, nil
}

type noObserver struct{}

func (noObserver) ObserveKBVersion(tenant.ID, int) {}
func (noObserver) ObserveKBReload(time.Duration)   {}

// Limits are the bounds of a base and its entries.
func (s *Service) Limits() Limits { return s.lim }

// Open serves every tenant's newest base. A tenant the store has no version of is
// seeded from Deps.Seed as version 1; of two replicas seeding at once one wins and the
// other serves its version. It returns an error when a base cannot be read or served.
func (s *Service) Open(ctx context.Context) error {
	for _, t := range s.order {
		head, err := s.store.Head(ctx, t)
		if errors.Is(err, ErrNotFound) {
			head, err = s.seedTenant(ctx, t)
		}
		if err != nil {
			return fmt.Errorf("knowledge base of tenant %s: %w", t, err)
		}
		b, err := s.store.Load(ctx, t, head.Latest.Version)
		if err != nil {
			return fmt.Errorf("knowledge base of tenant %s, version %d: %w", t, head.Latest.Version, err)
		}
		if err := s.apply(t, head.Latest.Version, b); err != nil {
			return fmt.Errorf("knowledge base of tenant %s, version %d: %w", t, head.Latest.Version, err)
		}
		s.log.Info("knowledge base served", zap.String("tenant", t.String()),
			zap.Int("version", head.Latest.Version), zap.Int("entries", len(b.Entries)))
	}
	return nil
}

// seedTenant writes t's configured base as version 1, or reads the version 1 another
// replica wrote first.
func (s *Service) seedTenant(ctx context.Context, t tenant.ID) (Head, error) {
	b, source, err := s.seed(t)
	if err != nil {
		return Head{}, err
	}
	now := s.now()
	for i := range b.Entries {
		if b.Entries[i].UpdatedAt.IsZero() {
			b.Entries[i].UpdatedAt = now
		}
	}
	v := Version{Version: 1, At: now, By: seedUser, Change: "seed from " + source}
	head, err := s.store.Commit(ctx, t, Head{}, v, b)
	if errors.Is(err, ErrConflict) {
		return s.store.Head(ctx, t)
	}
	if err != nil {
		return Head{}, err
	}
	s.log.Info("knowledge base seeded", zap.String("tenant", t.String()), zap.String("source", source),
		zap.Int("version", 1), zap.Int("entries", len(b.Entries)))
	return head, nil
}

// Run serves every new version of the tenants' bases, written by any replica, until ctx
// ends. A version whose engine does not build is logged and the one before keeps
// serving.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.order))
	for i, t := range s.order {
		wg.Go(func() {
			for ctx.Err() == nil {
				errs[i] = s.store.Watch(ctx, t, func(h Head) { s.follow(ctx, t, h) })
				if ctx.Err() != nil || errs[i] == nil {
					return
				}
				s.log.Warn("knowledge base watch failed; retrying", zap.String("tenant", t.String()), zap.Error(errs[i]))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// follow serves head's version of t's base when it is newer than the one served.
func (s *Service) follow(ctx context.Context, t tenant.ID, h Head) {
	l := s.tenants[t]
	l.mu.Lock()
	served := l.version
	l.mu.Unlock()
	if h.Latest.Version <= served {
		return
	}
	b, err := s.store.Load(ctx, t, h.Latest.Version)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("knowledge base version not read; the one before keeps serving", zap.String("tenant", t.String()),
				zap.Int("version", h.Latest.Version), zap.Error(err))
		}
		return
	}
	if err := s.apply(t, h.Latest.Version, b); err != nil {
		s.log.Error("knowledge base version not served: its engine did not build; the one before keeps serving",
			zap.String("tenant", t.String()), zap.Int("version", h.Latest.Version), zap.Error(err))
		return
	}
	s.log.Info("knowledge base version served", zap.String("tenant", t.String()), zap.Int("version", h.Latest.Version),
		zap.String("by", h.Latest.By), zap.String("change", h.Latest.Change))
}

// apply builds and serves version n of t's base, unless a newer one is served already.
func (s *Service) apply(t tenant.ID, n int, b *Base) error {
	l := s.tenants[t]
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= l.version {
		return nil
	}
	start := time.Now()
	if err := s.serve(t, b); err != nil {
		return err
	}
	s.obs.ObserveKBReload(time.Since(start))
	s.obs.ObserveKBVersion(t, n)
	l.version, l.base = n, b
	return nil
}

// tenant returns t's state, or ErrNotFound for a tenant the service does not keep.
func (s *Service) tenant(t tenant.ID) (*live, error) {
	l := s.tenants[t]
	if l == nil {
		return nil, fmt.Errorf("knowledge: tenant %s: %w", t, ErrNotFound)
	}
	return l, nil
}

// Current returns t's newest version and its base, read from the store.
func (s *Service) Current(ctx context.Context, t tenant.ID) (Version, *Base, error) {
	l, err := s.tenant(t)
	if err != nil {
		return Version{}, nil, err
	}
	head, err := s.store.Head(ctx, t)
	if err != nil {
		return Version{}, nil, err
	}
	b, err := s.baseAt(ctx, l, t, head.Latest.Version)
	return head.Latest, b, err
}

// baseAt returns version n of t's base: the one served if it is n, else the store's.
func (s *Service) baseAt(ctx context.Context, l *live, t tenant.ID, n int) (*Base, error) {
	l.mu.Lock()
	version, base := l.version, l.base
	l.mu.Unlock()
	if version == n && base != nil {
		return base, nil
	}
	return s.store.Load(ctx, t, n)
}

// Versions returns the versions of t's base kept, newest first.
func (s *Service) Versions(ctx context.Context, t tenant.ID) ([]Version, error) {
	if _, err := s.tenant(t); err != nil {
		return nil, err
	}
	head, err := s.store.Head(ctx, t)
	if err != nil {
		return nil, err
	}
	return head.Log, nil
}

// PutEntry creates or replaces the entry e.ID of t's base, as admin by; it returns the
// new version and the entry as stored. An invalid entry is an *InvalidError.
func (s *Service) PutEntry(ctx context.Context, t tenant.ID, e Entry, by string) (int, Entry, error) {
	if errs := ValidateEntry(&e, s.lim); len(errs) > 0 {
		return 0, Entry{}, &InvalidError{Errors: errs}
	}
	e.UpdatedAt = s.now().UTC().Round(0)
	n, err := s.write(ctx, t, by, func(cur *Base) (*Base, string, error) {
		next := *cur
		next.Entries = slices.Clone(cur.Entries)
		if i := slices.IndexFunc(next.Entries, func(x Entry) bool { return x.ID == e.ID }); i >= 0 {
			next.Entries[i] = e
		} else {
			next.Entries = append(next.Entries, e)
		}
		return &next, "put entry " + e.ID, nil
	})
	return n, e, err
}

// DeleteEntry deletes the entry id of t's base, as admin by; ErrNotFound if absent.
func (s *Service) DeleteEntry(ctx context.Context, t tenant.ID, id, by string) (int, error) {
	return s.write(ctx, t, by, func(cur *Base) (*Base, string, error) {
		i := slices.IndexFunc(cur.Entries, func(x Entry) bool { return x.ID == id })
		if i < 0 {
			return nil, "", fmt.Errorf("knowledge: tenant %s: entry %q: %w", t, id, ErrNotFound)
		}
		next := *cur
		next.Entries = slices.Delete(slices.Clone(cur.Entries), i, i+1)
		return &next, "delete entry " + id, nil
	})
}

// Import replaces t's whole base with the file data of the given Content-Type, as
// admin by, and returns the new version and its entry count. A file with errors is an
// *InvalidError listing them (nothing changes); ErrUnsupported is a type Parse does
// not read; ErrTooLarge a base past the limits.
func (s *Service) Import(ctx context.Context, t tenant.ID, contentType string, data []byte, by string) (version, entries int, err error) {
	if _, err := s.tenant(t); err != nil {
		return 0, 0, err
	}
	if len(data) > s.lim.MaxBytes {
		return 0, 0, fmt.Errorf("knowledge: import of %d bytes: %w", len(data), ErrTooLarge)
	}
	_, curBase, err := s.Current(ctx, t)
	if err != nil {
		return 0, 0, err
	}
	b, err := Parse(contentType, data, curBase.Language, s.lim)
	if err != nil {
		return 0, 0, err
	}
	if b.Language == "" {
		b.Language = curBase.Language
	}
	now := s.now().UTC().Round(0)
	for i := range b.Entries {
		if b.Entries[i].UpdatedAt.IsZero() {
			b.Entries[i].UpdatedAt = now
		}
	}
	n, err := s.write(ctx, t, by, func(*Base) (*Base, string, error) {
		if len(b.Entries) == 1 {
			return b, "import 1 entry", nil
		}
		return b, fmt.Sprintf("import %d entries", len(b.Entries)), nil
	})
	return n, len(b.Entries), err
}

// Rollback writes a new version of t's base whose content is version n's, as admin by;
// ErrNotFound when n is unknown or pruned.
func (s *Service) Rollback(ctx context.Context, t tenant.ID, n int, by string) (int, error) {
	if _, err := s.tenant(t); err != nil {
		return 0, err
	}
	old, err := s.store.Load(ctx, t, n)
	if err != nil {
		return 0, err
	}
	return s.write(ctx, t, by, func(*Base) (*Base, string, error) {
		return old, fmt.Sprintf("rollback to %d", n), nil
	})
}

// write applies change to t's newest base and stores the result as the next version:
// it reads the head, builds, validates, and moves the head if no other replica moved
// it meanwhile, else starts again, up to writeAttempts times (then ErrConflict). This
// process serves the new version before write returns; the others within moments.
func (s *Service) write(ctx context.Context, t tenant.ID, by string, change func(cur *Base) (*Base, string, error)) (int, error) {
	l, err := s.tenant(t)
	if err != nil {
		return 0, err
	}
	l.write.Lock()
	defer l.write.Unlock()
	for attempt := 1; ; attempt++ {
		head, err := s.store.Head(ctx, t)
		if err != nil {
			return 0, err
		}
		cur, err := s.baseAt(ctx, l, t, head.Latest.Version)
		if err != nil {
			return 0, err
		}
		next, what, err := change(cur)
		if err != nil {
			return 0, err
		}
		if err := Validate(next, s.lim); err != nil {
			return 0, err
		}
		v := Version{Version: head.Latest.Version + 1, At: s.now().UTC(), By: by, Change: what}
		h, err := s.store.Commit(ctx, t, head, v, next)
		if errors.Is(err, ErrConflict) && attempt < writeAttempts {
			// Another replica wrote first: wait a moment, so that two replicas that
			// keep colliding fall out of step, and apply the change to its version.
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(rand.Int64N(int64(10*attempt*int(time.Millisecond))) + 1)):
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		s.log.Info("knowledge base changed", zap.String("tenant", t.String()), zap.String("by", by),
			zap.Int("version", h.Latest.Version), zap.String("change", what), zap.Int("entries", len(next.Entries)))
		if err := s.apply(t, h.Latest.Version, next); err != nil {
			s.log.Error("knowledge base version stored but not served: its engine did not build; the one before keeps serving",
				zap.String("tenant", t.String()), zap.Int("version", h.Latest.Version), zap.Error(err))
		}
		return h.Latest.Version, nil
	}
}
