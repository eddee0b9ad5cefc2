package openai

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
)

// Causes of a request's context ending that are ours, not the caller's.
var (
	errDeadline   = errors.New("upstream deadline passed")
	errIdle       = errors.New("upstream stream idle too long")
	errClientGone = errors.New("stream client gone")
)

// policies composes the LLM's resilience policies, once: its breaker and bulkhead are
// shared by all its requests, which is what makes them per tenant and upstream.
//
// The bulkhead is outermost, so a request holds its place across its retries and a full
// bulkhead refuses at once (no waiting). The breaker is innermost, so it counts every
// call, and a retry the breaker refuses ends the request instead of waiting for the
// breaker. Timeouts are contexts rather than a timeout policy: a stream's first-token
// and idle limits do not fit one, and the JSON deadline then works the same way.
// Hedging is done by answerOnce rather than failsafe-go's hedge policy, which returns
// while the losing call still runs; ours waits for it, so no goroutine outlives its
// request.
func (l *LLM) policies() failsafe.Executor[string] {
	bh := bulkhead.NewBuilder[string](uint(l.cfg.MaxConcurrent)).Build()
	rp := retrypolicy.NewBuilder[string]().
		HandleIf(func(_ string, err error) bool {
			var ue *upstreamError
			return errors.As(err, &ue) && ue.retry
		}).
		WithMaxRetries(l.cfg.MaxRetries).
		WithDelayFunc(func(exec failsafe.ExecutionAttempt[string]) time.Duration {
			var ue *upstreamError
			if errors.As(exec.LastError(), &ue) {
				return ue.delay
			}
			return 0
		}).
		ReturnLastFailure().
		OnRetry(func(failsafe.ExecutionEvent[string]) { l.obs.Retry() }).
		Build()
	cb := circuitbreaker.NewBuilder[string]().
		// A cancelled call is recorded as a success, since the breaker knows no third
		// kind: a caller leaving must never open it.
		HandleIf(func(_ string, err error) bool {
			var ue *upstreamError
			return errors.As(err, &ue) && ue.breakerFailure()
		}).
		WithFailureThreshold(uint(l.cfg.BreakerFailures)).
		WithDelay(l.cfg.BreakerDelay).
		WithSuccessThreshold(1).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) { l.obs.BreakerState(breakerStates[e.NewState]) }).
		Build()
	return failsafe.With[string](bh, rp, cb)
}

// reason says why a request that ended with err falls back; ctx is its context.
func reason(ctx context.Context, err error) string {
	var ue *upstreamError
	switch {
	case errors.Is(err, circuitbreaker.ErrOpen):
		return reasonBreakerOpen
	case errors.Is(err, bulkhead.ErrFull):
		return reasonBulkhead
	case errors.As(err, &ue) && ue.outcome == outcomeTimeout, errors.Is(context.Cause(ctx), errDeadline):
		return reasonTimeout
	}
	return reasonUpstream
}

// answerOnce makes one attempt at a complete answer: one call, or two when the first is
// slow and hedging is on.
func (l *LLM) answerOnce(ctx context.Context, c *call, retries int) (string, error) {
	if l.cfg.HedgeDelay <= 0 {
		return l.postOnce(ctx, c, retries)
	}
	type result struct {
		text string
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel() // the slower call, if still running, is not wanted
		wg.Wait()
	}()
	results := make(chan result, 2) // one place per call: a call never blocks on sending
	launch := func() {
		wg.Go(func() {
			text, err := l.postOnce(ctx, c, retries)
			results <- result{text, err}
		})
	}
	launch()
	hedge := time.NewTimer(l.cfg.HedgeDelay)
	defer hedge.Stop()
	running := 1
	for {
		select {
		case <-hedge.C:
			if ctx.Err() == nil {
				running++
				launch()
			}
		case r := <-results:
			running--
			var ue *upstreamError
			retryable := r.err != nil && errors.As(r.err, &ue) && ue.retry
			// A retryable failure waits for the other call if it still runs; anything
			// else is the attempt's result. A call that fails before the hedge is due is
			// retried by the retry policy, after its backoff.
			if !retryable || running == 0 {
				return r.text, r.err
			}
		}
	}
}

