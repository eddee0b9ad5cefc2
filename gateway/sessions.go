package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/tenant"
)

// timeLayout is RFC 3339 with milliseconds, always in UTC.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

type messageJSON struct {
	Role    string `json:"role"` // user | assistant | agent
	Content string `json:"content"`
	// Agent names the agent who wrote an agent message.
	Agent  *handoff.Agent `json:"agent,omitempty"`
	TurnID string         `json:"turn_id"`
	At     string         `json:"at"`
	// Incomplete marks an assistant message whose stream was cut.
	Incomplete bool `json:"incomplete,omitempty"`
}

type historyJSON struct {
	SessionID string        `json:"session_id"`
	Messages  []messageJSON `json:"messages"`
}

// toHistoryJSON turns stored turns, oldest first, into messages: each turn is the user's
// message at At and the assistant's answer at AnsweredAt. A handoff adds turns with one
// side only: a customer's message while a person answers (no answer), the notice of the
// "talk to a person" button (no message) and an agent's message (role agent).
func toHistoryJSON(id string, turns []dialogue.HistoryTurn) historyJSON {
	msgs := make([]messageJSON, 0, 2*len(turns))
	for _, t := range turns {
		answered := t.AnsweredAt
		if answered.IsZero() {
			answered = t.At
		}
		if t.Source == handoff.SourceAgent {
			msgs = append(msgs, messageJSON{Role: handoff.RoleAgent, Content: t.Answer,
				Agent: &handoff.Agent{Name: t.AgentName}, TurnID: t.ID, At: formatTime(answered)})
			continue
		}
		oneSided := t.Source == handoff.SourceHandoff
		if !oneSided || t.User != "" {
			msgs = append(msgs, messageJSON{Role: "user", Content: t.User, TurnID: t.ID, At: formatTime(t.At)})
		}
		if !oneSided || t.Answer != "" {
			msgs = append(msgs, messageJSON{Role: "assistant", Content: t.Answer, TurnID: t.ID, At: formatTime(answered), Incomplete: t.Incomplete})
		}
	}
	return historyJSON{SessionID: id, Messages: msgs}
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// sessionRef names the session of the route's {id} as the caller's own: the engine
// answers not found for any session that is not.
func sessionRef(r *http.Request) (dialogue.Ref, error) {
	id := chi.URLParam(r, "id")
	if !dialogue.ValidID(id) {
		return dialogue.Ref{}, invalid("The session id must be 8 to 64 characters of letters, digits, '_' or '-'.")
	}
	p, _ := tenant.FromContext(r.Context())
	return dialogue.Ref{Tenant: p.Tenant, Session: id, User: p.User}, nil
}

// handleSessionMessages serves GET /v1/sessions/{id}/messages: the history of one of the
// caller's sessions, oldest first. Another user's session is 404, never 403.
func (s *Server) handleSessionMessages(w http.ResponseWriter, r *http.Request) {
	ref, err := sessionRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	turns, err := s.dialogue.History(ctx, ref)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toHistoryJSON(ref.Session, turns))
}

// handleSessionDelete serves DELETE /v1/sessions/{id}: erases one of the caller's
// sessions; 204, or 404 when there is no such session of theirs.
func (s *Server) handleSessionDelete(w http.ResponseWriter, r *http.Request) {
	ref, err := sessionRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.dialogue.DeleteSession(ctx, ref); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
