package dialogue

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Handoff is the human handoff desk as the engine uses it (*handoff.Desk). The engine
// decides when a turn goes to a person; the desk keeps the queue and tells the agents.
type Handoff interface {
	// Asks reports whether message asks tn's desk for a person.
	Asks(tn *tenant.Tenant, message string) bool
	// AfterUnresolved is how many clarify or fallback answers in a row hand a session
	// to a person; 0 means never.
	AfterUnresolved(tn *tenant.Tenant) int
	// Open hands ref's session to a person for cause, with the customer's message.
	Open(ctx context.Context, tn *tenant.Tenant, ref session.Ref, cause, lastMessage string) (handoff.Opened, error)
	// Held passes on a customer's message stored while the bot is silent.
	Held(ctx context.Context, tn *tenant.Tenant, ref session.Ref, t session.Turn)
	// Opening passes on the customer's message that handed the session over, stored
	// as turn t.
	Opening(tn *tenant.Tenant, ref session.Ref, t session.Turn)
	// Status returns the handoff status of a session.
	Status(ctx context.Context, t tenant.ID, sessionID string) (handoff.Status, error)
}

// HandoffStatus is a session's handoff as a reply carries it.
type HandoffStatus = handoff.Status

// unresolved reports whether an answer of source src leaves the customer without one.
func unresolved(src string) bool {
	return src == string(nlpclient.SourceClarify) || src == string(nlpclient.SourceFallback)
}

// unresolvedStreak counts the turns at the end of history the bot could not answer.
func unresolvedStreak(history []session.Turn) int {
	n := 0
	for i := len(history) - 1; i >= 0 && unresolved(history[i].Source); i-- {
		n++
	}
	return n
}

// botHistory returns the last n turns of history answered by the bot: the handoff's
// notices, the customer's messages to an agent and the agent's own are not the
// answer engine's to read. It copies only when it must drop a turn.
func botHistory(history []session.Turn, n int) []session.Turn {
	keep := func(t *session.Turn) bool {
		return t.Source != session.SourceHandoff && t.Source != session.SourceAgent
	}
	clean := true
	for i := range history {
		if !keep(&history[i]) {
			clean = false
			break
		}
	}
	if !clean {
		out := make([]session.Turn, 0, len(history))
		for i := range history {
			if keep(&history[i]) {
				out = append(out, history[i])
			}
		}
		history = out
	}
	if len(history) > n {
		history = history[len(history)-n:]
	}
	return history
}

// hold stores a customer's message to a session the bot stays silent in (it waits
// for, or talks with, an agent), and replies with the handoff's status.
func (e *Engine) hold(j *job, tn *tenant.Tenant) {
	now := time.Now()
	st := session.Turn{
		ID:          j.turnID,
		ClientMsgID: j.turn.ClientMsgID,
		User:        j.turn.Message,
		Source:      session.SourceHandoff,
		At:          j.accepted.UTC(),
		AnsweredAt:  now.UTC(),
	}
	stored, dup, ok := e.store(j, tn, st)
	if !ok {
		return
	}
	if !dup {
		e.deps.Handoff.Held(j.ctx, tn, j.ref, stored)
	}
	e.finish(j, stored, dup)
}

// handOver answers a turn whose session goes to a person now: the session joins the
// tenant's queue and the reply, stored as the turn's answer, says a person is coming.
func (e *Engine) handOver(j *job, tn *tenant.Tenant, cause string) {
	o, err := e.deps.Handoff.Open(j.ctx, tn, j.ref, cause, j.turn.Message)
	if err != nil {
		e.fail(j, err)
		return
	}
	e.turnLog(j.turn).Info("turn handed to a person", zap.String("session", j.ref.Session), zap.String("cause", cause))
	e.emitPieces(j, o.Notice)
	now := time.Now()
	st := session.Turn{
		ID:          j.turnID,
		ClientMsgID: j.turn.ClientMsgID,
		User:        j.turn.Message,
		Answer:      o.Notice,
		Source:      session.SourceHandoff,
		At:          j.accepted.UTC(),
		AnsweredAt:  now.UTC(),
	}
	stored, dup, ok := e.store(j, tn, st)
	if !ok {
		return
	}
	if !dup {
		e.deps.Insights.TurnAnswered(j.ref, stored, cause)
	}
	if o.New && !dup {
		e.deps.Handoff.Opening(tn, j.ref, stored)
	}
	status := o.Status
	r := replyOf(j.ref.Session, stored, time.Since(j.accepted), dup)
	r.Handoff = &status
	e.deliver(j, r)
}

// store appends an answered turn even if the caller has just left; ok is false when
// it failed (the caller was told). dup reports a turn stored earlier under the same
// client message id.
func (e *Engine) store(j *job, tn *tenant.Tenant, st session.Turn) (stored session.Turn, dup, ok bool) {
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), e.cfg.StoreTimeout)
	stored, err := e.deps.Store.Append(sctx, j.ref, st, tn.HistoryTTL)
	cancel()
	e.deps.Metrics.ObserveStage(tn.ID, StageHistorySave, time.Since(start))
	if err != nil {
		e.fail(j, fmt.Errorf("store turn: %w", err))
		return session.Turn{}, false, false
	}
	return stored, stored.ID != st.ID || !stored.AnsweredAt.Equal(st.AnsweredAt), true
}
