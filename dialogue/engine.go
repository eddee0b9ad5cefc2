package dialogue

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Store is the conversation memory the engine reads and writes. Both session.MemoryStore
// and session.RedisStore implement it. It has seven methods rather than three because the
// HTTP API needs history, erasure and queued turns as well as the turn itself; splitting
// it would only make callers pass the same value several times.
type Store interface {
	// Load returns the session's turns, oldest first, or session.ErrNotFound,
	// or an error wrapping session.ErrUnavailable.
	Load(ctx context.Context, ref session.Ref) ([]session.Turn, error)
	// LoadRecent returns the session's newest n turns and the retained turn with id
	// turnID (when not empty) or client message id clientMsgID (when not empty), with
	// Load's errors.
	LoadRecent(ctx context.Context, ref session.Ref, n int, turnID, clientMsgID string) (session.Recent, error)
	// Append stores t atomically, or returns the turn stored earlier with the same
	// ClientMsgID; session.ErrNotFound when the session is another user's.
	Append(ctx context.Context, ref session.Ref, t session.Turn, ttl time.Duration) (session.Turn, error)
	// Delete erases the session, or returns session.ErrNotFound.
	Delete(ctx context.Context, ref session.Ref) error
	// Ping returns an error wrapping session.ErrUnavailable when the store is unreachable.
	Ping(ctx context.Context) error
	// SaveQueued records which session a queued turn belongs to, for GET /v1/turns.
	SaveQueued(ctx context.Context, q session.QueuedTurn, ttl time.Duration) error
	// LoadQueued returns the caller's record of a queued turn, or session.ErrNotFound.
	LoadQueued(ctx context.Context, t tenant.ID, user, turnID string) (session.QueuedTurn, error)
}

// Observer receives the engine's metrics (*metrics.Metrics).
type Observer interface {
	// ObserveStage records how long one stage of a turn took (StageHistoryLoad, …).
	ObserveStage(t tenant.ID, stage string, d time.Duration)
	// ObserveSpill counts a turn handed to the spillover queue, by outcome
	// (SpillAnswered, …), on the process that published it.
	ObserveSpill(t tenant.ID, outcome string)
	// ObserveQueuedWorked counts a queued turn this process answered (not one it found
	// answered already).
	ObserveQueuedWorked(t tenant.ID)
}

type noMetrics struct{}

func (noMetrics) ObserveStage(tenant.ID, string, time.Duration) {}
func (noMetrics) ObserveSpill(tenant.ID, string)                {}
func (noMetrics) ObserveQueuedWorked(tenant.ID)                 {}

// Answerer answers one message of one tenant. It returns nlpclient.ErrUnavailable (or
// any error) when it cannot; the engine then answers with the tenant's fallback text.
type Answerer interface {
	Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error)
}

// Tenants looks up a tenant's settings (fallback answer, history TTL).
type Tenants interface {
	Get(id tenant.ID) (*tenant.Tenant, error)
}

// Stages the engine times, values of the stage label of fengda_stage_duration_seconds
// (the gateway's are gateway.StageAuth and gateway.StageRateLimit).
const (
	StageHistoryLoad = "history_load"
	StageAnswer      = "answer"
	StageHistorySave = "history_save"
)

// Config sizes the engine.
type Config struct {
	// Workers is the number of turns answered at once. Default 64: a turn mostly waits
	// on the session store or the model, so workers are cheap goroutines.
	Workers int `yaml:"workers"`
	// Backlog is how many accepted turns may wait for a worker. When it is full the
	// engine refuses with ErrOverloaded instead of queueing without bound. Default 1024.
	Backlog int `yaml:"backlog"`
	// ContextTurns is how many earlier turns are passed to the answer engine. Default 6.
	ContextTurns int `yaml:"context_turns"`
	// StoreTimeout bounds the write of an answered turn, which is not cut short when
	// the caller leaves: once answered, a turn is stored. Default 2s.
	StoreTimeout time.Duration `yaml:"store_timeout"`
}

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 64
	}
	if c.Backlog == 0 {
		c.Backlog = 1024
	}
	if c.ContextTurns == 0 {
		c.ContextTurns = 6
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = 2 * time.Second
	}
}

