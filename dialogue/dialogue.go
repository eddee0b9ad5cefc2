// Package dialogue owns the conversation engine: a bounded job channel feeding a worker
// pool, per-session ordering, load history → answer → append, idempotency by client
// message id, and the decision to refuse when full.
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
)

// Turn is one user message to answer.
type Turn struct {
	Tenant      tenant.ID
	User        string
	SessionID   string // empty: start a new session
	Message     string
	ClientMsgID string // optional idempotency key, scoped to the session
}

// Citation names a knowledge-base entry.
type Citation = session.Citation

// Reply is the answer to one turn.
type Reply struct {
	SessionID   string
	TurnID      string
	Answer      string
	Source      string // faq|llm|clarify|fallback
	Confidence  float64
	Citations   []Citation
	Suggestions []Citation
	// Incomplete: the answer's stream was cut; Answer holds the part that was sent.
	Incomplete bool
	Latency    time.Duration
	// Duplicate is true when the reply was stored earlier under the same ClientMsgID.
	Duplicate bool
}

// EventKind says what an Event carries.
type EventKind int

// The kinds of Event, in the order a stream sends them: one Meta, Deltas, then Done or Error.
const (
	EventMeta  EventKind = iota + 1 // SessionID and TurnID are known
	EventDelta                      // Delta holds the next piece of the answer
	EventDone                       // Reply holds the whole stored reply
	EventError                      // Err says why the turn failed
)

// Event is one step of a streamed turn.
type Event struct {
	Kind      EventKind
	SessionID string
	TurnID    string
	Delta     string
	Reply     Reply
	Err       error
}
