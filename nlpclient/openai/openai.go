package openai

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// NewHTTPClient returns the client meant to be shared by every upstream: connections are
// kept alive (up to 512 idle per host, so a burst does not dial again), HTTP/2 is used
// when the server offers it, and dialing and TLS handshakes are bounded. It has no
// overall timeout: each call's deadline comes from its context, and a stream may
// legitimately last longer than any single figure.
func NewHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:             http.ProxyFromEnvironment,
		DialContext:       dialer.DialContext,
		ForceAttemptHTTP2: true,
		// A model server is one host with as many calls in flight as every tenant's
		// bulkhead lets through: idle connections below that are closed after each
		// call and dialled again for the next, which costs a connection setup per
		// turn (the latency bench scenario at 100 clients: 64 idle connections added
		// 6.3 ms to the median, 512 add 3.1 ms).
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   3 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A connection keeps its read buffer for as long as it lives, and a streamed
		// answer holds one open for the whole answer while it reads events of a few
		// hundred bytes: 2 KiB instead of 4 holds a JSON answer's usual size and is
		// 1.5 KiB less per open conversation (bench connections scenario). Longer
		// headers and bodies are still read whole, in more reads.
		ReadBufferSize: 2 << 10,
	}}
}

// sharedClient serves LLMs built without a client of their own.
var sharedClient = sync.OnceValue(NewHTTPClient)

// chatRequest is the body of POST /chat/completions.
type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Temperature float64       `json:"temperature"`
	MaxTokens   int           `json:"max_tokens"`
	Stream      bool          `json:"stream"`
}

// chatResponse is a complete answer, or one event of a stream (Delta instead of
// Message). Vendors report some failures as an error object, even with status 200.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Error *apiError `json:"error"`
}

// apiError is the error object OpenAI-compatible APIs return.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
}

// Limits on what is read from an upstream.
const (
	maxErrorBody  = 4 << 10 // of a failed response, for its message
	maxAnswerBody = 4 << 20 // of a complete answer
	maxEventLine  = 1 << 20 // of one line of a stream
)

// Outcomes of one upstream call, as LLMObserver.UpstreamDone reports them.
const (
	outcomeOK       = "ok"
	outcome5xx      = "http_5xx"
	outcome429      = "http_429"
	outcome4xx      = "http_4xx" // any other status that is not 2xx
	outcomeConn     = "conn"     // dial, TLS, reset, or a body cut short
	outcomeTimeout  = "timeout"  // the deadline, first-token or idle timer ran out
	outcomeCanceled = "canceled" // the caller left, or a hedged twin won
	outcomeProtocol = "protocol" // a 2xx that is not a usable answer, or an error event
)

// upstreamError is a failed upstream call, classified.
type upstreamError struct {
	outcome string
	status  int    // the HTTP status, if a response came
	msg     string // the vendor's message, or what went wrong
	err     error  // the underlying error, if any
	// retry says the call is worth repeating (connection errors, 429, 5xx) within the
	// deadline, after delay.
	retry      bool
	retryAfter time.Duration // what the response asked for
	delay      time.Duration
	// cut says tokens were emitted before the failure.
	cut bool
}

func (e *upstreamError) Error() string {
	var b strings.Builder
	b.WriteString("upstream ")
	b.WriteString(e.outcome)
	if e.status != 0 {
		b.WriteString(" (status ")
		b.WriteString(strconv.Itoa(e.status))
		b.WriteString(")")
	}
	if e.msg != "" {
		b.WriteString(": ")
		b.WriteString(e.msg)
	}
	if e.err != nil {
		b.WriteString(": ")
		b.WriteString(e.err.Error())
	}
	return b.String()
}

func (e *upstreamError) Unwrap() error { return e.err }

// breakerFailure reports whether the outcome says the upstream is unwell. A 4xx other
// than 429 is our request's fault, and a cancellation says nothing about the upstream.
func (e *upstreamError) breakerFailure() bool {
	switch e.outcome {
	case outcome5xx, outcome429, outcomeConn, outcomeTimeout, outcomeProtocol:
		return true
	}
	return false
}