// Validate reports the first bad value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Workers < 0 || c.Workers > 100000:
		return fmt.Errorf("dialogue.workers: %d out of range 1..100000", c.Workers)
	case c.Backlog < 0 || c.Backlog > 10000000:
		return fmt.Errorf("dialogue.backlog: %d out of range 1..10000000", c.Backlog)
	case c.ContextTurns < 0 || c.ContextTurns > 100:
		return fmt.Errorf("dialogue.context_turns: %d out of range 1..100", c.ContextTurns)
	case c.StoreTimeout < 0:
		return fmt.Errorf("dialogue.store_timeout: negative duration %s", c.StoreTimeout)
	}
	return nil
}

// Deps are the parts the engine works with.
type Deps struct {
	Store     Store
	Answerers map[tenant.ID]Answerer
	Tenants   Tenants
	// Metrics, if set, receives the duration of each stage of a turn and the spilled
	// and queued turns.
	Metrics Observer
	// Spill, when its Queue is set, hands turns that find the backlog full to the
	// spillover queue instead of refusing them.
	Spill Spill
	// Handoff, if set, hands sessions to a person: on a message that asks for one,
	// after unresolved answers in a row, and keeps the bot silent while a person
	// answers.
	Handoff Handoff
	// Insights, if set, is told of every turn answered and stored (not of a retry's
	// stored answer), off the turn's path.
	Insights Insights
	Log      *zap.Logger
}

// Insights records answered turns (*insights.Recorder). TurnAnswered must not block.
type Insights interface {
	// TurnAnswered records stored turn t of ref's session; cause is the handoff's cause
	// on a turn that handed the session to a person, else empty.
	TurnAnswered(ref session.Ref, t session.Turn, cause string)
}

// Engine answers turns with a bounded pool of workers. Turns of one session are answered
// one at a time, in the order they were accepted.
type Engine struct {
	cfg  Config
	deps Deps
	log  *zap.Logger

	// jobs feeds the workers. Its capacity is cfg.Backlog; Submit never blocks on it:
	// when pending reaches the backlog the turn is refused with ErrOverloaded.
	jobs chan *job

	// slots holds a token per turn being answered, local or queued: at most
	// cfg.Workers turns are answered at once on this process.
	slots chan struct{}
	// releaseCtx ends when requests waiting for a queued turn should stop waiting
	// (shutdown); see ReleaseWaiters.
	releaseCtx     context.Context
	releaseWaiters context.CancelFunc
	// spillWarned is when the last "queue unavailable" warning was logged (UnixNano).
	spillWarned atomic.Int64
	// recordWarned is when the last "queued record not stored" warning was logged.
	recordWarned atomic.Int64

	mu       sync.Mutex
	pending  int                   // accepted turns not yet taken by a worker
	active   map[sessionKey][]*job // sessions with a turn in progress → turns waiting behind it
	draining bool
}

type noInsights struct{}

func (noInsights) TurnAnswered(session.Ref, session.Turn, string) {}

type sessionKey struct {
	tenant  tenant.ID
	session string
}

// job is one accepted turn. Exactly one of result and events is set.
type job struct {
	ctx      context.Context
	turn     Turn
	ref      session.Ref
	isNew    bool
	turnID   string
	accepted time.Time
	// mayExist: a queued turn delivered again whose new session the first delivery
	// may have created; a missing session then means an empty history.
	mayExist bool
	// redelivered: a queued turn delivered again, which an earlier delivery may have
	// stored under its turn id.
	redelivered bool

	// result has buffer 1 so a worker never blocks on a caller who left.
	result chan result
	// events has buffer eventBuffer; every send also selects on ctx.Done().
	events chan Event
	gone   bool // the streaming caller left; only the worker reads or writes it
}

