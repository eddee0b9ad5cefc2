package dialogue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Spillover. A turn that finds every worker busy and the backlog full is published to
// the queue on its tenant's subject, with Nats-Msg-Id tenant/session/client message id
// (or turn id) so that a retried publish stores one message. The request subscribes to
// the turn's result before publishing and waits for it up to Spill.Wait; every process
// consumes the queue (HandleQueued) within the same worker slots as its local turns,
// answers the turn, stores it, replies to the waiting request and only then
// acknowledges the message. A message delivered again whose turn is already stored is
// acknowledged without a second answer. When the wait runs out the request gets the
// turn id to fetch the answer later (QueuedTurn).

// Outcomes of a spilled turn, for Observer.ObserveSpill.
const (
	SpillAnswered = "answered" // the result arrived while the request waited
	SpillQueued   = "queued"   // the wait ran out: the caller polls by turn id
	SpillFull     = "full"     // the queue refused it: ErrQueueFull
	SpillError    = "error"    // the queue could not be reached: ErrOverloaded
)

// Spill configures spillover. With a nil Queue it is off and a full backlog refuses
// turns with ErrOverloaded.
type Spill struct {
	Queue *queue.Queue
	// Wait is how long a request waits for its queued turn's result before it gets the
	// turn id to poll with (queue.max_wait). Default 30s.
	Wait time.Duration
	// TurnTimeout bounds answering one queued turn (the chat turn deadline). Default 10s.
	// It must stay below the queue's AckWait, or a turn still being answered is
	// delivered again.
	TurnTimeout time.Duration
}

func (s *Spill) setDefaults() error {
	if s.Wait == 0 {
		s.Wait = 30 * time.Second
	}
	if s.TurnTimeout == 0 {
		s.TurnTimeout = 10 * time.Second
	}
	if s.Wait < 0 || s.TurnTimeout < 0 {
		return errors.New("dialogue: negative spill wait or turn timeout")
	}
	return nil
}

const (
	// publishTimeout bounds one publish to the queue.
	publishTimeout = 5 * time.Second
	// keepAliveEvery is how often a queued turn waiting for a worker slot tells the
	// queue it is still being worked, so its AckWait does not run out meanwhile.
	keepAliveEvery = 5 * time.Second
	// wireVersion is the version of queuedTurn's encoding.
	wireVersion = 1
)

// queuedTurn is the message published for a spilled turn. The tenant is not in it: it
// is the subject's, which only this process sets, from the verified token.
type queuedTurn struct {
	V           int       `json:"v"`
	Session     string    `json:"session"`
	NewSession  bool      `json:"new_session,omitempty"`
	User        string    `json:"user"`
	Message     string    `json:"message"`
	ClientMsgID string    `json:"client_msg_id,omitempty"`
	TurnID      string    `json:"turn_id"`
	Accepted    time.Time `json:"accepted"`
}

// queuedResult is what a worker sends back to the waiting request.
type queuedResult struct {
	Reply *Reply `json:"reply,omitempty"`
	Error string `json:"error,omitempty"` // resultNotFound or resultInvalid
}

const (
	resultNotFound = "not_found"
	resultInvalid  = "invalid"
)

// spilled is a turn published to the queue whose result a request awaits.
type spilled struct {
	w        *queue.Waiter
	turn     Turn // as submitted
	ref      session.Ref
	turnID   string
	cmid     string
	accepted time.Time
	dup      bool // the publish was a duplicate of one already stored
}

// messageID is a spilled turn's Nats-Msg-Id: tenant/session/key, where key is the client
// message id or else the turn id, so that a retried publish stores one message.
func messageID(t tenant.ID, sessionID, key string) string {
	return string(t) + "/" + sessionID + "/" + key
}

