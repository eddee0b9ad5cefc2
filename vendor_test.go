package main

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// The model stand-ins of these tests speak the OpenAI chat completions API through the
// helpers below: each decides what to answer, these read the request and write the
// answer, as JSON or as a stream of deltas.

// completionRequest is what a stand-in reads of a chat completion request.
type completionRequest struct {
	Model    string              `json:"model"`
	Stream   bool                `json:"stream"`
	Messages []completionMessage `json:"messages"`
}

type completionMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// last returns the content of the request's last message: the user's turn.
func (c completionRequest) last() string { return c.Messages[len(c.Messages)-1].Content }

// readCompletion decodes a chat completion request. Anything else (another path, a body
// that does not decode, no messages) is answered 400, and ok is false.
func readCompletion(w http.ResponseWriter, r *http.Request) (req completionRequest, ok bool) {
	if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Messages) == 0 {
		http.Error(w, `{"error":{"message":"not a chat completion this stand-in answers"}}`, http.StatusBadRequest)
		return req, false
	}
	return req, true
}

// writeCompletion answers with content as one JSON completion.
func writeCompletion(w http.ResponseWriter, content string) {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"message": map[string]string{"role": "assistant", "content": content}}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// completionStream answers with a stream of server-sent deltas.
type completionStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newCompletionStream(w http.ResponseWriter) *completionStream {
	w.Header().Set("Content-Type", "text/event-stream")
	return &completionStream{w: w, rc: http.NewResponseController(w)}
}

// delta sends one piece of the answer, flushed.
func (s *completionStream) delta(piece string) error {
	b, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"delta": map[string]string{"content": piece}}}})
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// done ends the stream as the API does.
func (s *completionStream) done() {
	_, _ = fmt.Fprint(s.w, "data: [DONE]\n\n")
	_ = s.rc.Flush()
}