type result struct {
	reply Reply
	err   error
}

// sessionOverflow is how many turns of a session in progress may wait behind it beyond
// the backlog: a user's quick follow-ups stay in order on this process instead of being
// refused or spilled. It bounds the backlog's overflow to sessionOverflow per worker.
const sessionOverflow = 4

// eventBuffer lets a worker run ahead of a slow SSE client by this many events; past it
// the worker waits, bounded by the turn's deadline. The channel lives as long as the
// stream: 8 rather than 32 events is about 3 KiB less per open conversation (bench
// connections scenario), and a model's tokens come slower than the gateway writes them.
const eventBuffer = 8

// New validates cfg and deps and returns an engine. Call Run to start its workers.
func New(cfg Config, deps Deps) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Tenants == nil {
		return nil, errors.New("dialogue: store and tenants are required")
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	if deps.Metrics == nil {
		deps.Metrics = noMetrics{}
	}
	if deps.Insights == nil {
		deps.Insights = noInsights{}
	}
	if err := deps.Spill.setDefaults(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:    cfg,
		deps:   deps,
		log:    deps.Log.Named("dialogue"),
		jobs:   make(chan *job, cfg.Backlog),
		slots:  make(chan struct{}, cfg.Workers),
		active: make(map[sessionKey][]*job),
	}
	e.releaseCtx, e.releaseWaiters = context.WithCancel(context.Background())
	return e, nil
}

// Run starts the workers and blocks until ctx ends. Then it refuses new turns with
// ErrDraining, lets the workers finish every accepted turn, and returns.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(e.work)
	}
	e.log.Info("dialogue engine started", zap.Int("workers", e.cfg.Workers), zap.Int("backlog", e.cfg.Backlog))
	<-ctx.Done()

	e.mu.Lock()
	e.draining = true
	close(e.jobs) // safe: every send happens under mu after checking draining
	left := e.pending
	e.mu.Unlock()
	e.log.Info("dialogue engine draining", zap.Int("pending", left))
	wg.Wait()
	e.log.Info("dialogue engine stopped")
	return nil
}

// Submit answers t and returns the stored reply. It returns ErrOverloaded at once when the
// backlog is full, ErrInvalid for a malformed turn, ErrNotFound for a foreign or unknown
// session, ErrUnavailable when the store is down, and ctx.Err() when ctx ends first.
//
// With spillover on, a turn that finds the backlog full is queued instead: Submit then
// waits for its result from whichever process answers it, up to Spill.Wait regardless
// of ctx's deadline, and returns a Reply with Queued set if the wait runs out (or the
// queue refuses it with ErrQueueFull).
func (e *Engine) Submit(ctx context.Context, t Turn) (Reply, error) {
	j, err := e.accept(ctx, t, false)
	if errors.Is(err, errSpill) {
		return e.spillSubmit(ctx, t)
	}
	if err != nil {
		return Reply{}, err
	}
	select {
	case r := <-j.result:
		return r.reply, r.err
	case <-ctx.Done():
		return Reply{}, ctx.Err()
	}
}

// Stream answers t as a stream of events: one EventMeta, EventDelta pieces, then EventDone
// or EventError; the channel is closed after the last. An error returned directly (the
// turn was not accepted: ErrOverloaded, ErrInvalid, ErrDraining) means no channel.
// A session that is not found arrives as an EventError before any EventMeta.
//
// A queued turn (see Submit) sends an EventMeta with Queued set, then either its
// pieces and EventDone or, when the wait runs out, EventQueued.
func (e *Engine) Stream(ctx context.Context, t Turn) (<-chan Event, error) {
	j, err := e.accept(ctx, t, true)
	if errors.Is(err, errSpill) {
		return e.spillStream(ctx, t)
	}
	if err != nil {
		return nil, err
	}
	return j.events, nil
}