// publish subscribes to t's result, then publishes t to the queue.
func (e *Engine) publish(ctx context.Context, t Turn) (*spilled, error) {
	q := e.deps.Spill.Queue
	p := &spilled{
		turn:     t,
		ref:      session.Ref{Tenant: t.Tenant, Session: t.SessionID, User: t.User},
		cmid:     t.ClientMsgID,
		accepted: time.Now(),
	}
	if p.ref.Session == "" {
		p.ref.Session = session.NewID()
	}
	turnID := newTurnID(t.Tenant, p.ref.Session, t.ClientMsgID)
	msgID := messageID(t.Tenant, p.ref.Session, cmp.Or(t.ClientMsgID, turnID))
	p.turnID = turnID
	data, err := json.Marshal(queuedTurn{
		V: wireVersion, Session: p.ref.Session, NewSession: t.SessionID == "", User: t.User,
		Message: t.Message, ClientMsgID: t.ClientMsgID, TurnID: turnID, Accepted: p.accepted.UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("dialogue: encode queued turn: %w", err)
	}
	// Recorded before it is published, so that GET /v1/turns finds it from the start;
	// without the record the turn is refused rather than queued under an id that
	// polling could never find.
	if err := e.saveQueued(ctx, p); err != nil {
		return nil, err
	}
	if p.w, err = q.Await(t.Tenant, turnID); err != nil {
		return nil, e.spillFailed(t, err)
	}
	// The request id travels in a header, so that the lines logged about the turn on
	// the process that answers it carry it too.
	var hdr map[string]string
	if t.RequestID != "" {
		hdr = map[string]string{queue.RequestIDHeader: t.RequestID}
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	p.dup, err = q.Publish(pctx, t.Tenant, msgID, data, hdr)
	if err != nil {
		p.w.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, e.spillFailed(t, err)
	}
	return p, nil
}

// spillFailed maps a queue error to the caller's: ErrQueueFull when the queue is at its
// cap, ErrOverloaded (as with spillover off) when it cannot be reached.
func (e *Engine) spillFailed(t Turn, err error) error {
	if errors.Is(err, queue.ErrFull) {
		e.deps.Metrics.ObserveSpill(t.Tenant, SpillFull)
		return ErrQueueFull
	}
	e.deps.Metrics.ObserveSpill(t.Tenant, SpillError)
	// Once a second at most: during an outage every overflowing turn lands here.
	if now := time.Now().UnixNano(); now-e.spillWarned.Load() > int64(time.Second) {
		e.spillWarned.Store(now)
		e.turnLog(t).Warn("turns not spilled: queue unavailable, answering 503 overloaded (see fengda_spilled_turns_total{outcome=\"error\"})",
			zap.Error(err))
	}
	return ErrOverloaded
}

// await waits for p's result. A deadline on ctx does not end the wait, Spill.Wait
// does; ctx being cancelled (the caller left) does, as does ReleaseWaiters. When the
// wait ends without a result the reply has Queued set.
func (e *Engine) await(ctx context.Context, p *spilled) (Reply, error) {
	defer p.w.Close()
	if p.dup && p.cmid != "" {
		// A retry of a request whose message is stored: its turn may be answered
		// already, and then nobody will reply again.
		if rec, err := e.deps.Store.LoadRecent(ctx, p.ref, 0, "", p.cmid); err == nil && rec.Found != nil {
			e.deps.Metrics.ObserveSpill(p.ref.Tenant, SpillAnswered)
			return replyOf(p.ref.Session, *rec.Found, time.Since(p.accepted), true), nil
		}
	}
	lctx, stopLeft := untilLeft(ctx)
	defer stopLeft()
	wctx, cancel := context.WithTimeout(lctx, e.deps.Spill.Wait)
	defer cancel()
	stopRelease := context.AfterFunc(e.releaseCtx, cancel)
	defer stopRelease()

	data, err := p.w.Wait(wctx)
	if err == nil {
		var res queuedResult
		if err := json.Unmarshal(data, &res); err != nil {
			return Reply{}, fmt.Errorf("dialogue: decode queued result: %w", err)
		}
		e.deps.Metrics.ObserveSpill(p.ref.Tenant, SpillAnswered)
		switch {
		case res.Reply != nil:
			r := *res.Reply
			r.Latency = time.Since(p.accepted)
			return r, nil
		case res.Error == resultNotFound:
			return Reply{}, ErrNotFound
		default:
			return Reply{}, fmt.Errorf("%w: %s", ErrInvalid, res.Error)
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return Reply{}, ctx.Err() // the caller left; the turn is still answered and stored
	}
	// The wait ran out, the process is shutting down, or the queue closed: the turn
	// stays queued and is answered by whichever process takes it.
	e.deps.Metrics.ObserveSpill(p.ref.Tenant, SpillQueued)
	return Reply{Queued: true, SessionID: p.ref.Session, TurnID: p.turnID}, nil
}

// saveQueued records which session p's turn belongs to, so QueuedTurn finds it. It
// takes up to the store timeout, and no longer than the request.
func (e *Engine) saveQueued(ctx context.Context, p *spilled) error {
	ttl := time.Duration(0)
	if tn, err := e.deps.Tenants.Get(p.ref.Tenant); err == nil {
		ttl = tn.HistoryTTL
	}
	sctx, cancel := context.WithTimeout(ctx, e.cfg.StoreTimeout)
	defer cancel()
	err := e.deps.Store.SaveQueued(sctx, session.QueuedTurn{Ref: p.ref, TurnID: p.turnID, ClientMsgID: p.cmid}, ttl)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err() // the caller left or its deadline passed
	}
	// Once a second at most, as for the queue: in an outage every spilled turn fails here.
	if now := time.Now().UnixNano(); now-e.recordWarned.Load() > int64(time.Second) {
		e.recordWarned.Store(now)
		e.turnLog(p.turn).Warn("turns not spilled: their queued record could not be stored, answering 503 unavailable",
			zap.String("turn_id", p.turnID), zap.Error(err))
	}
	if !errors.Is(err, session.ErrUnavailable) {
		err = fmt.Errorf("%w: record queued turn: %v", ErrUnavailable, err)
	}
	return err
}

// spillSubmit is Submit for a turn that found the backlog full.
func (e *Engine) spillSubmit(ctx context.Context, t Turn) (Reply, error) {
	p, err := e.publish(ctx, t)
	if err != nil {
		return Reply{}, err
	}
	return e.await(ctx, p)
}

// spillStream is Stream for a turn that found the backlog full.
func (e *Engine) spillStream(ctx context.Context, t Turn) (<-chan Event, error) {
	p, err := e.publish(ctx, t)
	if err != nil {
		return nil, err
	}
	// The stream's events outlive ctx's deadline, as the wait does.
	lctx, stopLeft := untilLeft(ctx)
	j := &job{ctx: lctx, turn: t, ref: p.ref, turnID: p.turnID, accepted: p.accepted, events: make(chan Event, eventBuffer)}
	go func() {
		defer stopLeft()
		defer close(j.events)
		e.emit(j, Event{Kind: EventMeta, SessionID: p.ref.Session, TurnID: p.turnID, Queued: true})
		r, err := e.await(ctx, p)
		switch {
		case err != nil:
			e.fail(j, err)
		case r.Queued:
			e.emit(j, Event{Kind: EventQueued, SessionID: r.SessionID, TurnID: r.TurnID})
		default:
			if !r.Duplicate {
				e.emitPieces(j, r.Answer) // deliver replays a duplicate's answer itself
			}
			e.deliver(j, r)
		}
	}()
	return j.events, nil
}

// ReleaseWaiters makes requests waiting for a queued turn's result stop waiting after
// d: they get the turn id to poll with (Reply.Queued, EventQueued), and the turn stays
// queued. Call it when shutting down, with d short enough that they are answered
// before the HTTP server gives up on them.
func (e *Engine) ReleaseWaiters(d time.Duration) {
	time.AfterFunc(max(d, 0), e.releaseWaiters)
}

// HandleQueued works one queued turn: it answers it within a worker slot shared with
// local turns, stores it, sends the result to the request waiting for it (on any
// process) and returns nil so the message is acknowledged. A turn already stored is
// not answered again. It returns an error, so the message is delivered again later,
// when the turn could not be answered or stored for a passing reason (the store is
// down, the engine is shutting down, ctx ended). Give it to queue.Consume.
func (e *Engine) HandleQueued(ctx context.Context, m queue.Msg) error {
	requestID := m.Header[queue.RequestIDHeader]
	log := e.log.With(zap.String("tenant", m.Tenant.String()), zap.String("request_id", requestID), zap.String("msg_id", m.ID))
	var qt queuedTurn
	if err := json.Unmarshal(m.Data, &qt); err != nil || qt.V != wireVersion {
		// Nothing can ever answer it: acknowledge it rather than have it delivered
		// forever. Without a turn id there is nobody to reply to.
		log.Error("queued turn unreadable, dropped", zap.Int("version", qt.V), zap.Error(err))
		return nil
	}
	t := Turn{Tenant: m.Tenant, User: qt.User, SessionID: qt.Session, Message: qt.Message, ClientMsgID: qt.ClientMsgID, RequestID: requestID}
	if err := validate(t); err != nil || !session.ValidID(qt.TurnID) || qt.Session == "" {
		log.Error("queued turn invalid, dropped", zap.Error(err))
		e.replyQueued(m.Tenant, qt.TurnID, queuedResult{Error: resultInvalid}, log)
		return nil
	}
	if err := e.acquireSlot(ctx, m); err != nil {
		return err
	}
	// The turn's deadline runs from when a worker slot is free.
	jctx, cancel := context.WithTimeout(ctx, e.deps.Spill.TurnTimeout)
	defer cancel()
	j := &job{
		ctx:         jctx,
		turn:        t,
		ref:         session.Ref{Tenant: t.Tenant, Session: qt.Session, User: qt.User},
		isNew:       qt.NewSession && m.Delivered <= 1,
		mayExist:    qt.NewSession && m.Delivered > 1,
		redelivered: m.Delivered > 1,
		turnID:      qt.TurnID,
		accepted:    qt.Accepted,
		result:      make(chan result, 1),
	}
	key := sessionKey{t.Tenant, j.ref.Session}
	e.mu.Lock()
	if e.draining {
		e.mu.Unlock()
		<-e.slots
		return ErrDraining
	}
	if waiting, busy := e.active[key]; busy {
		// A local turn of this session is in progress: answer this one after it, on
		// the same worker, as for a local turn.
		e.active[key] = append(waiting, j)
		e.pending++
		e.mu.Unlock()
		<-e.slots
	} else {
		e.active[key] = nil
		e.mu.Unlock()
		e.runSession(j)
		<-e.slots
	}

	r, err := waitResult(ctx, j, m)
	if err != nil {
		return err // delivered again; the turn is found stored then
	}
	switch {
	case r.err == nil:
		if !r.reply.Duplicate {
			e.deps.Metrics.ObserveQueuedWorked(m.Tenant)
		}
		e.replyQueued(m.Tenant, qt.TurnID, queuedResult{Reply: &r.reply}, log)
		return nil
	case errors.Is(r.err, ErrNotFound):
		e.replyQueued(m.Tenant, qt.TurnID, queuedResult{Error: resultNotFound}, log)
		return nil
	}
	return fmt.Errorf("queued turn %s: %w", qt.TurnID, r.err)
}

// replyQueued sends res to whoever waits for turn turnID. Nobody may: the result is
// stored anyway.
func (e *Engine) replyQueued(t tenant.ID, turnID string, res queuedResult, log *zap.Logger) {
	if !session.ValidID(turnID) {
		return
	}
	data, err := json.Marshal(res)
	if err == nil {
		err = e.deps.Spill.Queue.Reply(t, turnID, data)
	}
	if err != nil {
		log.Warn("queued turn's result not sent; the requester can poll for it", zap.Error(err))
	}
}

// waitResult waits for j's result, keeping m's AckWait from running out meanwhile: a
// turn queued behind a local turn of its session waits for that one too.
func waitResult(ctx context.Context, j *job, m queue.Msg) (result, error) {
	select {
	case r := <-j.result:
		return r, nil
	default:
	}
	tick := time.NewTicker(keepAliveEvery)
	defer tick.Stop()
	for {
		select {
		case r := <-j.result:
			return r, nil
		case <-tick.C:
			_ = m.InProgress()
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
}

// acquireSlot waits for a worker slot, keeping m's AckWait from running out meanwhile.
func (e *Engine) acquireSlot(ctx context.Context, m queue.Msg) error {
	select {
	case e.slots <- struct{}{}:
		return nil
	default:
	}
	tick := time.NewTicker(keepAliveEvery)
	defer tick.Stop()
	for {
		select {
		case e.slots <- struct{}{}:
			return nil
		case <-tick.C:
			_ = m.InProgress()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// QueuedTurn returns the caller's queued turn turnID: its reply once answered, a Reply
// with Queued set while it waits, ErrNotFound when there is no such turn of the caller's
// (another user's or tenant's turn is indistinguishable from a missing one).
func (e *Engine) QueuedTurn(ctx context.Context, t tenant.ID, user, turnID string) (Reply, error) {
	if !session.ValidID(turnID) {
		return Reply{}, ErrNotFound
	}
	qt, err := e.deps.Store.LoadQueued(ctx, t, user, turnID)
	if err != nil {
		return Reply{}, err
	}
	rec, err := e.deps.Store.LoadRecent(ctx, qt.Ref, 0, turnID, qt.ClientMsgID)
	switch {
	case errors.Is(err, ErrNotFound):
		// A new session is created when its first turn is stored.
	case err != nil:
		return Reply{}, err
	case rec.Found != nil:
		t := rec.Found
		return replyOf(qt.Ref.Session, *t, t.AnsweredAt.Sub(t.At), false), nil
	}
	return Reply{Queued: true, SessionID: qt.Ref.Session, TurnID: turnID}, nil
}

// untilLeft returns a context that ends when ctx is cancelled (the caller left), but
// not when ctx's deadline passes, and a function that releases it.
func untilLeft(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.Canceled) {
			cancel()
		}
	})
	return c, func() { stop(); cancel() }
}
