package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/tenant"
)

// Handoff is the human handoff desk as the gateway uses it (*handoff.Desk): the
// customer's side (ask for a person, the session's live events) and the agents'.
type Handoff interface {
	// Request hands the caller's session to a person (the widget's button).
	Request(ctx context.Context, ref handoff.Ref) (handoff.Opened, dialogue.HistoryTurn, error)
	// State returns the caller's session's handoff status.
	State(ctx context.Context, ref handoff.Ref) (handoff.Status, error)
	// SessionEvents streams the caller's session's events after id after.
	SessionEvents(ctx context.Context, ref handoff.Ref, after int64) (<-chan handoff.Event, error)
	// List returns the tenant's conversations of a status, oldest wait first.
	List(ctx context.Context, t tenant.ID, status string) ([]handoff.Conversation, error)
	// Claim gives a waiting conversation to the agent, or returns handoff.ErrConflict.
	Claim(ctx context.Context, agent tenant.Principal, sessionID string) (handoff.Conversation, error)
	// Messages returns a handed-off conversation's whole history.
	Messages(ctx context.Context, t tenant.ID, sessionID string) ([]dialogue.HistoryTurn, error)
	// Post stores the agent's message and delivers it to the customer.
	Post(ctx context.Context, agent tenant.Principal, sessionID, content string) (handoff.Message, error)
	// Close gives the conversation back to the bot.
	Close(ctx context.Context, agent tenant.Principal, sessionID, resolution string) (handoff.Conversation, error)
	// AgentEvents streams the tenant's new conversations and customers' messages.
	AgentEvents(ctx context.Context, agent tenant.Principal) (<-chan handoff.Event, error)
}

// handoffJSON answers POST and GET /v1/sessions/{id}/handoff.
type handoffJSON struct {
	SessionID string          `json:"session_id"`
	TurnID    string          `json:"turn_id,omitempty"`
	Answer    string          `json:"answer,omitempty"`
	Source    string          `json:"source,omitempty"`
	Handoff   *handoff.Status `json:"handoff"`
}

// handleHandoffCreate serves POST /v1/sessions/{id}/handoff: the caller's session goes
// to a person. A session that waits already, or is with an agent, gets its status.
func (s *Server) handleHandoffCreate(w http.ResponseWriter, r *http.Request) {
	ref, err := sessionRef(r)
	if err == nil {
		err = discardEmptyBody(r, s.cfg.MaxBodyBytes)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	o, t, err := s.handoff.Request(ctx, handoff.Ref(ref))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, handoffJSON{SessionID: ref.Session, TurnID: t.ID, Answer: o.Notice,
		Source: handoff.SourceHandoff, Handoff: &o.Status})
}

// discardEmptyBody accepts a bodiless POST, or a JSON object (its fields ignored).
func discardEmptyBody(r *http.Request, limit int64) error {
	raw, err := readBody(r, limit)
	if err != nil {
		return err
	}
	if raw = bytes.TrimSpace(raw); len(raw) == 0 {
		return nil
	}
	var v map[string]json.RawMessage
	if json.Unmarshal(raw, &v) != nil || v == nil {
		return invalid("The body must be empty or a JSON object.")
	}
	return nil
}

// handleHandoffGet serves GET /v1/sessions/{id}/handoff: the session's handoff status.
func (s *Server) handleHandoffGet(w http.ResponseWriter, r *http.Request) {
	ref, err := sessionRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	st, err := s.handoff.State(ctx, handoff.Ref(ref))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, handoffJSON{SessionID: ref.Session, Handoff: &st})
}

// handleSessionEvents serves GET /v1/sessions/{id}/events: an SSE stream of what
// happens to the caller's session outside its own requests (an agent's messages, the
// handoff's status), from the event after Last-Event-ID when the client names one.
func (s *Server) handleSessionEvents(w http.ResponseWriter, r *http.Request) {
	ref, err := sessionRef(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	after, err := lastEventID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.handoff.SessionEvents(r.Context(), handoff.Ref(ref), after)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.streamEvents(w, r, events)
}

// handleAgentEvents serves GET /v1/agent/events: the agent's tenant's new and changed
// conversations and customers' messages, as SSE.
func (s *Server) handleAgentEvents(w http.ResponseWriter, r *http.Request) {
	p, _ := tenant.FromContext(r.Context())
	events, err := s.handoff.AgentEvents(r.Context(), p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.streamEvents(w, r, events)
}

// lastEventID reads the Last-Event-ID header (or the last_event_id query parameter,
// for clients that cannot set headers): the id of the last event the client saw.
func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("last_event_id")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("Last-Event-ID must be the id of an event this stream sent.")
	}
	return n, nil
}

