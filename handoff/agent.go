package handoff

import (
	"context"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Roles of a Message.
const (
	RoleUser  = "user"
	RoleAgent = "agent"
)

// Conversation is a handed-off session as agents see it, in lists and events.
type Conversation struct {
	SessionID    string     `json:"session_id"`
	UserID       string     `json:"user_id"`
	Status       string     `json:"status"` // waiting | agent | closed
	Cause        string     `json:"cause"`
	WaitingSince time.Time  `json:"waiting_since"`
	Position     int        `json:"position,omitempty"`
	AgentID      string     `json:"agent_id,omitempty"`
	AgentName    string     `json:"agent_name,omitempty"`
	ClaimedAt    *time.Time `json:"claimed_at,omitempty"`
	ClosedAt     *time.Time `json:"closed_at,omitempty"`
	Resolution   string     `json:"resolution,omitempty"`
	LastMessage  string     `json:"last_message"`
	LastAt       *time.Time `json:"last_at,omitempty"`
}

func conversationOf(h session.Handoff) Conversation {
	c := Conversation{
		SessionID:    h.Session,
		UserID:       h.User,
		Status:       h.Status,
		Cause:        h.Cause,
		WaitingSince: h.WaitingSince.UTC(),
		Position:     h.Position,
		AgentID:      h.AgentID,
		AgentName:    h.AgentName,
		ClaimedAt:    timePtr(h.ClaimedAt),
		ClosedAt:     timePtr(h.ClosedAt),
		Resolution:   h.Resolution,
		LastMessage:  h.LastMessage,
		LastAt:       timePtr(h.LastAt),
	}
	if h.Status != session.HandoffWaiting {
		c.Position = 0
	}
	return c
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Message is a message of a handed-off conversation, as events carry it.
type Message struct {
	SessionID string    `json:"session_id,omitempty"` // agents' events only
	Role      string    `json:"role"`                 // user | agent
	Content   string    `json:"content"`
	Agent     *Agent    `json:"agent,omitempty"`
	TurnID    string    `json:"turn_id"`
	At        time.Time `json:"at"`
}

// MaxListed bounds a list of conversations.
const MaxListed = 200

// List returns tenant t's conversations with status (waiting, agent or closed),
// oldest wait first; for closed, the most recently closed ones, in that order.
func (d *Desk) List(ctx context.Context, t tenant.ID, status string) ([]Conversation, error) {
	hs, err := d.store.ListHandoffs(ctx, t, status, MaxListed)
	if err != nil {
		return nil, err
	}
	out := make([]Conversation, 0, len(hs))
	for _, h := range hs {
		out = append(out, conversationOf(h))
	}
	return out, nil
}

// Claim gives a waiting conversation to agent: exactly one of concurrent claims wins,
// on every replica; the others get ErrConflict.
func (d *Desk) Claim(ctx context.Context, agent tenant.Principal, sessionID string) (Conversation, error) {
	tn, err := d.tenant(agent.Tenant)
	if err != nil {
		return Conversation{}, err
	}
	now := d.now()
	h, err := d.store.ClaimHandoff(ctx, tn.ID, sessionID, agent.User, agentName(agent), now)
	if err != nil {
		return Conversation{}, err
	}
	d.metrics.ObserveClaimWait(tn.ID, now.Sub(h.WaitingSince))
	d.log.Info("conversation claimed", zap.String("tenant", tn.ID.String()), zap.String("session", sessionID),
		zap.String("agent", agent.User), zap.Duration("waited", now.Sub(h.WaitingSince)))
	d.sessionEvent(ctx, tn.ID, sessionID, eventHandoff, statusOf(h))
	conv := conversationOf(h)
	d.agentEvent(tn.ID, eventConversation, conv)
	d.webhooks.send(tn, webhookHandoff, h, nil, now)
	d.moveUp(ctx, tn.ID, h.WaitingSince)
	return conv, nil
}

// MaxPositionUpdates bounds how many waiting customers are told their new place when
// one ahead of them is claimed; those further back learn it from the next status read
// (a reload or a reconnect).
const MaxPositionUpdates = 50

// moveUp tells the waiting customers of tenant t who waited since after a claimed
// conversation's start their new place in the queue, on their event streams.
func (d *Desk) moveUp(ctx context.Context, t tenant.ID, since time.Time) {
	hs, err := d.store.ListHandoffs(ctx, t, session.HandoffWaiting, MaxPositionUpdates)
	if err != nil {
		d.log.Warn("handoff: queue positions not updated", zap.String("tenant", t.String()), zap.Error(err))
		return
	}
	for _, h := range hs {
		if !h.WaitingSince.Before(since) {
			d.sessionEvent(ctx, t, h.Session, eventHandoff, statusOf(h))
		}
	}
}

// Messages returns a handed-off conversation's whole history, bot turns included.
func (d *Desk) Messages(ctx context.Context, t tenant.ID, sessionID string) ([]session.Turn, error) {
	h, err := d.store.GetHandoff(ctx, t, sessionID)
	if err != nil {
		return nil, err
	}
	return d.store.Load(ctx, session.Ref{Tenant: t, Session: sessionID, User: h.User})
}

// MaxContentChars bounds an agent's message, in characters.
const MaxContentChars = 4000

// ErrTooLong: an agent's message above MaxContentChars.
var ErrTooLong = errors.New("message too long")

// Post stores agent's message in the conversation it holds and delivers it to the
// customer's stream: ErrConflict when the agent does not hold it.
func (d *Desk) Post(ctx context.Context, agent tenant.Principal, sessionID, content string) (Message, error) {
	tn, err := d.tenant(agent.Tenant)
	if err != nil {
		return Message{}, err
	}
	if err := checkContent(content); err != nil {
		return Message{}, err
	}
	h, err := d.store.GetHandoff(ctx, tn.ID, sessionID)
	if err != nil {
		return Message{}, err
	}
	if h.Status != session.HandoffAgent || h.AgentID != agent.User {
		return Message{}, ErrConflict
	}
	now := d.now().UTC()
	name := agentName(agent)
	t := session.Turn{
		ID:         session.NewTurnID(),
		Answer:     content,
		Source:     session.SourceAgent,
		At:         now,
		AnsweredAt: now,
		AgentID:    agent.User,
		AgentName:  name,
	}
	ref := session.Ref{Tenant: tn.ID, Session: sessionID, User: h.User}
	if _, err := d.store.Append(ctx, ref, t, tn.HistoryTTL); err != nil {
		return Message{}, err
	}
	msg := Message{Role: RoleAgent, Content: content, Agent: &Agent{Name: name}, TurnID: t.ID, At: now}
	d.sessionEvent(ctx, tn.ID, sessionID, eventMessage, msg)
	msg.SessionID = sessionID
	d.agentEvent(tn.ID, eventMessage, msg)
	d.webhooks.send(tn, webhookMessage, h, &msg, now)
	return msg, nil
}

// Close gives the conversation back to the bot, by the agent holding it: ErrConflict
// when it waits, another agent holds it or it is closed.
func (d *Desk) Close(ctx context.Context, agent tenant.Principal, sessionID, resolution string) (Conversation, error) {
	tn, err := d.tenant(agent.Tenant)
	if err != nil {
		return Conversation{}, err
	}
	if utf8.RuneCountInString(resolution) > MaxResolutionChars || !text(resolution) {
		return Conversation{}, ErrInvalid
	}
	now := d.now()
	h, err := d.store.CloseHandoff(ctx, tn.ID, sessionID, agent.User, resolution, now)
	if err != nil {
		return Conversation{}, err
	}
	d.log.Info("conversation closed", zap.String("tenant", tn.ID.String()), zap.String("session", sessionID),
		zap.String("agent", agent.User))
	d.sessionEvent(ctx, tn.ID, sessionID, eventHandoff, Status{Status: session.HandoffClosed})
	conv := conversationOf(h)
	d.agentEvent(tn.ID, eventConversation, conv)
	d.webhooks.send(tn, webhookHandoff, h, nil, now)
	return conv, nil
}

// MaxResolutionChars bounds a close's resolution note.
const MaxResolutionChars = 500

func (d *Desk) tenant(id tenant.ID) (*tenant.Tenant, error) {
	tn, err := d.tenants.Get(id)
	if err != nil {
		return nil, ErrNotFound
	}
	return tn, nil
}

// agentName is the name an agent shows customers: the token's name, else its id.
func agentName(p tenant.Principal) string {
	if n := strings.TrimSpace(p.Name); n != "" {
		return n
	}
	return p.User
}

func checkContent(s string) error {
	switch {
	case strings.TrimSpace(s) == "" || !text(s):
		return ErrInvalid
	case utf8.RuneCountInString(s) > MaxContentChars:
		return ErrTooLong
	}
	return nil
}

// text reports whether s is valid UTF-8 without NUL or control characters other than
// newlines and tabs.
func text(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}