// History returns the caller's session, oldest turn first, or ErrNotFound.
func (e *Engine) History(ctx context.Context, ref Ref) ([]HistoryTurn, error) {
	if !session.ValidID(ref.Session) {
		return nil, ErrNotFound
	}
	return e.deps.Store.Load(ctx, session.Ref(ref))
}

// DeleteSession erases the caller's session, or returns ErrNotFound.
func (e *Engine) DeleteSession(ctx context.Context, ref Ref) error {
	if !session.ValidID(ref.Session) {
		return ErrNotFound
	}
	return e.deps.Store.Delete(ctx, session.Ref(ref))
}

// Ready reports whether the engine can take turns: the store answers and it is not draining.
func (e *Engine) Ready(ctx context.Context) error {
	e.mu.Lock()
	draining := e.draining
	e.mu.Unlock()
	if draining {
		return ErrDraining
	}
	return e.deps.Store.Ping(ctx)
}

// accept validates t and queues it, or refuses it at once.
func (e *Engine) accept(ctx context.Context, t Turn, stream bool) (*job, error) {
	if err := validate(t); err != nil {
		return nil, err
	}
	j := &job{
		ctx:      ctx,
		turn:     t,
		ref:      session.Ref{Tenant: t.Tenant, Session: t.SessionID, User: t.User},
		accepted: time.Now(),
	}
	if j.ref.Session == "" {
		j.ref.Session = session.NewID()
		j.isNew = true
	}
	j.turnID = newTurnID(t.Tenant, j.ref.Session, t.ClientMsgID)
	if stream {
		j.events = make(chan Event, eventBuffer)
	} else {
		j.result = make(chan result, 1)
	}

	key := sessionKey{t.Tenant, j.ref.Session}
	e.mu.Lock()
	defer e.mu.Unlock()
	waiting, busy := e.active[key]
	full := e.pending >= e.cfg.Backlog
	if full && busy && len(waiting) < sessionOverflow {
		// A turn of this session is in progress here: wait behind it even though the
		// backlog is full, rather than spill it to where it could overtake it.
		full = false
	}
	switch {
	case e.draining:
		return nil, ErrDraining
	case full && e.deps.Spill.Queue != nil:
		return nil, errSpill
	case full:
		return nil, ErrOverloaded
	}
	if busy {
		// A turn of this session is in progress: this one runs after it, on the same
		// worker, so two quick messages are answered in order and see each other.
		e.active[key] = append(waiting, j)
		e.pending++
		return j, nil
	}
	select {
	case e.jobs <- j:
		e.active[key] = nil
		e.pending++
		return j, nil
	default: // cannot happen while pending < Backlog; refuse rather than block
		return nil, ErrOverloaded
	}
}

func validate(t Turn) error {
	switch {
	case t.Tenant == "" || t.User == "":
		return fmt.Errorf("%w: no tenant or user", ErrInvalid)
	case t.SessionID != "" && !session.ValidID(t.SessionID):
		return fmt.Errorf("%w: bad session id", ErrInvalid)
	case t.Message == "" || !utf8.ValidString(t.Message):
		return fmt.Errorf("%w: empty or invalid message", ErrInvalid)
	}
	return nil
}

// work answers jobs until the job channel is closed, then the turns queued behind them.
func (e *Engine) work() {
	for j := range e.jobs {
		e.mu.Lock()
		e.pending--
		e.mu.Unlock()
		e.slots <- struct{}{}
		e.runSession(j)
		<-e.slots
	}
}

// runSession answers j, then the turns of its session that queued up behind it.
func (e *Engine) runSession(j *job) {
	for j != nil {
		e.process(j)
		j = e.next(sessionKey{j.turn.Tenant, j.ref.Session})
	}
}

