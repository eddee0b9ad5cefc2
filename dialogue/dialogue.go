// Package dialogue owns the conversation engine: a bounded job channel feeding a worker
// pool, per-session ordering, load history → answer → append, idempotency by client
// message id, and the decision to refuse when full.
//
// With spillover on, a turn that finds the backlog full is published to the queue
// instead; every process consumes the queue with HandleQueued, and the result travels
// back to the request that waits for it.
//
// It must not know about HTTP.
package dialogue

import (
	"errors"
	"time"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Errors returned by Engine.Submit and Engine.Stream, besides context errors.
var (
	// ErrOverloaded: every worker is busy and the backlog is full; retry later.
	ErrOverloaded = errors.New("dialogue engine overloaded")
	// ErrNotFound: the session does not exist or is not the caller's.
	ErrNotFound = session.ErrNotFound
	// ErrUnavailable: the session store cannot be reached.
	ErrUnavailable = session.ErrUnavailable
	// ErrInvalid: the turn is malformed (a bad session id, an empty message).
	ErrInvalid = errors.New("invalid turn")
	// ErrDraining: the engine is shutting down and takes no new turns.
	ErrDraining = errors.New("dialogue engine draining")
	// ErrIncomplete ends a stream whose answer was cut after some of it was sent: the
	// part sent is stored, marked incomplete.
	ErrIncomplete = errors.New("answer cut short")
	// ErrQueueFull: the backlog is full and the spillover queue refused the turn too
	// (it, or the tenant's share of it, is at its cap); retry later. Nothing was queued.
	ErrQueueFull = errors.New("spillover queue full")
)

// errSpill tells Submit and Stream that accept found the backlog full and the turn
// should go to the spillover queue.
var errSpill = errors.New("backlog full, spill")

// Turn is one user message to answer.
type Turn struct {
	Tenant      tenant.ID
	User        string
	SessionID   string // empty: start a new session
	Message     string
	ClientMsgID string // optional idempotency key, scoped to the session
	// RequestID is the id of the request that asked for the turn, for logs: every
	// line logged about the turn carries it with the tenant, on whichever process
	// answers it. Empty when unknown.
	RequestID string
}

// Citation names a knowledge-base entry.
type Citation = session.Citation

// Ref names one session of one user of one tenant.
type Ref struct {
	Tenant  tenant.ID
	Session string // session ID, see ValidID
	User    string // the verified user (JWT sub); the session's owner
}

// HistoryTurn is one turn of a session's history, as the store keeps it.
type HistoryTurn = session.Turn

// ValidID reports whether s can name a session or a turn: 8 to 64 characters of A–Z,
// a–z, 0–9, '_' or '-'.
func ValidID(s string) bool { return session.ValidID(s) }

// Reply is the answer to one turn.
type Reply struct {
	SessionID   string
	TurnID      string
	Answer      string
	Source      string // faq|llm|clarify|fallback|handoff
	Confidence  float64
	Citations   []Citation
	Suggestions []Citation
	// Incomplete: the answer's stream was cut; Answer holds the part that was sent.
	Incomplete bool
	Latency    time.Duration
	// Duplicate is true when the reply was stored earlier under the same ClientMsgID.
	Duplicate bool
	// Handoff is set when Source is "handoff": the session waits for, or talks with,
	// a person.
	Handoff *HandoffStatus
	// Queued: the turn is in the spillover queue and not answered yet. Only SessionID
	// and TurnID are set; the answer is fetched later by TurnID (Engine.QueuedTurn).
	Queued bool
}

// EventKind says what an Event carries.
type EventKind int

// The kinds of Event, in the order a stream sends them: one Meta, Deltas, then Done or Error.
const (
	EventMeta  EventKind = iota + 1 // SessionID and TurnID are known
	EventDelta                      // Delta holds the next piece of the answer
	EventDone                       // Reply points to the whole stored reply
	EventError                      // Err says why the turn failed
	// EventQueued ends the stream of a queued turn whose wait ran out: it is still in
	// the queue, to be fetched later by TurnID.
	EventQueued
)

// Event is one step of a streamed turn.
type Event struct {
	Kind      EventKind
	SessionID string
	TurnID    string
	// Queued is set on the EventMeta of a turn handed to the spillover queue: its
	// result may take up to Spill.Wait rather than the usual turn deadline.
	Queued bool
	Delta  string
	// Reply is set on EventDone only. A pointer keeps an Event small: a stream's
	// channel holds eventBuffer of them for as long as the stream is open.
	Reply *Reply
	Err   error
}