// statusError classifies a non-2xx response, reading a little of its body for the
// vendor's message. The caller closes the body.
func statusError(resp *http.Response, now time.Time) *upstreamError {
	e := &upstreamError{status: resp.StatusCode, msg: errorMessage(resp.Body)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.outcome, e.retry = outcome429, true
	case resp.StatusCode >= 500:
		e.outcome, e.retry = outcome5xx, true
	default:
		e.outcome = outcome4xx
	}
	if e.retry {
		e.retryAfter = retryAfter(resp.Header, now)
	}
	return e
}

// errorMessage returns the message of an error body: the error object's message if it
// is one, else its first bytes as text.
func errorMessage(body io.Reader) string {
	data, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
	var r chatResponse
	if json.Unmarshal(data, &r) == nil && r.Error != nil && r.Error.Message != "" {
		return clip(r.Error.Message)
	}
	return clip(strings.TrimSpace(string(data)))
}

// clip shortens a vendor's message for an error string.
func clip(s string) string {
	const limit = 300
	if len(s) <= limit {
		return s
	}
	s = s[:limit]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// retryAfter returns how long a response asked us to wait: Retry-After-Ms (OpenAI's
// header), else Retry-After in seconds or as an HTTP date. Zero when it asked nothing.
func retryAfter(h http.Header, now time.Time) time.Duration {
	const longest = time.Hour // anything longer is as good as never
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return min(time.Duration(min(ms, float64(longest/time.Millisecond))*float64(time.Millisecond)), longest)
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s <= 0 {
			return 0
		}
		return min(time.Duration(min(s, int(longest/time.Second)))*time.Second, longest)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), longest)
	}
	return 0
}

// protocolError is a response that is not a usable answer.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

// parseAnswer returns the content of a complete JSON answer.
func parseAnswer(data []byte) (string, error) {
	var d chatDecoder
	content, err := d.answer(data)
	if err != nil {
		return "", err
	}
	return string(content), nil
}

// answer returns the content of a complete JSON answer. It may share memory with data
// or with the decoder's scratch buffer.
func (d *chatDecoder) answer(data []byte) ([]byte, error) {
	r, err := d.decode(data, partMessage)
	if err != nil {
		return nil, &protocolError{"malformed answer: " + err.Error()}
	}
	if r.hasError {
		return nil, &protocolError{"error in answer: " + clip(r.errMsg)}
	}
	if r.choices == 0 || len(r.content) == 0 {
		return nil, &protocolError{"empty answer"}
	}
	return r.content, nil
}

var (
	dataPrefix = []byte("data:")
	doneMarker = []byte("[DONE]")
)

// eventBuffers holds the line buffers of readStream, which a stream keeps for as long as
// it is open. An event line of a chat completion chunk is a few hundred bytes; the
// scanner grows its buffer for a longer one, up to maxEventLine.
var eventBuffers = sync.Pool{New: func() any {
	b := make([]byte, 1<<10)
	return &b
}}

// readStream reads an OpenAI-style event stream, calling delta with each non-empty piece
// of content in order, until "data: [DONE]". Comments and other fields (keep-alives,
// "event:", "id:"), events without content (the role, usage, a finish reason) are
// skipped. Each data line is taken as one event: the format never splits its JSON across
// lines, and waiting for the blank line would only add latency. The piece given to delta
// is valid only until delta returns.
//
// It returns nil at [DONE]; the error delta returned; a *protocolError for a malformed
// event, an error event, an overlong line or an end without [DONE]; else the reader's
// error.
func readStream(r io.Reader, delta func([]byte) error) error {
	// delta keeps no piece, so the buffer is free again when readStream returns.
	buf := eventBuffers.Get().(*[]byte)
	defer eventBuffers.Put(buf)
	sc := bufio.NewScanner(r)
	sc.Buffer(*buf, maxEventLine)
	var d chatDecoder
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), dataPrefix)
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if len(data) == 0 {
			continue
		}
		if bytes.Equal(data, doneMarker) {
			return nil
		}
		ev, err := d.decode(data, partDelta)
		if err != nil {
			return &protocolError{"malformed event: " + err.Error()}
		}
		if ev.hasError {
			return &protocolError{fmt.Sprintf("error event: %s", clip(ev.errMsg))}
		}
		if ev.choices == 0 || len(ev.content) == 0 {
			continue
		}
		if err := delta(ev.content); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &protocolError{"event line too long"}
		}
		return err
	}
	return &protocolError{"stream ended without [DONE]"}
}