// next pops the turn waiting behind the one just finished in the same session, or marks
// the session idle.
func (e *Engine) next(key sessionKey) *job {
	e.mu.Lock()
	defer e.mu.Unlock()
	waiting := e.active[key]
	if len(waiting) == 0 {
		delete(e.active, key)
		return nil
	}
	e.active[key] = waiting[1:]
	e.pending--
	return waiting[0]
}

// process answers one turn: load history → answer → append → reply. A streaming
// caller's channel is closed when it returns.
func (e *Engine) process(j *job) {
	if j.events != nil {
		defer close(j.events)
	}
	if err := j.ctx.Err(); err != nil {
		e.fail(j, err) // the caller left while the turn waited: no work, nothing stored
		return
	}
	tn, err := e.deps.Tenants.Get(j.turn.Tenant)
	if err != nil {
		e.fail(j, fmt.Errorf("%w: %v", ErrNotFound, err))
		return
	}

	// Only the turns the answer engine reads are loaded, with, in the same round trip,
	// the turn itself if it was answered already: a retry (by client message id) or a
	// queued turn delivered again after it was stored (by turn id).
	var rec session.Recent
	if !j.isNew {
		start := time.Now()
		turnID := ""
		if j.redelivered {
			turnID = j.turnID
		}
		rec, err = e.deps.Store.LoadRecent(j.ctx, j.ref, e.loadTurns(tn), turnID, j.turn.ClientMsgID)
		e.deps.Metrics.ObserveStage(tn.ID, StageHistoryLoad, time.Since(start))
		if j.mayExist && errors.Is(err, session.ErrNotFound) {
			err = nil
		}
		if err != nil {
			e.fail(j, fmt.Errorf("load session: %w", err))
			return
		}
	}
	e.emit(j, Event{Kind: EventMeta, SessionID: j.ref.Session, TurnID: j.turnID})
	if rec.Found != nil {
		e.finish(j, *rec.Found, true)
		return
	}
	desk := e.deps.Handoff
	switch {
	case desk == nil:
	case rec.Handoff.Active():
		e.hold(j, tn) // a person answers: the bot is silent
		return
	case desk.Asks(tn, j.turn.Message):
		e.handOver(j, tn, session.CauseAsked)
		return
	}
	history := rec.Turns

	start := time.Now()
	ans, streamed, err := e.answer(j, tn, botHistory(history, e.historyTurns(tn.ID)))
	e.deps.Metrics.ObserveStage(tn.ID, StageAnswer, time.Since(start))
	cut := errors.Is(err, nlpclient.ErrStreamCut)
	if err != nil && !cut {
		e.fail(j, err) // the caller left before an answer: nothing to store
		return
	}
	if desk != nil && !streamed && unresolved(string(ans.Source)) {
		if after := desk.AfterUnresolved(tn); after > 0 && unresolvedStreak(history)+1 >= after {
			e.handOver(j, tn, session.CauseUnresolved)
			return
		}
	}
	if !streamed {
		e.emitPieces(j, ans.Text)
	}

	now := time.Now()
	st := session.Turn{
		ID:          j.turnID,
		ClientMsgID: j.turn.ClientMsgID,
		User:        j.turn.Message,
		Answer:      ans.Text,
		Source:      string(ans.Source),
		Confidence:  ans.Confidence,
		Citations:   citations(ans.Citations),
		Suggestions: citations(ans.Suggestions),
		Incomplete:  ans.Incomplete,
		At:          j.accepted.UTC(),
		AnsweredAt:  now.UTC(),
	}
	// Once answered, the turn is stored even if the caller has just left.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), e.cfg.StoreTimeout)
	stored, err := e.deps.Store.Append(sctx, j.ref, st, tn.HistoryTTL)
	cancel()
	e.deps.Metrics.ObserveStage(tn.ID, StageHistorySave, time.Since(now))
	if err != nil {
		e.fail(j, fmt.Errorf("store turn: %w", err))
		return
	}
	// The store returns another turn, or the same turn id answered elsewhere (a replica
	// that took the same client message id at once), when it holds one already.
	dup := stored.ID != j.turnID || !stored.AnsweredAt.Equal(st.AnsweredAt)
	if !dup {
		e.deps.Insights.TurnAnswered(j.ref, stored, "")
	}
	if cut && !dup {
		e.fail(j, ErrIncomplete) // the part sent is stored; the stream ends with an error
		return
	}
	e.finish(j, stored, dup)
}