// postOnce makes one call for a complete answer.
func (l *LLM) postOnce(ctx context.Context, c *call, retries int) (string, error) {
	start := time.Now()
	text, err := l.post(ctx, c)
	if err != nil {
		return "", l.failed(ctx, c, start, retries, err)
	}
	l.obs.UpstreamDone(time.Since(start), outcomeOK)
	return text, nil
}

// post sends c and reads a complete answer.
func (l *LLM) post(ctx context.Context, c *call) (string, error) {
	resp, err := l.send(ctx, c)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	p := getCodecBuffer()
	data, err := readBody(*p, resp)
	defer func() { putCodecBuffer(p, data) }()
	if err != nil {
		return "", err
	}
	return parseAnswer(data)
}

// readBody appends a complete answer's body to dst: at most maxAnswerBody bytes, a
// *protocolError beyond.
func readBody(dst []byte, resp *http.Response) ([]byte, error) {
	if n := resp.ContentLength; n > 0 && n <= maxAnswerBody {
		dst = slices.Grow(dst, int(n)+1) // room to see the end without growing
	}
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, 512)
		}
		n, err := resp.Body.Read(dst[len(dst):min(cap(dst), start+maxAnswerBody+1)])
		dst = dst[:len(dst)+n]
		if err != nil && err != io.EOF {
			return dst, err
		}
		if len(dst)-start > maxAnswerBody {
			return dst, &protocolError{"answer too long"}
		}
		if err == io.EOF {
			return dst, nil
		}
	}
}

// Header values shared by every request. net/http never modifies a request's value
// slice in place, so one slice serves every request; the capacity of 1 makes an append
// copy it.
var (
	headerJSON        = []string{"application/json"}[:1:1]
	headerEventStream = []string{"text/event-stream"}[:1:1]
)

// send posts c. It returns the response only for a 2xx status; any other response is
// read a little and closed here, whether or not it will be retried.
func (l *LLM) send(ctx context.Context, c *call) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(c.body))
	if err != nil {
		return nil, err
	}
	req.Header["Content-Type"] = headerJSON
	if c.stream {
		req.Header["Accept"] = headerEventStream
	} else {
		req.Header["Accept"] = headerJSON
	}
	if l.auth != nil {
		req.Header["Authorization"] = l.auth
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, statusError(resp, time.Now())
	}
	return resp, nil
}

// failed classifies a failed call made with ctx, reports it, and decides whether and
// when to retry it.
func (l *LLM) failed(ctx context.Context, c *call, start time.Time, retries int, err error) *upstreamError {
	ue := classify(ctx, c, err)
	l.obs.UpstreamDone(time.Since(start), ue.outcome)
	if ue.retry {
		d := l.backoff(retries)
		d = max(d, ue.retryAfter)
		if time.Now().Add(d).After(c.deadline) {
			ue.retry = false // it could not start in time: fall back now, not at the deadline
		} else {
			ue.delay = d
		}
	}
	return ue
}

// classify turns the error of a call made with ctx into an upstreamError.
func classify(ctx context.Context, c *call, err error) *upstreamError {
	var ue *upstreamError
	if errors.As(err, &ue) {
		return ue
	}
	var pe *protocolError
	cause := context.Cause(ctx)
	switch {
	case c.caller.Err() != nil:
		return &upstreamError{outcome: outcomeCanceled, err: err}
	case errors.Is(err, errDeadline), errors.Is(cause, errDeadline), errors.Is(cause, errIdle):
		return &upstreamError{outcome: outcomeTimeout, err: cause}
	case ctx.Err() != nil:
		return &upstreamError{outcome: outcomeCanceled, err: err}
	case errors.As(err, &pe):
		return &upstreamError{outcome: outcomeProtocol, msg: pe.msg}
	}
	return &upstreamError{outcome: outcomeConn, err: err, retry: true}
}

