package session

import (
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/tenant"
)

// Handoff statuses. A session with no handoff record, or a closed one, is answered by
// the bot; while it is waiting or with an agent, the bot is silent.
const (
	HandoffWaiting = "waiting" // in the tenant's queue, no agent yet
	HandoffAgent   = "agent"   // claimed: one agent answers
	HandoffClosed  = "closed"  // the agent closed it: the bot answers again
)

// Handoff causes: why a session was handed to a person.
const (
	CauseAsked      = "asked"      // the customer's message asked for a person
	CauseButton     = "button"     // the widget's "talk to a person" button
	CauseUnresolved = "unresolved" // clarify/fallback answers in a row
)

// Turn sources of the turns a handoff adds to a session's history, besides the answer
// engine's (faq|llm|clarify|fallback).
const (
	// SourceHandoff marks a turn answered by the handoff itself: the notice that a
	// person is coming (User and Answer set), or a customer's message while the
	// session waits for or talks with an agent (User set, Answer empty).
	SourceHandoff = "handoff"
	// SourceAgent marks an agent's message: User empty, Answer the agent's text,
	// AgentID and AgentName set.
	SourceAgent = "agent"
)

// ErrConflict is returned by ClaimHandoff and CloseHandoff when the handoff is not in a
// state that allows it: claimed by another agent, already closed, not waiting.
var ErrConflict = errors.New("handoff conflict")

// Handoff is a session's conversation with a person. Its record lives beside the
// session's turns (same Redis hash tag, same TTL, erased with it) and is indexed per
// tenant by status for the agents' queue.
type Handoff struct {
	Session string // the session's id
	User    string // the session's owner
	Status  string // HandoffWaiting, HandoffAgent or HandoffClosed
	Cause   string // CauseAsked, CauseButton or CauseUnresolved
	// WaitingSince is when the current handoff was opened (Open), kept through claim
	// and close: the queue is ordered by it, oldest first.
	WaitingSince time.Time
	AgentID      string // the claiming agent (token sub); empty while waiting
	AgentName    string // the claiming agent's display name
	ClaimedAt    time.Time
	ClosedAt     time.Time
	Resolution   string // the agent's note on closing, may be empty
	// LastMessage is the customer's latest message in the session, at most
	// MaxLastMessage bytes cut at a rune boundary, and LastAt when it came.
	LastMessage string
	LastAt      time.Time
	// Position is the 1-based place of a waiting session in its tenant's queue (oldest
	// wait first), set by OpenHandoff, GetHandoff and ListHandoffs; 0 when not
	// waiting, and 0 in Recent.Handoff (LoadRecent does not compute it).
	Position int
}

// Active reports whether the bot must stay silent: the session waits for, or talks
// with, an agent.
func (h Handoff) Active() bool { return h.Status == HandoffWaiting || h.Status == HandoffAgent }

// MaxLastMessage bounds Handoff.LastMessage, in bytes.
const MaxLastMessage = 512

// MaxEvents is how many live events a session keeps for a reconnecting stream; older
// ones are dropped first.
const MaxEvents = 200

// MaxClosedHandoffs is how many closed handoffs a tenant's index keeps (the newest);
// a closed record itself lives as long as its session.
const MaxClosedHandoffs = 1000

// Event is one live event of a session (an agent's message, a status change), as its
// events stream sends it: Seq orders a session's events from 1 and is the SSE id a
// reconnect names in Last-Event-ID; Data is the caller's JSON, stored as given.
type Event struct {
	Seq  int64
	Data []byte
}

// handoffStatuses are the statuses a handoff index exists for, in the order the
// stores keep their indexes.
var handoffStatuses = [...]string{HandoffWaiting, HandoffAgent, HandoffClosed}

// statusIndex returns the place of status in handoffStatuses, or -1.
func statusIndex(status string) int {
	for i, s := range handoffStatuses {
		if s == status {
			return i
		}
	}
	return -1
}

// defaultListLimit is how many records ListHandoffs returns when asked for limit <= 0.
const defaultListLimit = 100

// cutLastMessage returns s cut to at most MaxLastMessage bytes at a rune boundary, in
// memory of its own when cut, so a long message is not kept alive by its head.
func cutLastMessage(s string) string {
	if len(s) <= MaxLastMessage {
		return s
	}
	i := MaxLastMessage
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return strings.Clone(s[:i])
}

// checkSession refuses a lookup no session can answer: a malformed tenant or session
// ID. Like checkRef, it answers ErrNotFound.
func checkSession(t tenant.ID, sessionID string) error {
	if !ValidID(sessionID) {
		return ErrNotFound
	}
	return checkTenant(t)
}

// checkTenant refuses a malformed tenant ID with ErrNotFound.
func checkTenant(t tenant.ID) error {
	if _, err := tenant.ParseID(string(t)); err != nil {
		return ErrNotFound
	}
	return nil
}
