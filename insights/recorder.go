package insights

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Observer counts the records dropped because the recorder's buffer was full
// (*metrics.Metrics: fengda_insights_dropped_total).
type Observer interface {
	InsightsDropped(t tenant.ID)
}

// Buffer and batching of the recorder.
const (
	// bufferSize is how many records wait for the writer. Full, Record drops the record
	// and counts it: an insight is never worth delaying a customer's answer.
	bufferSize = 4096
	// batchSize and flushEvery bound how long a record waits to be written, so that a
	// customer's feedback right after an answer finds its turn.
	batchSize  = 100
	flushEvery = 200 * time.Millisecond
	// writeTimeout bounds one batch's write.
	writeTimeout = 5 * time.Second
	// turnWait is how long Feedback waits for a turn answered moments ago to be
	// written before it answers ErrNotFound.
	turnWait = time.Second
)

// Recorder takes records from the dialogue engine without blocking it and writes them
// to its store in batches from Run. Feedback and List go to the store directly.
type Recorder struct {
	store  Store
	obs    Observer
	log    *zap.Logger
	events chan Event
	// flushes asks Run to write what is queued now; each request's reply channel has
	// buffer 1, so Run never blocks on a caller who left.
	flushes chan chan struct{}
}

// NewRecorder returns a recorder writing to store. obs and log may be nil.
func NewRecorder(store Store, obs Observer, log *zap.Logger) (*Recorder, error) {
	if store == nil {
		return nil, errors.New("insights: nil store")
	}
	if obs == nil {
		obs = noObserver{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Recorder{store: store, obs: obs, log: log.Named("insights"), events: make(chan Event, bufferSize), flushes: make(chan chan struct{})}, nil
}

type noObserver struct{}

func (noObserver) InsightsDropped(tenant.ID) {}

// Record queues e for writing, or drops and counts it when the buffer is full. It
// never blocks and does not allocate.
func (r *Recorder) Record(e Event) {
	select {
	case r.events <- e:
	default:
		r.obs.InsightsDropped(e.Tenant)
	}
}

// TurnAnswered records turn t of ref's session, answered by the bot or handed to a
// person for cause (empty for other turns). The question is redacted by the writer,
// off the caller's path.
func (r *Recorder) TurnAnswered(ref session.Ref, t session.Turn, cause string) {
	e := Event{
		Kind: KindTurn, Tenant: ref.Tenant, TurnID: t.ID, Session: ref.Session, User: ref.User,
		Source: t.Source, Confidence: t.Confidence, Question: t.User, Cause: cause, At: t.AnsweredAt,
	}
	if len(t.Citations) > 0 {
		e.Entry = t.Citations[0].ID
	}
	r.Record(e)
}

// Run writes the queued records in batches of up to batchSize, at least every
// flushEvery, until ctx ends; then it writes what is queued and returns.
func (r *Recorder) Run(ctx context.Context) error {
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	batch := make([]Event, 0, batchSize)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
		err := r.store.Append(wctx, batch)
		cancel()
		if err != nil {
			r.log.Warn("insight records not written", zap.Int("records", len(batch)), zap.Error(err))
		}
		batch = batch[:0]
	}
	for {
		select {
		case e := <-r.events:
			batch = append(batch, redacted(e))
			if len(batch) == batchSize {
				flush()
			}
		case <-tick.C:
			flush()
		case done := <-r.flushes:
			r.drain(&batch, flush)
			done <- struct{}{}
		case <-ctx.Done():
			r.drain(&batch, flush)
			return nil
		}
	}
}

// drain moves every queued record to batch and writes them.
func (r *Recorder) drain(batch *[]Event, flush func()) {
	for {
		select {
		case e := <-r.events:
			*batch = append(*batch, redacted(e))
			if len(*batch) == batchSize {
				flush()
			}
		default:
			flush()
			return
		}
	}
}

// Flush waits until Run has written the records queued before the call, or ctx ends.
// serve.go calls it before the queue's connection closes at shutdown.
func (r *Recorder) Flush(ctx context.Context) error {
	done := make(chan struct{}, 1)
	select {
	case r.flushes <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func redacted(e Event) Event {
	e.Question = logging.Redact(e.Question)
	e.Comment = logging.Redact(e.Comment)
	return e
}

// Feedback records user's rating (RatingUp or RatingDown) of turn turnID of tenant t,
// with an optional comment, replacing any earlier rating of it. Only the turn's own
// user may rate it: another user's turn, another tenant's, or an unknown one is
// ErrNotFound. A turn answered moments ago may not be written yet: Feedback waits up
// to a second for it. It returns ErrInvalid, ErrNotFound or ErrUnavailable.
func (r *Recorder) Feedback(ctx context.Context, t tenant.ID, user, turnID, rating, comment string) error {
	if rating != RatingUp && rating != RatingDown {
		return fmt.Errorf("rating %q is not up or down: %w", rating, ErrInvalid)
	}
	if utf8.RuneCountInString(comment) > MaxCommentChars {
		return fmt.Errorf("comment longer than %d characters: %w", MaxCommentChars, ErrInvalid)
	}
	if !validTurnID(turnID) {
		return fmt.Errorf("turn %q: %w", turnID, ErrNotFound)
	}
	turn, err := r.waitTurn(ctx, t, turnID)
	if err != nil {
		return err
	}
	if turn.User != user {
		return fmt.Errorf("tenant %s turn %s: %w", t, turnID, ErrNotFound)
	}
	e := redacted(Event{Kind: KindFeedback, Tenant: t, TurnID: turnID, Session: turn.Session, User: user,
		Rating: rating, Comment: comment, At: time.Now().UTC()})
	return r.store.Append(ctx, []Event{e})
}

// waitTurn reads turn turnID, trying again for up to turnWait while it is not found.
func (r *Recorder) waitTurn(ctx context.Context, t tenant.ID, turnID string) (Event, error) {
	deadline := time.Now().Add(turnWait)
	for {
		e, err := r.store.Turn(ctx, t, turnID)
		if !errors.Is(err, ErrNotFound) || time.Now().After(deadline) {
			return e, err
		}
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// List returns t's records at or after since, oldest first, of the given kinds (all
// without any). It returns ErrUnavailable.
func (r *Recorder) List(ctx context.Context, t tenant.ID, since time.Time, kinds ...Kind) ([]Event, error) {
	return r.store.List(ctx, t, since, kinds...)
}
