// Package openai owns the client of an OpenAI-compatible chat completions API: the
// prompt grounded on the tenant's knowledge base, the wire codec, the resilience
// policies (deadline, retries, breaker, bulkhead, hedging) and the prompt leak guard.
//
// It reaches the FAQ engine only through its own FAQ interface, never the concrete
// engine, and imports only nlpclient and its text folding.
package openai

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/fengda-ai/fengda/nlpclient"
	"go.uber.org/zap"
)

// Config configures a client of one OpenAI-compatible chat completions API for one
// tenant, as written under a tenant's engine.llm in config.yaml (the YAML keys are the
// tags; history_chars is HistoryBudget, first_token_timeout FirstToken). A zero field
// takes the default its comment gives. The tenant's api_key is a secret reference the
// tenant configuration resolves into APIKey; the backoff bounds are not configurable.
type Config struct {
	// Upstream names the vendor in metrics and logs, e.g. deepseek. Default: the host of
	// BaseURL.
	Upstream string `yaml:"upstream"`
	// BaseURL is the API's root, an absolute http or https URL; requests go to
	// {BaseURL}/chat/completions.
	BaseURL string `yaml:"base_url"`
	// APIKey is sent as a bearer token; empty sends none (local servers). It is the
	// resolved secret: the caller fills it in, and it is never read from YAML.
	APIKey string `yaml:"-"`
	// Model is the model's name at the vendor. Required.
	Model string `yaml:"model"`
	// Temperature is the sampling temperature, at most 2. Default 0.3: answers that keep
	// close to the reference material but do not read as canned. A negative value sends
	// 0 (greedy decoding).
	Temperature float64 `yaml:"temperature"`
	// MaxTokens bounds the answer's length. Default 512.
	MaxTokens int `yaml:"max_tokens"`
	// SystemPrompt is the tenant's own instruction (persona, tone); the grounding rules
	// and the reference material follow it. It must carry no secret: a model can be made
	// to repeat it. The model's answers are checked for its text (see leakGuard), and an
	// answer that holds some is withheld.
	SystemPrompt string `yaml:"system_prompt"`
	// References is how many knowledge-base entries the model gets as reference
	// material, the best matches first. Default 3; at most 5 are found; negative gives
	// none.
	References int `yaml:"references"`
	// HistoryBudget is how many characters (runes) of earlier turns go into the prompt:
	// the most recent whole exchanges that fit. Default 2000; negative sends none.
	HistoryBudget int `yaml:"history_chars"`
	// Timeout is the deadline for a complete answer from Answer, retries included; the
	// fallback is returned when it passes. Default 1.5s.
	Timeout time.Duration `yaml:"timeout"`
	// FirstToken is Stream's deadline for the first token, retries included. Default 1.5s.
	FirstToken time.Duration `yaml:"first_token_timeout"`
	// IdleTimeout is the longest gap Stream accepts between two tokens; a longer one
	// cuts the stream. Default 1s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxRetries is how many times a failed call is repeated: only connection errors,
	// 429 and 5xx, and never once a stream has emitted a token. Default 2; negative
	// means none.
	MaxRetries int `yaml:"max_retries"`
	// BackoffMin and BackoffMax bound the jittered exponential wait before a retry,
	// defaults 50ms and 500ms. A Retry-After (or Retry-After-Ms) asking for longer is
	// honoured. A retry whose wait would end past the deadline is not made: the fallback
	// comes at once.
	BackoffMin time.Duration `yaml:"-"`
	BackoffMax time.Duration `yaml:"-"`
	// BreakerFailures is how many failed calls in a row open the circuit breaker. Every
	// call counts, retries included; a 4xx other than 429 and a cancellation do not.
	// Default 5.
	BreakerFailures int `yaml:"breaker_failures"`
	// BreakerDelay is how long the breaker stays open; then one call probes the upstream
	// and closes it again on success. Default 30s.
	BreakerDelay time.Duration `yaml:"breaker_delay"`
	// MaxConcurrent bounds the requests in flight to the upstream (a bulkhead; a hedged
	// request holds one place). A request beyond it gets the fallback at once. Default 16.
	MaxConcurrent int `yaml:"max_concurrent"`
	// HedgeDelay, when positive, sends a second identical request if the first has not
	// answered after this long, and takes whichever answers first. Answer only: a
	// stream's tokens cannot be taken from two sources. Default 0, off.
	HedgeDelay time.Duration `yaml:"hedge_delay"`
}

