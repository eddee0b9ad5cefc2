package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/tenant"
)

// chatRequest is the body of POST /v1/chat. Pointers tell an absent field from an
// empty one: an empty session_id is refused, an absent one starts a new session.
type chatRequest struct {
	Message     *string `json:"message"`
	SessionID   *string `json:"session_id"`
	ClientMsgID *string `json:"client_msg_id"`
}

// chatInput is a decoded and validated chat request.
type chatInput struct {
	Message     string
	SessionID   string
	ClientMsgID string
}

// chatFields is a decoded chat request: each field, and whether the body has it.
type chatFields struct {
	message, sessionID, clientMsgID          string
	hasMessage, hasSessionID, hasClientMsgID bool
}

// parseChatBody decodes and validates the body of POST /v1/chat.
func parseChatBody(raw []byte, maxMessageChars int) (chatInput, error) {
	f, ok := scanChatBody(raw)
	if !ok {
		var err error
		if f, err = decodeChatBody(raw); err != nil {
			return chatInput{}, err
		}
	}
	return f.input(maxMessageChars)
}

// input validates a decoded chat request.
func (f chatFields) input(maxMessageChars int) (chatInput, error) {
	if !f.hasMessage {
		return chatInput{}, invalid("Field \"message\" is required.")
	}
	if err := checkText("message", f.message, maxMessageChars, true); err != nil {
		return chatInput{}, err
	}
	in := chatInput{Message: f.message}
	if f.hasSessionID {
		if !dialogue.ValidID(f.sessionID) {
			return chatInput{}, invalid("Field \"session_id\" must be 8 to 64 characters of letters, digits, '_' or '-'.")
		}
		in.SessionID = f.sessionID
	}
	if f.hasClientMsgID {
		if !validClientMsgID(f.clientMsgID) {
			return chatInput{}, invalid("Field \"client_msg_id\" must be 1 to 64 printable ASCII characters.")
		}
		in.ClientMsgID = f.clientMsgID
	}
	return in, nil
}

// decodeChatBody decodes a chat request with encoding/json (unmarshalBody), which
// gives every malformed body its message.
func decodeChatBody(raw []byte) (chatFields, error) {
	var req chatRequest
	if err := unmarshalBody(raw, &req); err != nil {
		return chatFields{}, err
	}
	var f chatFields
	if req.Message != nil {
		f.message, f.hasMessage = *req.Message, true
	}
	if req.SessionID != nil {
		f.sessionID, f.hasSessionID = *req.SessionID, true
	}
	if req.ClientMsgID != nil {
		f.clientMsgID, f.hasClientMsgID = *req.ClientMsgID, true
	}
	return f, nil
}

// citationJSON is one knowledge-base entry in a reply.
type citationJSON struct {
	ID       string `json:"id"`
	Question string `json:"question"`
}

// replyJSON is the reply to one turn: the body of POST /v1/chat and the data of the
// SSE done event.
type replyJSON struct {
	SessionID   string         `json:"session_id"`
	TurnID      string         `json:"turn_id"`
	Answer      string         `json:"answer"`
	Source      string         `json:"source"`
	Confidence  float64        `json:"confidence"`
	Citations   []citationJSON `json:"citations"`
	Suggestions []citationJSON `json:"suggestions"`
	// Incomplete: the answer's stream was cut; answer holds the part that was sent.
	Incomplete bool    `json:"incomplete,omitzero"`
	LatencyMS  float64 `json:"latency_ms"`
	// Handoff: the session waits for, or talks with, a person (source "handoff").
	Handoff *handoff.Status `json:"handoff,omitempty"`
}

func toCitationsJSON(cs []dialogue.Citation) []citationJSON {
	out := make([]citationJSON, len(cs)) // never nil: clients get [] rather than null
	for i, c := range cs {
		out[i] = citationJSON{ID: c.ID, Question: c.Question}
	}
	return out
}

func toReplyJSON(r dialogue.Reply) replyJSON {
	return replyJSON{
		SessionID:   r.SessionID,
		TurnID:      r.TurnID,
		Answer:      r.Answer,
		Source:      r.Source,
		Confidence:  r.Confidence,
		Citations:   toCitationsJSON(r.Citations),
		Suggestions: toCitationsJSON(r.Suggestions),
		Incomplete:  r.Incomplete,
		LatencyMS:   latencyMS(r.Latency),
		Handoff:     r.Handoff,
	}
}