// backoff returns the wait before retry number retries+1: exponential from BackoffMin
// to BackoffMax, with "equal jitter" (half fixed, half random) so that callers failed
// together do not retry together.
func (l *LLM) backoff(retries int) time.Duration {
	d := l.cfg.BackoffMin
	for range retries {
		if d >= l.cfg.BackoffMax/2 {
			d = l.cfg.BackoffMax
			break
		}
		d *= 2
	}
	d = min(d, l.cfg.BackoffMax)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// stream is the state of one Stream request across its attempts.
type stream struct {
	l      *LLM
	c      *call
	start  time.Time
	first  *time.Timer // cancels the request at the first-token deadline
	idle   *time.Timer // cancels it when tokens stop coming
	cancel context.CancelCauseFunc
	emit   func(string) error
	guard  *guardedEmit // when set, tokens go to it rather than to emit

	started bool    // a token was emitted: no retry, no fallback
	text    []byte  // unguarded, what was emitted
	buf     *[]byte // the pooled buffer the text is read into, if any
	emitErr error
}

// textRead returns the text read so far: all of it was emitted, or given to the guard.
func (s *stream) textRead() []byte {
	if s.guard != nil {
		return s.guard.text
	}
	return s.text
}

// sent returns what the client has been given. Unguarded, it is every token read; a
// guard holds some back.
func (s *stream) sent() []byte {
	if s.guard != nil {
		return s.guard.text[:s.guard.sent]
	}
	return s.text
}

// attempt makes one call. Only the first call that yields a token emits; after that no
// other call is made, so no token is ever emitted twice.
func (s *stream) attempt(ctx context.Context, retries int) (string, error) {
	start := time.Now()
	err := s.read(ctx)
	if err == nil {
		if !s.started {
			err = &protocolError{"empty answer"}
		} else {
			s.l.obs.UpstreamDone(time.Since(start), outcomeOK)
			return string(s.textRead()), nil
		}
	}
	if s.emitErr != nil {
		err = s.emitErr
	}
	ue := s.l.failed(ctx, s.c, start, retries, err)
	if s.started {
		ue.cut, ue.retry = true, false
	}
	return "", ue
}

// read makes one call and reads its stream into delta.
func (s *stream) read(ctx context.Context) error {
	resp, err := s.l.send(ctx, s.c)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if jsonContent(resp.Header) {
		// The server answered in one piece after all.
		p := getCodecBuffer()
		data, err := readBody(*p, resp)
		defer func() { putCodecBuffer(p, data) }()
		if err != nil {
			return err
		}
		var d chatDecoder
		text, err := d.answer(data)
		if err != nil {
			return err
		}
		return s.delta(text)
	}
	return readStream(resp.Body, s.delta)
}

// jsonContent reports whether a response's media type is application/json.
func jsonContent(h http.Header) bool {
	switch v := h.Get("Content-Type"); v {
	case "text/event-stream", "text/event-stream; charset=utf-8":
		return false
	case "application/json":
		return true
	default:
		ct, _, _ := mime.ParseMediaType(v)
		return ct == "application/json"
	}
}

// delta emits one piece of the answer, valid only until delta returns.
func (s *stream) delta(d []byte) error {
	if !s.started {
		if !s.first.Stop() {
			return errDeadline // the timer has fired: the fallback is on its way
		}
		s.started = true
		s.l.obs.FirstToken(time.Since(s.start))
		s.buf = streamTexts.Get().(*[]byte)
		if s.guard != nil {
			s.guard.text = *s.buf
		} else {
			s.text = *s.buf
		}
	}
	var err error
	if s.guard != nil {
		err = s.guard.write(d)
	} else if err = s.emit(string(d)); err == nil {
		s.text = append(s.text, d...)
	}
	if err != nil {
		s.emitErr = err
		s.cancel(errClientGone)
		return err
	}
	// The gap is timed from the end of emit, so that a slow client is not taken for a
	// slow upstream.
	if s.idle == nil {
		s.idle = time.AfterFunc(s.l.cfg.IdleTimeout, func() { s.cancel(errIdle) })
	} else {
		s.idle.Reset(s.l.cfg.IdleTimeout)
	}
	return nil
}

// stop stops the idle timer and gives the text's buffer back, once the request is
// answered: nothing refers to it then.
func (s *stream) stop() {
	if s.idle != nil {
		s.idle.Stop()
	}
	if s.buf != nil {
		putBuffer(&streamTexts, s.buf, s.textRead())
		s.buf = nil
	}
}
