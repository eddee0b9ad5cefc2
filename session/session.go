// Package session owns conversation memory: the Turn record, the MemoryStore (the
// embedded default) and the RedisStore, both honouring the same contract.
//
// It must not know about the answer engine or HTTP.
package session

import (
	"errors"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// ErrNotFound is returned for a session that does not exist, has expired, or belongs to
// another user or tenant (the caller cannot tell which, by design).
var ErrNotFound = errors.New("session not found")

// ErrUnavailable is returned when the backing store cannot be reached in time.
var ErrUnavailable = errors.New("session store unavailable")

// Ref names one session of one user of one tenant. Every key a store derives from it
// starts with the tenant, so no two tenants can share a key.
type Ref struct {
	Tenant  tenant.ID
	Session string // session ID, see ValidID
	User    string // the verified user (JWT sub); the session's owner
}

// Citation names a knowledge-base entry an answer cited.
type Citation struct {
	ID       string `json:"id"`
	Question string `json:"question"`
}

// Turn is one user message and the assistant's reply to it, stored as one record so a
// turn is never half-written.
type Turn struct {
	ID          string     `json:"id"`                      // server-assigned turn id
	ClientMsgID string     `json:"client_msg_id,omitempty"` // the client's idempotency key
	User        string     `json:"user"`                    // the user's message
	Answer      string     `json:"answer"`                  // the assistant's reply
	Source      string     `json:"source"`                  // faq|llm|clarify|fallback
	Confidence  float64    `json:"confidence"`
	Citations   []Citation `json:"citations,omitempty"`
	Suggestions []Citation `json:"suggestions,omitempty"`
	// Incomplete marks an answer whose stream was cut: Answer holds what reached the user.
	Incomplete bool      `json:"incomplete,omitzero"`
	At         time.Time `json:"at"`                   // when the user's message arrived
	AnsweredAt time.Time `json:"answered_at"`          // when the answer was made
	AgentID    string    `json:"agent_id,omitempty"`   // an agent's message: who wrote it
	AgentName  string    `json:"agent_name,omitempty"` // and the name the customer sees
}

// Recent is what answering a turn needs from its session, as LoadRecent returns it.
type Recent struct {
	Turns []Turn // the session's newest turns, oldest first: at most the n asked for
	// Found is the newest retained turn whose ID is the turn ID asked for or, when the
	// client message id asked for is not empty, whose ClientMsgID is that id; nil if
	// none. It points into Turns when the turn is among them.
	Found *Turn
	// Handoff is the session's handoff record, the zero Handoff when it has none.
	// Its Position is 0: LoadRecent does not look at the tenant's queue.
	Handoff Handoff
}

// QueuedTurn records a turn handed to the spillover queue whose requester was told to
// poll for it: which session (and owner) the turn id belongs to.
type QueuedTurn struct {
	Ref         Ref    // tenant, session, owning user
	TurnID      string // the turn's id (ValidID)
	ClientMsgID string // the client's idempotency key, may be empty
}
