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

// RateLimit is a token bucket: RPS tokens per second, at most Burst at once.
type RateLimit struct {
	RPS   float64 `yaml:"rps"`
	Burst int     `yaml:"burst"`
}

// Engine selects and configures a tenant's answer engine.
type Engine struct {
	// Kind is the engine: "faq" (the built-in FAQ engine, the default).
	Kind string `yaml:"kind"`
	// KB is the path of the tenant's knowledge base file (YAML, schema of kb/*.yaml).
	KB string `yaml:"kb"`
	// MinConfidence is the confidence below which the FAQ engine asks to clarify
	// instead of answering; 0 keeps the engine's default.
	MinConfidence float64 `yaml:"min_confidence"`
}

// ctxKey is the unexported type of this package's context keys.
type ctxKey struct{}

// Principal is who made a request: the verified tenant and user.
type Principal struct {
	Tenant ID
	User   string
	// TokenID is the JWT's jti, for logs and revocation.
	TokenID string
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