// Defaults of Config.
const (
	defaultTemperature   = 0.3
	defaultMaxTokens     = 512
	defaultReferences    = 3
	defaultHistoryBudget = 2000
	defaultTimeout       = 1500 * time.Millisecond
	defaultFirstToken    = 1500 * time.Millisecond
	defaultIdleTimeout   = time.Second
	defaultMaxRetries    = 2
	defaultBackoffMin    = 50 * time.Millisecond
	defaultBackoffMax    = 500 * time.Millisecond
	defaultBreakerFails  = 5
	defaultBreakerDelay  = 30 * time.Second
	defaultMaxConcurrent = 16
)

// LLMDeps are what an LLM uses besides its configuration.
type LLMDeps struct {
	// Client is shared by all upstreams; nil means one NewHTTPClient shared by the
	// package.
	Client *http.Client
	// FAQ returns the tenant's FAQ engine being served now (for a reloadable one,
	// faq.Swap's Current): it finds the reference material and gives the fallback
	// answer. A request calls it once and uses what it returned throughout. Required.
	FAQ func() FAQ
	// Fallback is the tenant's text when no answer can be had, e.g. 系统繁忙,请稍后再试.
	// Empty means a short apology in the knowledge base's language.
	Fallback string
	// Observer receives metrics; nil means none.
	Observer LLMObserver
	// Log receives the upstream's error when a request falls back because of it (a 4xx,
	// retries exhausted, a malformed answer); nil means no logging.
	Log *zap.Logger
}

// LLMObserver receives an LLM's metrics; the caller labels them with tenant and
// upstream. Its methods may be called concurrently and must not block.
type LLMObserver interface {
	// UpstreamDone reports one HTTP call (a retry or a hedge is a call of its own) and
	// how it ended: "ok", "http_5xx", "http_429", "http_4xx", "conn", "timeout",
	// "canceled" (the caller left, the hedged twin won, or a stream was abandoned because
	// it repeated the system prompt), or "protocol" (a 2xx that was not a usable answer,
	// an error event, or a stream ended without [DONE]).
	UpstreamDone(d time.Duration, outcome string)
	// FirstToken reports how long a stream took to its first token, from the call of
	// Stream, retries included.
	FirstToken(d time.Duration)
	// Retry reports a retry about to be made.
	Retry()
	// BreakerState reports the breaker's new state on every change: "closed", "open" or
	// "half_open".
	BreakerState(state string)
	// Fallback reports a request answered without the model, and why: "timeout" (the
	// deadline or the first-token deadline passed), "breaker_open", "bulkhead" (too many
	// requests in flight), "upstream_error" (a 4xx, retries exhausted, a malformed
	// answer), or "prompt_leak" (the model's answer repeated the system prompt and was
	// withheld; for a stream, the rest of it from there).
	Fallback(reason string)
}

// Fallback reasons.
const (
	reasonTimeout     = "timeout"
	reasonBreakerOpen = "breaker_open"
	reasonBulkhead    = "bulkhead"
	reasonUpstream    = "upstream_error"
	reasonPromptLeak  = "prompt_leak"
)

// fallbackTexts are used when the tenant set no fallback text.
var fallbackTexts = map[string]string{
	nlpclient.LangZH: "系统繁忙,请稍后再试。",
	nlpclient.LangEN: "Sorry, we can't answer right now. Please try again later.",
}

// LLM answers from an OpenAI-compatible chat model, grounded in the tenant's knowledge
// base, with a deadline, retries, a circuit breaker and a bulkhead. One LLM serves one
// tenant and upstream, so a failing vendor trips only its own breaker, and one tenant
// cannot take all the connections. It is safe for concurrent use and starts no
// goroutines of its own beyond the ones a request needs and waits for.
type LLM struct {
	cfg      Config
	url      string
	client   *http.Client
	faq      func() FAQ
	fallback string
	obs      LLMObserver
	log      *zap.Logger
	exec     failsafe.Executor[string]
	auth     []string   // the Authorization header's value; nil when there is no key
	guard    *leakGuard // nil when the system prompt protects nothing
}

var _ nlpclient.Streamer = (*LLM)(nil)