// streamEvents writes events as SSE until the client leaves, the channel closes or
// the server shuts down, with a heartbeat comment while idle.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, events <-chan handoff.Event) {
	sse := s.startSSE(w)
	if sse.comment("open") != nil {
		return
	}
	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if sse.raw(ev.ID, ev.Name, ev.Data) != nil {
				return
			}
		case <-heartbeat.C:
			if sse.comment("ping") != nil {
				return
			}
		case <-s.closing:
			// The listener is closing: the client reconnects, to another replica.
			_ = sse.event("shutdown", shutdownJSON{Status: "shutting_down"})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// handleAgentConversations serves GET /v1/agent/conversations?status=…
func (s *Server) handleAgentConversations(w http.ResponseWriter, r *http.Request) {
	p, _ := tenant.FromContext(r.Context())
	status := r.URL.Query().Get("status")
	if status == "" {
		status = handoff.StatusWaiting
	}
	switch status {
	case handoff.StatusWaiting, handoff.StatusAgent, handoff.StatusClosed:
	default:
		s.writeError(w, r, invalid("status must be waiting, agent or closed."))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	convs, err := s.handoff.List(ctx, p.Tenant, status)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Conversations []handoff.Conversation `json:"conversations"`
	}{convs})
}

// conversationJSON answers claim and close.
type conversationJSON struct {
	Conversation handoff.Conversation `json:"conversation"`
}

// agentConversation returns the route's conversation id and the calling agent.
func agentConversation(r *http.Request) (tenant.Principal, string, error) {
	p, _ := tenant.FromContext(r.Context())
	id := chi.URLParam(r, "id")
	if !dialogue.ValidID(id) {
		return p, "", invalid("The conversation id must be 8 to 64 characters of letters, digits, '_' or '-'.")
	}
	return p, id, nil
}

// handleAgentClaim serves POST /v1/agent/conversations/{id}/claim.
func (s *Server) handleAgentClaim(w http.ResponseWriter, r *http.Request) {
	p, id, err := agentConversation(r)
	if err == nil {
		err = discardEmptyBody(r, s.cfg.MaxBodyBytes)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	c, err := s.handoff.Claim(ctx, p, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conversationJSON{c})
}

// handleAgentMessages serves GET /v1/agent/conversations/{id}/messages: the whole
// history, bot turns included.
func (s *Server) handleAgentMessages(w http.ResponseWriter, r *http.Request) {
	p, id, err := agentConversation(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	turns, err := s.handoff.Messages(ctx, p.Tenant, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toHistoryJSON(id, turns))
}

// handleAgentPost serves POST /v1/agent/conversations/{id}/messages {"content"}.
func (s *Server) handleAgentPost(w http.ResponseWriter, r *http.Request) {
	p, id, err := agentConversation(r)
	var in struct {
		Content *string `json:"content"`
	}
	if err == nil {
		err = s.readObject(r, &in)
	}
	if err == nil && in.Content == nil {
		err = invalid("content is required.")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	m, err := s.handoff.Post(ctx, p, id, *in.Content)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Message handoff.Message `json:"message"`
	}{m})
}

// handleAgentClose serves POST /v1/agent/conversations/{id}/close {"resolution"?}.
func (s *Server) handleAgentClose(w http.ResponseWriter, r *http.Request) {
	p, id, err := agentConversation(r)
	var in struct {
		Resolution string `json:"resolution"`
	}
	if err == nil {
		err = s.readObject(r, &in)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	c, err := s.handoff.Close(ctx, p, id, in.Resolution)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conversationJSON{c})
}

// readObject reads a JSON object body into v; an empty body leaves v as it is.
func (s *Server) readObject(r *http.Request, v any) error {
	raw, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if raw[0] != '{' || json.Unmarshal(raw, v) != nil {
		return invalid("The body must be a JSON object with the documented fields.")
	}
	return nil
}
