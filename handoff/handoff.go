// Package handoff owns human handoff (转人工): when a session goes to a person, the
// tenant's queue of waiting conversations, the claim that gives one to exactly one
// agent, the agent's messages and the close that gives the session back to the bot;
// the live events that reach the customer's and the agents' streams on any replica,
// and the webhook that tells a tenant's own helpdesk.
//
// The state lives in the session store (Store: the memory store by default, Redis with
// replicas), so every replica sees one queue and a claim is atomic there. Live events
// travel on a Bus: NATS core subjects derived from the verified tenant, or, with the
// queue off, this process only. The dialogue engine asks the Desk whether a message
// asks for a person and hands a session over; the gateway only adds routes.
//
// It must not know about HTTP.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Errors of the Desk's methods, besides the store's session.ErrNotFound and
// session.ErrUnavailable.
var (
	// ErrNotFound: no such conversation in the caller's tenant (or not the caller's
	// session).
	ErrNotFound = session.ErrNotFound
	// ErrConflict: the conversation is not in a state that allows the call: claimed by
	// another agent, already closed, or not held by the calling agent.
	ErrConflict = session.ErrConflict
	// ErrDisabled: the tenant has turned handoff off.
	ErrDisabled = errors.New("handoff is off for this tenant")
	// ErrInvalid: a message that is empty, too long or not text.
	ErrInvalid = errors.New("invalid message")
)

// Store is the session store as the desk uses it (*session.MemoryStore,
// *session.RedisStore).
type Store interface {
	LoadRecent(ctx context.Context, ref session.Ref, n int, turnID, clientMsgID string) (session.Recent, error)
	Load(ctx context.Context, ref session.Ref) ([]session.Turn, error)
	Append(ctx context.Context, ref session.Ref, t session.Turn, ttl time.Duration) (session.Turn, error)
	OpenHandoff(ctx context.Context, ref session.Ref, cause, lastMessage string, now time.Time) (session.Handoff, bool, error)
	GetHandoff(ctx context.Context, t tenant.ID, sessionID string) (session.Handoff, error)
	ClaimHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, agentName string, now time.Time) (session.Handoff, error)
	CloseHandoff(ctx context.Context, t tenant.ID, sessionID, agentID, resolution string, now time.Time) (session.Handoff, error)
	NoteHandoffMessage(ctx context.Context, t tenant.ID, sessionID, message string, at time.Time) error
	ListHandoffs(ctx context.Context, t tenant.ID, status string, limit int) ([]session.Handoff, error)
	CountWaiting(ctx context.Context, t tenant.ID) (int, error)
	AppendEvent(ctx context.Context, t tenant.ID, sessionID string, data []byte) (int64, error)
	EventsAfter(ctx context.Context, t tenant.ID, sessionID string, after int64) ([]session.Event, error)
	SeeAgent(ctx context.Context, t tenant.ID, agentID string, until time.Time) error
	AgentsOnline(ctx context.Context, t tenant.ID, now time.Time) (int, error)
}

// Tenants looks up a tenant's settings (*tenant.Registry).
type Tenants interface {
	Get(id tenant.ID) (*tenant.Tenant, error)
}

// Observer receives the desk's metrics (*metrics.Metrics).
type Observer interface {
	// ObserveHandoff counts a session handed to a person, by cause.
	ObserveHandoff(t tenant.ID, cause string)
	// ObserveClaimWait records how long a conversation waited until an agent claimed it.
	ObserveClaimWait(t tenant.ID, d time.Duration)
}

type noMetrics struct{}

func (noMetrics) ObserveHandoff(tenant.ID, string)          {}
func (noMetrics) ObserveClaimWait(tenant.ID, time.Duration) {}

// Deps are the parts a Desk works with.
type Deps struct {
	Store   Store
	Tenants Tenants
	// Bus carries live events between replicas; nil: NewLocalBus, this process only.
	Bus Bus
	// Metrics, if set, counts handoffs and claim waits.
	Metrics Observer
	// Turns, if set, is told of the notice stored when the widget's button hands a
	// session over (a turn's own handoff is told by the dialogue engine).
	Turns TurnObserver
	// Client posts webhooks; nil: a client with a 10 s timeout.
	Client *http.Client
	Log    *zap.Logger
	// Now is the clock, for tests (default time.Now).
	Now func() time.Time
}

// TurnObserver records a stored turn of a session, with the handoff's cause
// (*insights.Recorder). TurnAnswered must not block.
type TurnObserver interface {
	TurnAnswered(ref session.Ref, t session.Turn, cause string)
}

type noTurns struct{}

func (noTurns) TurnAnswered(session.Ref, session.Turn, string) {}