// NewLLM validates cfg, applies its defaults and composes the resilience policies.
func NewLLM(cfg Config, deps LLMDeps) (*LLM, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, fmt.Errorf("new llm: %w", err)
	}
	if deps.FAQ == nil || deps.FAQ() == nil {
		return nil, errors.New("new llm: no faq engine")
	}
	l := &LLM{
		cfg:      cfg,
		url:      strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions",
		client:   deps.Client,
		faq:      deps.FAQ,
		fallback: deps.Fallback,
		obs:      deps.Observer,
		log:      deps.Log,
	}
	if l.client == nil {
		l.client = sharedClient()
	}
	if cfg.APIKey != "" {
		l.auth = []string{"Bearer " + cfg.APIKey}[:1:1]
	}
	if l.obs == nil {
		l.obs = nopObserver{}
	}
	if l.log == nil {
		l.log = zap.NewNop()
	}
	l.exec = l.policies()
	if l.guard = newLeakGuard(cfg.SystemPrompt); l.guard != nil {
		l.guard.forKB(deps.FAQ().KB()) // at start-up rather than on the first turn
	}
	return l, nil
}

// withDefaults validates c and fills in its zero fields.
func (c *Config) withDefaults() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base url %q: not an absolute http or https url", c.BaseURL)
	}
	if strings.TrimSpace(c.Model) == "" {
		return errors.New("no model")
	}
	if math.IsNaN(c.Temperature) || c.Temperature > 2 {
		return fmt.Errorf("temperature %v above 2", c.Temperature)
	}
	for name, v := range map[string]int{"max tokens": c.MaxTokens, "breaker failures": c.BreakerFailures, "max concurrent": c.MaxConcurrent} {
		if v < 0 {
			return fmt.Errorf("%s %d below zero", name, v)
		}
	}
	for name, d := range map[string]time.Duration{"timeout": c.Timeout, "first token": c.FirstToken, "idle timeout": c.IdleTimeout,
		"backoff min": c.BackoffMin, "backoff max": c.BackoffMax, "breaker delay": c.BreakerDelay, "hedge delay": c.HedgeDelay} {
		if d < 0 {
			return fmt.Errorf("%s %v below zero", name, d)
		}
	}
	c.Upstream = c.UpstreamName()
	switch {
	case c.Temperature == 0:
		c.Temperature = defaultTemperature
	case c.Temperature < 0:
		c.Temperature = 0
	}
	setDefault(&c.MaxTokens, defaultMaxTokens)
	setDefault(&c.References, defaultReferences)
	setDefault(&c.HistoryBudget, defaultHistoryBudget)
	setDefault(&c.Timeout, defaultTimeout)
	setDefault(&c.FirstToken, defaultFirstToken)
	setDefault(&c.IdleTimeout, defaultIdleTimeout)
	setDefault(&c.MaxRetries, defaultMaxRetries)
	setDefault(&c.BackoffMin, defaultBackoffMin)
	setDefault(&c.BackoffMax, defaultBackoffMax)
	setDefault(&c.BreakerFailures, defaultBreakerFails)
	setDefault(&c.BreakerDelay, defaultBreakerDelay)
	setDefault(&c.MaxConcurrent, defaultMaxConcurrent)
	if c.BackoffMin > c.BackoffMax {
		return fmt.Errorf("backoff min %v above backoff max %v", c.BackoffMin, c.BackoffMax)
	}
	c.References = max(c.References, 0)
	c.HistoryBudget = max(c.HistoryBudget, 0)
	c.MaxRetries = max(c.MaxRetries, 0)
	return nil
}