// answer asks the tenant's engine; a streaming turn is streamed when the engine can,
// and streamed reports that its pieces were sent. It falls back to the tenant's fallback
// text when the engine has none or fails. The errors it returns are the caller's
// context ending (nothing to store) and nlpclient.ErrStreamCut with the partial answer.
func (e *Engine) answer(j *job, tn *tenant.Tenant, history []session.Turn) (ans nlpclient.Answer, streamed bool, err error) {
	a, ok := e.deps.Answerers[tn.ID]
	if !ok {
		e.turnLog(j.turn).Warn("tenant has no answer engine")
		return fallback(tn), false, nil
	}
	ctx := j.ctx
	req := nlpclient.Request{Message: j.turn.Message, RequestID: j.turn.RequestID}
	if n := len(history); n > 0 {
		from := max(0, n-e.cfg.ContextTurns)
		req.History = make([]nlpclient.Exchange, 0, n-from)
		for _, h := range history[from:] {
			ex := nlpclient.Exchange{User: h.User, Assistant: h.Answer}
			for _, c := range h.Citations {
				ex.Citations = append(ex.Citations, nlpclient.Citation{ID: c.ID, Question: c.Question})
			}
			req.History = append(req.History, ex)
		}
	}
	if s, ok := a.(nlpclient.Streamer); ok && j.events != nil {
		streamed = true
		ans, err = s.Stream(ctx, req, func(delta string) error {
			e.emit(j, Event{Kind: EventDelta, Delta: delta})
			if j.gone {
				return context.Canceled
			}
			return nil
		})
	} else {
		ans, err = a.Answer(ctx, req)
	}
	switch {
	case err == nil:
		return ans, streamed, nil
	case errors.Is(err, nlpclient.ErrStreamCut):
		e.turnLog(j.turn).Warn("answer stream cut, storing the part sent",
			zap.String("session", j.ref.Session), zap.Int("chars", len(ans.Text)))
		ans.Incomplete = true
		return ans, true, err
	case j.ctx.Err() != nil:
		return ans, streamed, j.ctx.Err()
	}
	e.turnLog(j.turn).Warn("answer engine failed, using fallback",
		zap.String("session", j.ref.Session), zap.Error(err))
	return fallback(tn), false, nil
}

// turnLog returns the logger for lines about turn t: they carry its tenant and the id
// of the request that asked for it. It is made only when a line is logged, so that a
// turn that logs nothing costs nothing.
func (e *Engine) turnLog(t Turn) *zap.Logger {
	return e.log.With(zap.String("tenant", t.Tenant.String()), zap.String("request_id", t.RequestID))
}

func fallback(tn *tenant.Tenant) nlpclient.Answer {
	return nlpclient.Answer{Text: tn.FallbackAnswer, Source: nlpclient.SourceFallback}
}

func citations(cs []nlpclient.Citation) []session.Citation {
	if len(cs) == 0 {
		return nil
	}
	out := make([]session.Citation, len(cs))
	for i, c := range cs {
		out[i] = session.Citation{ID: c.ID, Question: c.Question}
	}
	return out
}

// newTurnID returns a turn's id. With a client message id it is derived from it, so
// a retried request gets the same turn id whether it is answered here or queued, and a
// queued retry waits for the same result; otherwise it is random.
func newTurnID(t tenant.ID, sessionID, clientMsgID string) string {
	if clientMsgID == "" {
		return session.NewTurnID()
	}
	sum := sha256.Sum256([]byte(messageID(t, sessionID, clientMsgID)))
	return turnIDEncoding.EncodeToString(sum[:16])
}

