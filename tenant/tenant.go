// Package tenant owns who the tenants are: validated tenant IDs, the registry built from
// configuration, each tenant's verification keys, API keys, quotas and engine settings,
// context helpers, key namespacing and PII redaction for logs.
//
// It must not import other Fengda packages: every other package may depend on it.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// ErrInvalidID is returned by ParseID for a string that is not a valid tenant ID.
var ErrInvalidID = errors.New("invalid tenant id")

// ErrUnknown is returned when a tenant ID or API key names no configured tenant.
var ErrUnknown = errors.New("unknown tenant")

// ID identifies a tenant. The only way to make one from outside input is ParseID,
// so an ID that reached a store, a queue subject or a metric label has been validated.
type ID string

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// ParseID validates s as a tenant ID: lower-case letters, digits and dashes, 1 to 32
// characters, not starting with a dash.
func ParseID(s string) (ID, error) {
	if !idPattern.MatchString(s) {
		return "", fmt.Errorf("%w: %q", ErrInvalidID, s)
	}
	return ID(s), nil
}

// String returns the ID as a string.
func (id ID) String() string { return string(id) }

// RateLimit is a tenant's request rate: RPS requests a second and at most Burst at once
// for the whole tenant, and, when UserRPS is set, UserRPS and UserBurst for each of its
// users (the verified token's sub). A request must pass both.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
	// UserRPS is each user's rate; 0, the default, means no per-user limit.
	UserRPS float64 `yaml:"user_rps"`
	// UserBurst is each user's burst; 0 takes 2×UserRPS.
	UserBurst int `yaml:"user_burst"`
}

// Engine kinds.
const (
	EngineFAQ    = "faq"    // the built-in FAQ engine
	EngineOpenAI = "openai" // an OpenAI-compatible model, grounded on the FAQ
)

// Engine selects and configures a tenant's answer engine.
type Engine struct {
	// Kind is the engine: "faq" (the built-in FAQ engine, the default) or "openai" (an
	// OpenAI-compatible chat completions API, grounded on the knowledge base, with the
	// FAQ engine as its fallback).
	Kind string `yaml:"kind"`
	// KB is the path of the tenant's knowledge base file (YAML, schema of kb/*.yaml).
	KB string `yaml:"kb"`
	// MinConfidence is the confidence below which the FAQ engine asks to clarify
	// instead of answering; 0 keeps the engine's default.
	MinConfidence float64 `yaml:"min_confidence"`
	// LLM configures the model when Kind is "openai". Zero values take the defaults.
	LLM LLM `yaml:"llm"`
}

// LLM configures an OpenAI-compatible upstream (vLLM, Ollama, Xinference, DeepSeek,
// Qwen, OpenAI). Durations and counts left zero take the engine's defaults.
type LLM struct {
	// Upstream names the upstream in metrics and logs; default: the host of BaseURL.
	Upstream string `yaml:"upstream"`
	// BaseURL is the API root: requests go to {base_url}/chat/completions.
	BaseURL string `yaml:"base_url"`
	// Model is the model name sent with each request.
	Model string `yaml:"model"`
	// APIKey is sent as a bearer token; leave it unset for a local server without keys.
	APIKey Secret `yaml:"api_key"`
	// Temperature and MaxTokens are sent with each request.
	Temperature float64 `yaml:"temperature"`
	MaxTokens   int     `yaml:"max_tokens"`
	// SystemPrompt opens every prompt. It must hold no secrets: a user may coax a model
	// into repeating it.
	SystemPrompt string `yaml:"system_prompt"`
	// References is how many knowledge-base entries are given as reference material.
	References int `yaml:"references"`
	// HistoryChars bounds, in characters, the recent history put into the prompt.
	HistoryChars int `yaml:"history_chars"`
	// Timeout bounds a complete JSON answer, retries included.
	Timeout time.Duration `yaml:"timeout"`
	// FirstTokenTimeout bounds a stream's wait for its first token, retries included;
	// IdleTimeout bounds the gap between two tokens.
	FirstTokenTimeout time.Duration `yaml:"first_token_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxRetries is how many times a connection error, 429 or 5xx is retried inside the
	// deadline.
	MaxRetries int `yaml:"max_retries"`
	// BreakerFailures consecutive failures open the circuit breaker; after BreakerDelay
	// one probe is let through.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerDelay    time.Duration `yaml:"breaker_delay"`
	// MaxConcurrent bounds the tenant's concurrent upstream calls (a bulkhead).
	MaxConcurrent int `yaml:"max_concurrent"`
	// HedgeDelay, when set, sends one second request if the first has not answered by then.
	HedgeDelay time.Duration `yaml:"hedge_delay"`
}

// ctxKey is the unexported type of this package's context keys.
type ctxKey struct{}

// Principal is who made a request: the verified tenant and user.
type Principal struct {
	Tenant ID
	User   string
	// TokenID is the JWT's jti, for logs and revocation.
	TokenID string
	// IssuedAt is the JWT's iat, zero when it has none: revoking a user refuses the
	// tokens issued before the revocation.
	IssuedAt time.Time
}

// NewContext returns a context carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal stored by NewContext.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// MaskedConfig is how the secret appears in the start-up log's effective
// configuration: where it comes from (env:NAME, file:PATH), never an inline value.
func (s Secret) MaskedConfig() string {
	switch {
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	case s.Value != "":
		return "(inline value, masked)"
	}
	return ""
}