// UpstreamName is the name of the upstream in metrics and logs: Upstream, or else the
// host of BaseURL.
func (c Config) UpstreamName() string {
	if c.Upstream != "" {
		return c.Upstream
	}
	if u, err := url.Parse(c.BaseURL); err == nil {
		return u.Hostname()
	}
	return ""
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// call is one request to the upstream, with all its attempts.
type call struct {
	// caller is the caller's context: when it ends, the request is abandoned, and that
	// is neither a failure nor a reason to fall back.
	caller   context.Context
	deadline time.Time // no retry starts after it
	body     []byte
	stream   bool
}

// prepared is a request's prompt and what an answer from it carries.
type prepared struct {
	body      []byte
	citations []nlpclient.Citation
	conf      float64
}

// prepare builds the chat request for req from the tenant's knowledge base.
func (l *LLM) prepare(faq FAQ, req nlpclient.Request, stream bool) (prepared, error) {
	refs, conf := faq.References(req, l.cfg.References)
	body, err := encodeChatRequest(&chatRequest{
		Model:       l.cfg.Model,
		Messages:    buildMessages(faq.KB().Language, l.cfg.SystemPrompt, refs, req.History, l.cfg.HistoryBudget, req.Message),
		Temperature: l.cfg.Temperature,
		MaxTokens:   l.cfg.MaxTokens,
		Stream:      stream,
	})
	if err != nil {
		return prepared{}, fmt.Errorf("encode chat request: %w", err)
	}
	p := prepared{body: body, conf: conf}
	if len(refs) > 0 {
		p.citations = make([]nlpclient.Citation, 0, len(refs))
	}
	for _, r := range refs {
		p.citations = append(p.citations, nlpclient.Citation{ID: r.ID, Question: r.Question})
	}
	return p, nil
}

// answer is the model's text as an Answer. Its confidence is the knowledge base's
// confidence in its best match: the model answers from those entries only, so its
// answer is as good as they fit the question. Its citations are the entries given.
func (p prepared) answer(text string) nlpclient.Answer {
	return nlpclient.Answer{Text: text, Source: nlpclient.SourceLLM, Confidence: p.conf, Citations: p.citations}
}

// Answer asks the model for a complete answer. When the model cannot answer in time
// (the deadline passes, the breaker is open, the bulkhead is full, the upstream fails)
// it returns, with a nil error, the knowledge base's answer if it is confident
// (SourceFAQ), else the fallback text (SourceFallback). It returns an error only when
// ctx ends (the context's error, at once, with the upstream call abandoned), or if the
// request cannot be encoded.
func (l *LLM) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nlpclient.Answer{}, err
	}
	dctx, cancel := context.WithTimeoutCause(ctx, l.cfg.Timeout, errDeadline)
	defer cancel()
	faq := l.faq()
	p, err := l.prepare(faq, req, false)
	if err != nil {
		return nlpclient.Answer{}, err
	}
	c := &call{caller: ctx, body: p.body}
	c.deadline, _ = dctx.Deadline()
	text, err := l.exec.WithContext(dctx).GetWithExecution(func(exec failsafe.Execution[string]) (string, error) {
		return l.answerOnce(exec.Context(), c, exec.Retries())
	})
	if err == nil {
		if l.guard != nil && l.guard.leaks(faq.KB(), req, text) {
			l.withheld(req, false, 0)
			return l.fallbackAnswer(ctx, faq, req, reasonPromptLeak, nil), nil
		}
		return p.answer(text), nil
	}
	if ctx.Err() != nil {
		return nlpclient.Answer{}, ctx.Err()
	}
	return l.fallbackAnswer(ctx, faq, req, reason(dctx, err), err), nil
}

// Stream asks the model for a streamed answer and passes its tokens to emit as they
// arrive; the pieces emitted, joined, are always the returned Answer's Text. When the
// system prompt is guarded, the tail of the text that could still become a run of the
// prompt is held back until it cannot (see leakGuard), or the answer ends; an answer that
// does repeat the prompt is treated as a failure: the fallback if nothing was emitted
// yet, else the part emitted, Incomplete, with ErrStreamCut.
//
// Before the first token, failures are retried until the first-token deadline, then
// Stream emits and returns the knowledge base's confident answer or the fallback text,
// with a nil error. After the first token nothing is retried: when the stream breaks
// (the connection is cut, a gap between tokens exceeds the idle timeout, an error event
// comes, or it ends without [DONE]) Stream returns the partial answer, Incomplete set,
// and an error wrapping ErrStreamCut. When emit fails (the client is gone) the upstream
// call is abandoned and that error is returned; when ctx ends, the context's error.
func (l *LLM) Stream(ctx context.Context, req nlpclient.Request, emit func(string) error) (nlpclient.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nlpclient.Answer{}, err
	}
	start := time.Now()
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	first := time.AfterFunc(l.cfg.FirstToken, func() { cancel(errDeadline) })
	defer first.Stop()
	faq := l.faq()
	p, err := l.prepare(faq, req, true)
	if err != nil {
		return nlpclient.Answer{}, err
	}
	s := &stream{
		l:      l,
		c:      &call{caller: ctx, deadline: start.Add(l.cfg.FirstToken), body: p.body, stream: true},
		start:  start,
		first:  first,
		cancel: cancel,
		emit:   emit,
	}
	// A guard holds some tokens back, and an emit error from it is a leak, not the
	// client.
	var guard *guardedEmit
	if l.guard != nil {
		guard = &guardedEmit{scan: l.guard.scan(faq.KB(), req), emit: emit}
		s.guard = guard
	}
	defer s.stop()
	text, err := l.exec.WithContext(sctx).GetWithExecution(func(exec failsafe.Execution[string]) (string, error) {
		return s.attempt(exec.Context(), exec.Retries())
	})
	// At the end of the answer, and when the stream breaks with no protected item in
	// it, what the guard holds back is shown, as it would have been unguarded: like a
	// JSON answer, it may end with the start of an item, never a whole one.
	if guard != nil && !guard.leaked && s.emitErr == nil && (err == nil || s.started && ctx.Err() == nil) {
		if ferr := guard.flush(); ferr != nil {
			err, s.emitErr = ferr, ferr
		}
	}
	partial := func() nlpclient.Answer {
		a := p.answer(string(s.sent()))
		a.Incomplete = true
		return a
	}
	switch {
	case err == nil:
		return p.answer(text), nil
	case guard != nil && guard.leaked:
		l.withheld(req, true, len(s.sent()))
		if len(s.sent()) > 0 {
			l.obs.Fallback(reasonPromptLeak)
			return partial(), fmt.Errorf("%w: %w", nlpclient.ErrStreamCut, errPromptLeak)
		}
		err = errPromptLeak
	case s.emitErr != nil:
		return partial(), s.emitErr
	case ctx.Err() != nil:
		if len(s.sent()) > 0 {
			return partial(), ctx.Err()
		}
		return nlpclient.Answer{}, ctx.Err()
	case s.started && len(s.sent()) > 0:
		return partial(), fmt.Errorf("%w: %v", nlpclient.ErrStreamCut, err)
	}
	why := reason(sctx, err)
	if errors.Is(err, errPromptLeak) {
		why = reasonPromptLeak
	}
	a := l.fallbackAnswer(ctx, faq, req, why, err)
	if err := emit(a.Text); err != nil {
		return a, err
	}
	return a, nil
}

