package insights

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fengda-ai/fengda/tenant"
)

// JetStreamStore keeps each tenant's records in a stream of its own on the queue's
// server, <prefix>_INSIGHTS_<tenant>, on subjects <root>.<tenant>.<kind>.<turn_id>: the
// server drops records past the retention (MaxAge) and the oldest past the bound
// (MaxMsgs), and keeps one message a subject, so a newer feedback on a turn replaces
// the older. The owner of a turn is found with one last-message-for-subject lookup.
// Safe for concurrent use, by any number of replicas.
type JetStreamStore struct {
	js       jetstream.JetStream
	prefix   string
	root     string
	replicas int
	cfg      Config

	mu      sync.Mutex
	streams map[tenant.ID]jetstream.Stream
}

var _ Store = (*JetStreamStore)(nil)

var (
	streamPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{1,200}$`)
	subjectRoot  = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// NewJetStreamStore returns a store on js whose streams are named
// <prefix>_INSIGHTS_<tenant> with subjects under root, made with replicas replicas.
// It makes no stream yet. root must not overlap any other stream's subjects: serve.go
// derives it from the queue's subject as <queue.subject>_insights.
func NewJetStreamStore(js jetstream.JetStream, prefix, root string, replicas int, cfg Config) (*JetStreamStore, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case js == nil:
		return nil, errors.New("insights: nil JetStream")
	case !streamPrefix.MatchString(prefix):
		return nil, fmt.Errorf("insights: stream prefix %q: letters, digits, '-' and '_' only", prefix)
	case !subjectRoot.MatchString(root):
		return nil, fmt.Errorf("insights: subject root %q: dot-separated tokens of letters, digits, '-' and '_'", root)
	}
	return &JetStreamStore{js: js, prefix: prefix, root: root, replicas: max(replicas, 1), cfg: cfg, streams: map[tenant.ID]jetstream.Stream{}}, nil
}

// StreamName returns the name of t's stream.
func (s *JetStreamStore) StreamName(t tenant.ID) string { return s.prefix + "_INSIGHTS_" + string(t) }

func (s *JetStreamStore) subject(t tenant.ID, k Kind, turnID string) string {
	return s.root + "." + string(t) + "." + string(k) + "." + turnID
}

// stream returns t's stream, made on first use.
func (s *JetStreamStore) stream(ctx context.Context, t tenant.ID) (jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[t]; st != nil {
		return st, nil
	}
	name := s.StreamName(t)
	st, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              name,
		Description:       "Fengda: tenant " + string(t) + "'s answered turns, feedback and handoff causes",
		Subjects:          []string{s.root + "." + string(t) + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            s.cfg.Retention,
		MaxMsgs:           int64(s.cfg.MaxRecordsPerTenant),
		MaxMsgsPerSubject: 1,
		Duplicates:        min(s.cfg.Retention, 2*time.Minute),
		Storage:           jetstream.FileStorage,
		Replicas:          s.replicas,
	})
	if err != nil {
		return nil, unavailable("stream "+name, err)
	}
	s.streams[t] = st
	return st, nil
}

func unavailable(what string, err error) error {
	return fmt.Errorf("insights: %s: %w: %w", what, ErrUnavailable, err)
}

// Append publishes each event on its tenant's stream and waits for the server's
// acknowledgements.
func (s *JetStreamStore) Append(ctx context.Context, events []Event) error {
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for _, e := range events {
		if !validTurnID(e.TurnID) {
			return fmt.Errorf("insights: turn id %q: %w", e.TurnID, ErrInvalid)
		}
		if _, err := s.stream(ctx, e.Tenant); err != nil {
			return err
		}
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("insights: encode record: %w", err)
		}
		f, err := s.js.PublishAsync(s.subject(e.Tenant, e.Kind, e.TurnID), data)
		if err != nil {
			return unavailable("publish", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return unavailable("publish", err)
		case <-ctx.Done():
			return unavailable("publish", ctx.Err())
		}
	}
	return nil
}

// Turn returns t's record of turnID, or ErrNotFound.
func (s *JetStreamStore) Turn(ctx context.Context, t tenant.ID, turnID string) (Event, error) {
	if !validTurnID(turnID) {
		return Event{}, fmt.Errorf("tenant %s turn %q: %w", t, turnID, ErrNotFound)
	}
	st, err := s.stream(ctx, t)
	if err != nil {
		return Event{}, err
	}
	m, err := st.GetLastMsgForSubject(ctx, s.subject(t, KindTurn, turnID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Event{}, fmt.Errorf("tenant %s turn %s: %w", t, turnID, ErrNotFound)
	}
	if err != nil {
		return Event{}, unavailable("read turn", err)
	}
	var e Event
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return Event{}, fmt.Errorf("insights: decode record: %w", err)
	}
	return e, nil
}

// listBatch is how many records List fetches at a time.
const listBatch = 256

// List reads t's records with an ephemeral consumer starting at since. It filters on
// one subject (the NATS server on this machine, 2.9, takes no list of filters): one
// kind's, or the tenant's whole stream, the other kinds then dropped here.
func (s *JetStreamStore) List(ctx context.Context, t tenant.ID, since time.Time, kinds ...Kind) ([]Event, error) {
	st, err := s.stream(ctx, t)
	if err != nil {
		return nil, err
	}
	filter := s.root + "." + string(t) + ".>"
	if len(kinds) == 1 {
		filter = s.root + "." + string(t) + "." + string(kinds[0]) + ".*"
	}
	cc := jetstream.ConsumerConfig{
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
	}
	if !since.IsZero() {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := st.CreateConsumer(ctx, cc)
	if err != nil {
		return nil, unavailable("list", err)
	}
	info := cons.CachedInfo()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = st.DeleteConsumer(dctx, info.Name)
	}()
	pending := int(info.NumPending)
	var out []Event
	for got := 0; got < pending; {
		batch, err := cons.Fetch(min(listBatch, pending-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, unavailable("list", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var e Event
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				continue // not ours to read; the stream holds only records
			}
			if wanted(e.Kind, kinds) {
				out = append(out, e)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, unavailable("list", err)
		}
		if n == 0 {
			break // pruned while reading
		}
		got += n
	}
	return out, nil
}

// validTurnID reports whether id can be a subject token: session.ValidID's alphabet.
func validTurnID(id string) bool {
	return id != "" && len(id) <= 64 && !strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	})
}
