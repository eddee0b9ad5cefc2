// Package openaitest holds stand-ins for a model vendor speaking the OpenAI chat
// completions API, for tests that run a real HTTP server (httptest) in its place: each
// test decides what to answer; these read the request and write the answer, as JSON or
// as a stream of deltas. It imports nothing of Fengda's.
package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Request is what a stand-in reads of a chat completion request.
type Request struct {
	Model    string    `json:"model"`
	Stream   bool      `json:"stream"`
	Messages []Message `json:"messages"`
}

// Message is one message of a Request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Last returns the content of the request's last message: the user's turn.
func (c Request) Last() string { return c.Messages[len(c.Messages)-1].Content }

// ReadRequest decodes a chat completion request. Anything else (another path, a body
// that does not decode, no messages) is answered 400, and ok is false.
func ReadRequest(w http.ResponseWriter, r *http.Request) (req Request, ok bool) {
	if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"not a chat completion this stand-in answers"}}`, http.StatusBadRequest)
		return req, false
	}
	return req, true
}

// WriteAnswer answers with content as one JSON completion.
func WriteAnswer(w http.ResponseWriter, content string) {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"role": "assistant", "content": content}}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// Stream answers with a stream of server-sent deltas.
type Stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// NewStream starts a stream of server-sent deltas on w.
func NewStream(w http.ResponseWriter) *Stream {
	w.Header().Set("Content-Type", "text/event-stream")
	return &Stream{w: w, rc: http.NewResponseController(w)}
}

// Delta sends one piece of the answer, flushed.
func (s *Stream) Delta(piece string) error {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"delta": map[string]string{"content": piece}}}})
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Done ends the stream as the API does.
func (s *Stream) Done() {
	_, _ = fmt.Fprint(s.w, "data: [DONE]\n\n")
	_ = s.rc.Flush()
}