// fallbackAnswer answers without the model: the knowledge base's answer if it is
// confident, else the fallback text.
func (l *LLM) fallbackAnswer(ctx context.Context, faq FAQ, req nlpclient.Request, why string, err error) nlpclient.Answer {
	l.obs.Fallback(why)
	if why == reasonUpstream {
		l.log.Warn("model upstream failed, answering without it", zap.String("request_id", req.RequestID), zap.String("upstream", l.cfg.Upstream), zap.Error(err))
	}
	// The request's context may be past its deadline; the knowledge base answers in
	// microseconds and must still answer.
	if a, err := faq.Answer(context.WithoutCancel(ctx), req); err == nil && a.Source == nlpclient.SourceFAQ {
		return a
	}
	text := l.fallback
	if text == "" {
		text = fallbackTexts[faq.KB().Language]
	}
	return nlpclient.Answer{Text: text, Source: nlpclient.SourceFallback}
}

// withheld records an answer withheld because it repeated the system prompt: the
// metric is the fallback's; the log says nothing of the text.
func (l *LLM) withheld(req nlpclient.Request, stream bool, shown int) {
	l.log.Warn("model answer withheld: it repeated the system prompt",
		zap.String("request_id", req.RequestID), zap.String("upstream", l.cfg.Upstream), zap.Bool("stream", stream), zap.Int("bytes_shown", shown))
}

// guardedEmit passes a stream's text on to emit as far as the guard's scan allows.
type guardedEmit struct {
	scan   *leakScan
	emit   func(string) error
	text   []byte // read
	sent   int    // bytes of text emitted
	leaked bool
}

// write reads a token and emits what of the answer has become safe to show. It returns
// errPromptLeak when the answer repeats the prompt, or emit's error.
func (g *guardedEmit) write(d []byte) error {
	g.text = append(g.text, d...)
	if g.scan.feedBytes(d) {
		g.leaked = true
		return errPromptLeak
	}
	return g.out(g.scan.safe())
}

// flush emits what is held back, once the answer is complete.
func (g *guardedEmit) flush() error { return g.out(len(g.text)) }

// out emits the text up to end that was not emitted yet.
func (g *guardedEmit) out(end int) error {
	if end <= g.sent {
		return nil
	}
	if err := g.emit(string(g.text[g.sent:end])); err != nil {
		return err
	}
	g.sent = end
	return nil
}

// nopObserver discards metrics.
type nopObserver struct{}

func (nopObserver) UpstreamDone(time.Duration, string) {}
func (nopObserver) FirstToken(time.Duration)           {}
func (nopObserver) Retry()                             {}
func (nopObserver) BreakerState(string)                {}
func (nopObserver) Fallback(string)                    {}

// breakerStates name the breaker's states for LLMObserver.BreakerState.
var breakerStates = map[circuitbreaker.State]string{
	circuitbreaker.ClosedState:   "closed",
	circuitbreaker.OpenState:     "open",
	circuitbreaker.HalfOpenState: "half_open",
}
