// Package nlpclient owns what the answer engines share: the request and answer types,
// their errors, and the knowledge base's file format. The engines live below it: the
// built-in FAQ engine in nlpclient/faq, the OpenAI-compatible model client grounded on
// it in nlpclient/openai.
//
// It must not import other Fengda packages: callers pass plain values in and get plain
// values back.
package nlpclient

import (
	"context"
	"errors"
)

// ErrUnavailable is returned when an engine cannot answer now (a vendor down, a breaker
// open); the caller answers with the tenant's fallback text.
var ErrUnavailable = errors.New("answer engine unavailable")

// ErrStreamCut is returned by Stream, with the partial Answer (Incomplete set), when the
// upstream stream failed after at least one token was emitted. Such a stream is never
// retried: the tokens already shown to the user would be repeated.
var ErrStreamCut = errors.New("answer stream cut")

// Streamer is an engine that streams an answer's tokens as they arrive.
type Streamer interface {
	// Stream answers req, calling emit with each piece of the answer's text in order;
	// the pieces joined are the returned Answer's Text. It returns the context's error
	// when ctx ends, the error emit returned (the upstream call is then abandoned), and
	// ErrStreamCut with the partial answer when the stream broke after its first piece.
	Stream(ctx context.Context, req Request, emit func(delta string) error) (Answer, error)
}

// HistoryWindow is an engine that reads no more than the newest HistoryTurns exchanges
// of Request.History, so a caller need not load more.
type HistoryWindow interface {
	HistoryTurns() int
}

// Source says where an answer came from.
type Source string

// The sources an Answer can have.
const (
	SourceFAQ      Source = "faq"      // a knowledge-base entry, confidently matched
	SourceLLM      Source = "llm"      // a language model
	SourceClarify  Source = "clarify"  // not confident: suggested questions instead
	SourceFallback Source = "fallback" // the engine failed: the tenant's fallback text
)

// Citation names a knowledge-base entry an answer rests on (or, for clarify, suggests).
type Citation struct {
	ID       string `json:"id"`
	Question string `json:"question"`
}

// Exchange is one earlier turn of the conversation, oldest first in Request.History.
type Exchange struct {
	User      string
	Assistant string
	// Citations are the entries the assistant's answer cited, if any.
	Citations []Citation
}

// Request is one question to an engine.
type Request struct {
	// Message is the user's new message.
	Message string
	// History holds earlier turns of the session, oldest first (may be empty).
	History []Exchange
	// RequestID is the id of the request the turn came with, for the engines' log lines
	// about it (as request_id; the tenant is on the logger an engine is given).
	RequestID string
}

// Answer is an engine's reply.
type Answer struct {
	Text       string
	Source     Source
	Confidence float64 // in [0, 1]
	// Citations: for SourceFAQ the entry answered from; empty otherwise.
	Citations []Citation
	// Suggestions: for SourceClarify, up to three entries the user may have meant.
	Suggestions []Citation
	// Incomplete marks a stream cut after some tokens: Text is the partial answer.
	Incomplete bool
}

// Reference is a knowledge-base entry given to a model as reference material.
type Reference struct {
	ID, Question, Answer string
}