// Desk is the handoff service of every tenant. It is safe for concurrent use.
type Desk struct {
	store    Store
	tenants  Tenants
	bus      Bus
	metrics  Observer
	turns    TurnObserver
	log      *zap.Logger
	now      func() time.Time
	phrases  map[tenant.ID]*matcher
	webhooks *webhooks
}

// New returns a desk for the tenants. Call Run to deliver webhooks; Close stops it.
func New(deps Deps, all []*tenant.Tenant) (*Desk, error) {
	if deps.Store == nil || deps.Tenants == nil {
		return nil, errors.New("handoff: store and tenants are required")
	}
	if deps.Bus == nil {
		deps.Bus = NewLocalBus()
	}
	if deps.Metrics == nil {
		deps.Metrics = noMetrics{}
	}
	if deps.Turns == nil {
		deps.Turns = noTurns{}
	}
	if deps.Log == nil {
		deps.Log = zap.NewNop()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Client == nil {
		deps.Client = &http.Client{Timeout: 10 * time.Second}
	}
	d := &Desk{
		store:   deps.Store,
		tenants: deps.Tenants,
		bus:     deps.Bus,
		metrics: deps.Metrics,
		turns:   deps.Turns,
		log:     deps.Log.Named("handoff"),
		now:     deps.Now,
		phrases: make(map[tenant.ID]*matcher, len(all)),
	}
	for _, t := range all {
		d.phrases[t.ID] = newMatcher(t.Handoff.Phrases)
	}
	d.webhooks = newWebhooks(deps.Client, d.log)
	return d, nil
}

// Run delivers webhooks until ctx ends, then gives the ones still being retried
// a last try within a few seconds.
func (d *Desk) Run(ctx context.Context) error {
	d.webhooks.run(ctx)
	return nil
}

// Asks reports whether message asks tenant tn's desk for a person.
func (d *Desk) Asks(tn *tenant.Tenant, message string) bool {
	if tn.Handoff.Disabled {
		return false
	}
	m := d.phrases[tn.ID]
	return m != nil && m.match(message)
}

// AfterUnresolved is how many clarify or fallback answers in a row hand a session of
// tn to a person; 0 means never.
func (d *Desk) AfterUnresolved(tn *tenant.Tenant) int {
	if tn.Handoff.Disabled || tn.Handoff.AfterUnresolved < 0 {
		return 0
	}
	return tn.Handoff.AfterUnresolved
}

// Status is a session's handoff as its customer sees it, in replies and events.
type Status struct {
	// Status is "bot" (no handoff, or closed: the bot answers), "waiting", "agent", or
	// in an event, "closed".
	Status   string `json:"status"`
	Position int    `json:"position,omitzero"` // in the tenant's queue, while waiting
	Agent    *Agent `json:"agent,omitempty"`   // while with an agent
}

// Agent is an agent as a customer sees it.
type Agent struct {
	Name string `json:"name"`
}

// StatusBot is Status.Status of a session the bot answers.
const StatusBot = "bot"

// statusOf is the customer's view of record h.
func statusOf(h session.Handoff) Status {
	switch h.Status {
	case session.HandoffWaiting:
		return Status{Status: h.Status, Position: h.Position}
	case session.HandoffAgent:
		return Status{Status: h.Status, Agent: &Agent{Name: h.AgentName}}
	}
	return Status{Status: StatusBot}
}

// Opened is what Open did: the session's status, and the notice to give the customer.
type Opened struct {
	Status Status
	Notice string
	// New is false when the session was already waiting or with an agent.
	New bool
}

// Open hands ref's session to a person for cause (session.CauseAsked, …): it joins
// its tenant's queue, the agents and the tenant's webhook are told, and the notice
// says a person is coming, or when the desk opens. The session must exist and be
// ref.User's (ErrNotFound). lastMessage is the customer's message that asked, if any.
func (d *Desk) Open(ctx context.Context, tn *tenant.Tenant, ref session.Ref, cause, lastMessage string) (Opened, error) {
	if tn.Handoff.Disabled {
		return Opened{}, ErrDisabled
	}
	now := d.now()
	h, opened, err := d.store.OpenHandoff(ctx, ref, cause, lastMessage, now)
	if err != nil {
		return Opened{}, err
	}
	st := statusOf(h)
	out := Opened{Status: st, New: opened}
	out.Notice = d.Notice(ctx, tn)
	if !opened {
		return out, nil
	}
	d.metrics.ObserveHandoff(tn.ID, cause)
	d.log.Info("session handed to a person", zap.String("tenant", tn.ID.String()),
		zap.String("session", ref.Session), zap.String("cause", cause), zap.Int("position", h.Position))
	d.sessionEvent(ctx, tn.ID, ref.Session, eventHandoff, st)
	conv := conversationOf(h)
	d.agentEvent(tn.ID, eventConversation, conv)
	d.webhooks.send(tn, webhookHandoff, h, nil, now)
	return out, nil
}

// Notice is the text that tells a customer of tn a person is coming, or when the
// desk opens, or that no agent is online now. Their place in the queue is in the
// reply's status, not in the text, which is stored before the session joins the queue.
func (d *Desk) Notice(ctx context.Context, tn *tenant.Tenant) string {
	now := d.now()
	if open, opens := tn.Handoff.Staffed(now); !open {
		return noticeClosed(tn, opens)
	}
	n, err := d.store.AgentsOnline(ctx, tn.ID, now)
	if err == nil && n == 0 {
		return noticeOffline(tn)
	}
	return noticeWaiting(tn)
}

// Held records a customer's message stored while the session waits for or talks with
// an agent: the conversation's last message, the agents' streams and the webhook.
func (d *Desk) Held(ctx context.Context, tn *tenant.Tenant, ref session.Ref, t session.Turn) {
	if err := d.store.NoteHandoffMessage(ctx, tn.ID, ref.Session, t.User, t.At); err != nil {
		d.log.Warn("handoff: last message not recorded", zap.String("tenant", tn.ID.String()), zap.Error(err))
	}
	msg := Message{SessionID: ref.Session, Role: RoleUser, Content: t.User, TurnID: t.ID, At: t.At}
	d.agentEvent(tn.ID, eventMessage, msg)
	h := session.Handoff{Session: ref.Session, User: ref.User}
	d.webhooks.send(tn, webhookMessage, h, &msg, d.now())
}

// Opening passes on the customer's message that handed ref's session to a person,
// stored as turn t, to the tenant's webhook as a message event, so that a helpdesk
// that keeps the transcript from the webhook has it. The agents' console shows it as
// the conversation's last message, and in its history.
func (d *Desk) Opening(tn *tenant.Tenant, ref session.Ref, t session.Turn) {
	if t.User == "" {
		return
	}
	msg := Message{SessionID: ref.Session, Role: RoleUser, Content: t.User, TurnID: t.ID, At: t.At}
	d.webhooks.send(tn, webhookMessage, session.Handoff{Session: ref.Session, User: ref.User}, &msg, d.now())
}

// State returns the handoff status of ref's session, for its owner.
func (d *Desk) State(ctx context.Context, ref session.Ref) (Status, error) {
	if _, err := d.store.LoadRecent(ctx, ref, 0, "", ""); err != nil {
		return Status{}, err
	}
	return d.status(ctx, ref.Tenant, ref.Session)
}

// status returns a session's status with its queue position.
func (d *Desk) status(ctx context.Context, t tenant.ID, sessionID string) (Status, error) {
	h, err := d.store.GetHandoff(ctx, t, sessionID)
	if errors.Is(err, session.ErrNotFound) {
		return Status{Status: StatusBot}, nil
	}
	if err != nil {
		return Status{}, err
	}
	return statusOf(h), nil
}

// Status returns the status of a session the caller has checked is the customer's.
func (d *Desk) Status(ctx context.Context, t tenant.ID, sessionID string) (Status, error) {
	return d.status(ctx, t, sessionID)
}

// Request is the widget's "talk to a person" button: ref's session is handed to a
// person, and the notice is stored as a turn of its own (once: a session already
// waiting or with an agent gets its status and the notice, and nothing is stored).
// A session that does not exist yet is created; another user's is ErrNotFound.
func (d *Desk) Request(ctx context.Context, ref session.Ref) (Opened, session.Turn, error) {
	tn, err := d.tenants.Get(ref.Tenant)
	if err != nil {
		return Opened{}, session.Turn{}, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	o, err := d.Open(ctx, tn, ref, session.CauseButton, "")
	if err != nil || !o.New {
		return o, session.Turn{}, err
	}
	now := d.now().UTC()
	t := session.Turn{ID: session.NewTurnID(), Answer: o.Notice, Source: session.SourceHandoff, At: now, AnsweredAt: now}
	stored, err := d.store.Append(ctx, ref, t, tn.HistoryTTL)
	if err != nil {
		return o, session.Turn{}, err
	}
	d.turns.TurnAnswered(ref, stored, session.CauseButton)
	return o, stored, nil
}

// Ref names a customer's session (session.Ref), for callers that do not know the store.
type Ref = session.Ref

// The session store's names, for callers that do not know the store.
const (
	StatusWaiting = session.HandoffWaiting
	StatusAgent   = session.HandoffAgent
	StatusClosed  = session.HandoffClosed
	// SourceHandoff is the source of a turn the handoff answered: its notice, or a
	// customer's message while a person answers.
	SourceHandoff = session.SourceHandoff
	// SourceAgent is the source of an agent's message.
	SourceAgent = session.SourceAgent
)
