// Package tenant owns who the tenants are: validated tenant IDs, the registry built from
// configuration, each tenant's verification keys, API keys, quotas and engine settings,
// context helpers and key namespacing. PII redaction and the tenant log files are
// package logging's.
//
// It must not import other Fengda packages: every other package may depend on it.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/fengda-ai/fengda/nlpclient/openai"
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
// Qwen, OpenAI): the model client's own Config, whose YAML keys and defaults it
// documents, and the secret its api_key refers to.
type LLM struct {
	openai.Config `yaml:",inline"`
	// APIKey is sent as a bearer token; leave it unset for a local server without keys.
	// It is resolved into Config.APIKey by Resolve.
	APIKey Secret `yaml:"api_key"`
}

// Resolve returns the model client's configuration with its API key resolved (getenv
// reads Secret.Env).
func (l LLM) Resolve(getenv func(string) string) (openai.Config, error) {
	cfg := l.Config
	if l.APIKey != (Secret{}) {
		key, err := ResolveSecret(l.APIKey, getenv)
		if err != nil {
			return openai.Config{}, err
		}
		cfg.APIKey = string(key)
	}
	return cfg, nil
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
	// Role is the token's role claim: "user" (the default), "agent" or "admin".
	Role string
	// Name is the token's name claim, an agent's display name; may be empty.
	Name string
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