// turnIDEncoding writes a derived turn id like session.NewTurnID: 26 characters of base32.
var turnIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// historyTurns is how many earlier turns a turn of tenant t needs: the configured
// context, or fewer when the tenant's engine reads fewer (the FAQ engine reads one).
func (e *Engine) historyTurns(t tenant.ID) int {
	n := e.cfg.ContextTurns
	if w, ok := e.deps.Answerers[t].(nlpclient.HistoryWindow); ok {
		if k := w.HistoryTurns(); k > 0 {
			n = min(n, k)
		}
	}
	return n
}

// finish delivers the stored turn as the reply; a turn the handoff answered carries
// the session's handoff status as it is now.
func (e *Engine) finish(j *job, t session.Turn, duplicate bool) {
	r := replyOf(j.ref.Session, t, time.Since(j.accepted), duplicate)
	if t.Source == session.SourceHandoff && e.deps.Handoff != nil {
		if st, err := e.deps.Handoff.Status(j.ctx, j.ref.Tenant, j.ref.Session); err == nil {
			r.Handoff = &st
		}
	}
	e.deliver(j, r)
}

// loadTurns is how many earlier turns a turn of tn loads: what its answer engine
// reads, and enough to count the unresolved answers before a handoff.
func (e *Engine) loadTurns(tn *tenant.Tenant) int {
	n := e.historyTurns(tn.ID)
	if e.deps.Handoff != nil {
		n = max(n, e.deps.Handoff.AfterUnresolved(tn)-1)
	}
	return n
}

// replyOf is the reply made of stored turn t of session sessionID.
func replyOf(sessionID string, t session.Turn, latency time.Duration, duplicate bool) Reply {
	return Reply{
		SessionID:   sessionID,
		TurnID:      t.ID,
		Answer:      t.Answer,
		Source:      t.Source,
		Confidence:  t.Confidence,
		Citations:   t.Citations,
		Suggestions: t.Suggestions,
		Incomplete:  t.Incomplete,
		Latency:     latency,
		Duplicate:   duplicate,
	}
}

// deliver sends r to the caller: as the result, or as the stream's last events.
func (e *Engine) deliver(j *job, r Reply) {
	duplicate := r.Duplicate
	if j.events == nil {
		j.result <- result{reply: r}
		return
	}
	if duplicate {
		e.emitPieces(j, r.Answer) // the stream of a retried turn replays the stored answer
	}
	e.emit(j, Event{Kind: EventDone, Reply: &r})
}

// fail delivers err as the turn's outcome.
func (e *Engine) fail(j *job, err error) {
	if j.events == nil {
		j.result <- result{err: err}
		return
	}
	e.emit(j, Event{Kind: EventError, Err: err})
}

// emit sends ev to a streaming caller, unless the caller has gone: then nothing more is
// sent, but the turn is still answered and stored.
func (e *Engine) emit(j *job, ev Event) {
	if j.events == nil || j.gone {
		return
	}
	select {
	case j.events <- ev:
	case <-j.ctx.Done():
		j.gone = true
	}
}

// emitPieces streams text as deltas.
func (e *Engine) emitPieces(j *job, text string) {
	if j.events == nil {
		return
	}
	for _, p := range pieces(text) {
		e.emit(j, Event{Kind: EventDelta, Delta: p})
	}
}

// pieceRunes is the size of the pieces a non-streaming answer is cut into for SSE.
const pieceRunes = 16

// pieces cuts an answer into short pieces for streaming, at rune boundaries.
func pieces(s string) []string {
	var out []string
	for len(s) > 0 {
		n, i := 0, 0
		for i < len(s) && n < pieceRunes {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			n++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}