// latencyMS is a reply's latency in milliseconds, to the microsecond.
func latencyMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// handleChatCreate serves POST /v1/chat: one turn, answered as JSON, or as SSE events
// when the client accepts text/event-stream. Tenant and user come from the verified
// token only.
func (s *Server) handleChatCreate(w http.ResponseWriter, r *http.Request) {
	buf := getBodyBuffer()
	raw, err := appendBody(*buf, r, s.cfg.MaxBodyBytes)
	var in chatInput
	if err == nil {
		in, err = parseChatBody(raw, s.cfg.MaxMessageChars) // copies what it keeps
	}
	putBodyBuffer(buf, raw)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	p, _ := tenant.FromContext(r.Context())
	turn := dialogue.Turn{
		Tenant:      p.Tenant,
		User:        p.User,
		SessionID:   in.SessionID,
		Message:     in.Message,
		ClientMsgID: in.ClientMsgID,
		RequestID:   infoFrom(r.Context()).requestID(),
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if acceptsEventStream(r) {
		s.streamChat(ctx, w, r, turn)
		return
	}
	if s.cfg.QueueWait > 0 {
		// A queued turn's result may take up to QueueWait, past the turn deadline.
		setWriteDeadline(w, time.Now().Add(s.cfg.QueueWait+s.cfg.WriteTimeout))
	}
	reply, err := s.dialogue.Submit(ctx, turn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeReply(w, reply)
}

// writeReply answers with a turn's reply: 200 with it, or 202 while it is queued.
func writeReply(w http.ResponseWriter, reply dialogue.Reply) {
	if reply.Queued {
		writeJSON(w, http.StatusAccepted, queuedOf(reply.SessionID, reply.TurnID))
		return
	}
	writeReplyJSON(w, http.StatusOK, reply)
}

// queuedJSON answers a turn that waits in the spillover queue: 202 from POST /v1/chat
// when the wait for its result ran out, and from GET /v1/turns/{turn_id} until it is
// answered. It is also the data of the SSE queued event.
type queuedJSON struct {
	Status    string `json:"status"` // always "queued"
	SessionID string `json:"session_id"`
	TurnID    string `json:"turn_id"`
}

func queuedOf(sessionID, turnID string) queuedJSON {
	return queuedJSON{Status: "queued", SessionID: sessionID, TurnID: turnID}
}

// handleTurnGet serves GET /v1/turns/{turn_id}: a queued turn's reply once answered
// (200), 202 while it waits, 404 when it is not a turn the caller queued.
func (s *Server) handleTurnGet(w http.ResponseWriter, r *http.Request) {
	p, _ := tenant.FromContext(r.Context())
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	reply, err := s.dialogue.QueuedTurn(ctx, p.Tenant, p.User, chi.URLParam(r, "turn_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeReply(w, reply)
}

// acceptsEventStream reports whether the Accept header lists text/event-stream.
func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if !containsFold(v, "text/event-stream") {
			continue // no media type here can be it: parsing would allocate for nothing
		}
		for part := range strings.SplitSeq(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// containsFold reports whether s contains the ASCII text substr, ignoring case. Only
// two letters outside ASCII lower-case to ASCII ones, the Kelvin sign to k and İ to i,
// neither in text/event-stream: an Accept value that mime.ParseMediaType reads as
// text/event-stream contains it.
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// streamChat answers a turn as server-sent events: meta, token per delta, then done or
// error, and while the server is draining a last shutdown event. Until the first event
// it can still answer with a JSON error and a status.
func (s *Server) streamChat(ctx context.Context, w http.ResponseWriter, r *http.Request, turn dialogue.Turn) {
	events, err := s.dialogue.Stream(ctx, turn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var first dialogue.Event
	select {
	case ev, ok := <-events:
		if !ok {
			s.writeError(w, r, streamClosed(ctx, "event stream closed before its first event"))
			return
		}
		first = ev
	case <-ctx.Done():
		s.writeError(w, r, ctx.Err())
		return
	case <-s.cutoff:
		s.writeError(w, r, dialogue.ErrDraining)
		return
	}
	if first.Kind == dialogue.EventError {
		s.writeError(w, r, first.Err)
		return
	}
	// A queued turn waits for its result up to the queue's wait, which the engine
	// bounds, rather than the turn deadline; the stream still ends if the client leaves.
	done := ctx.Done()
	queued := first.Kind == dialogue.EventMeta && first.Queued
	if queued {
		done = r.Context().Done()
	}

	// The server's ReadTimeout does not cut the stream: net/http lifts the read deadline
	// once the body has been read to its end, as readBody does.
	sse := s.startSSE(w)

	if s.sendEnds(sse, r, first) {
		return
	}
	heartbeat := time.NewTicker(s.cfg.SSEHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				if r.Context().Err() == nil {
					s.sseError(sse, r, streamClosed(ctx, "event stream closed before its done event"))
					s.endShutdown(sse)
				}
				return
			}
			if s.sendEnds(sse, r, ev) {
				return
			}
		case <-heartbeat.C:
			if sse.comment("ping") != nil {
				return
			}
		case <-done:
			if r.Context().Err() == nil { // our deadline, not the client leaving
				s.sseError(sse, r, ctx.Err())
				s.endShutdown(sse)
			}
			return
		case <-s.cutoff:
			// The shutdown timeout is nearly over: a stream that still waits ends now.
			if queued { // still answered; the client fetches it by turn id
				_ = sse.event("queued", queuedOf(first.SessionID, first.TurnID))
			} else {
				s.sseError(sse, r, dialogue.ErrUnavailable)
			}
			s.endShutdown(sse)
			return
		}
	}
}

// shutdownJSON is the data of the SSE shutdown event.
type shutdownJSON struct {
	Status string `json:"status"` // always "shutting_down"
}

// sendEnds writes ev and reports whether the stream ends: ev was its last event (then
// followed by endShutdown) or the client cannot be written to.
func (s *Server) sendEnds(sse *sseWriter, r *http.Request, ev dialogue.Event) bool {
	end, err := s.sendEvent(sse, r, ev)
	if end && err == nil {
		s.endShutdown(sse)
	}
	return end || err != nil
}

// endShutdown follows a stream's last event with a shutdown event when the server is
// draining, telling the client to send its next turn on a new connection (which reaches
// another replica).
func (s *Server) endShutdown(sse *sseWriter) {
	if s.draining.Load() {
		_ = sse.event("shutdown", shutdownJSON{Status: "shutting_down"})
	}
}

// streamClosed explains a stream the engine closed early: the turn's deadline when it
// has passed, else an internal error.
func streamClosed(ctx context.Context, msg string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New(msg)
}

// sendEvent writes ev as an SSE event; end reports the last event of the stream.
func (s *Server) sendEvent(sse *sseWriter, r *http.Request, ev dialogue.Event) (end bool, err error) {
	switch ev.Kind {
	case dialogue.EventMeta:
		return false, sse.event("meta", metaJSON{SessionID: ev.SessionID, TurnID: ev.TurnID})
	case dialogue.EventDelta:
		return false, sse.event("token", deltaJSON{Delta: ev.Delta})
	case dialogue.EventDone:
		if ev.Reply == nil {
			return true, s.sseError(sse, r, errors.New("done event without its reply"))
		}
		return true, sse.event("done", toReplyJSON(*ev.Reply))
	case dialogue.EventError:
		return true, s.sseError(sse, r, ev.Err)
	case dialogue.EventQueued:
		return true, sse.event("queued", queuedOf(ev.SessionID, ev.TurnID))
	}
	return false, nil
}

// sseError ends a stream with an error event carrying the usual error body.
func (s *Server) sseError(sse *sseWriter, r *http.Request, err error) error {
	c := s.classifyLogged(r, err)
	return sse.event("error", errorBody{Error: s.errorDetail(r, c)})
}

type metaJSON struct {
	SessionID string `json:"session_id"`
	TurnID    string `json:"turn_id"`
}

type deltaJSON struct {
	Delta string `json:"delta"`
}

// sseWriter writes server-sent events, flushing each one, each write under its own
// deadline so that a client that stops reading cannot hold the handler.
// startSSE sends the headers of an event stream (200, not cached, not buffered by
// proxies) and returns its writer.
func (s *Server) startSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w, rc: http.NewResponseController(w), writeTimeout: s.cfg.WriteTimeout}
}

type sseWriter struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	buf          []byte
}

func (e *sseWriter) event(name string, v any) error {
	data, err := json.Marshal(v) // JSON holds no raw newline: one data line suffices
	if err != nil {
		return err
	}
	e.buf = append(e.buf[:0], "event: "...)
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, "\ndata: "...)
	e.buf = append(e.buf, data...)
	e.buf = append(e.buf, "\n\n"...)
	return e.write()
}

// raw writes an event whose data is JSON already, with its id when id > 0.
func (e *sseWriter) raw(id int64, name string, data []byte) error {
	e.buf = e.buf[:0]
	if id > 0 {
		e.buf = append(e.buf, "id: "...)
		e.buf = strconv.AppendInt(e.buf, id, 10)
		e.buf = append(e.buf, '\n')
	}
	e.buf = append(e.buf, "event: "...)
	e.buf = append(e.buf, name...)
	e.buf = append(e.buf, "\ndata: "...)
	e.buf = append(e.buf, data...)
	e.buf = append(e.buf, "\n\n"...)
	return e.write()
}

func (e *sseWriter) comment(text string) error {
	e.buf = append(e.buf[:0], ": "...)
	e.buf = append(e.buf, text...)
	e.buf = append(e.buf, "\n\n"...)
	return e.write()
}

func (e *sseWriter) write() error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(e.writeTimeout))
	if _, err := e.w.Write(e.buf); err != nil {
		return err
	}
	return e.rc.Flush()
}
