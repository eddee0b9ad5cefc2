package tenant

import (
	"errors"
	"time"
)

// ErrUnauthenticated is returned by Registry.Verify for any token that must be refused:
// malformed, forged, expired, wrong algorithm, unknown kid or tenant, wrong iss/aud.
var ErrUnauthenticated = errors.New("unauthenticated")

// Secret is a secret value read from the environment or a file. Value is for demo
// tenants only and is marked as such in config.yaml.
type Secret struct {
	Env   string `yaml:"env"`   // name of an environment variable holding the secret
	File  string `yaml:"file"`  // path of a file holding the secret (trailing newline trimmed)
	Value string `yaml:"value"` // inline value: demo tenants only
}

// KeyConfig is one JWT key of a tenant, selected by the token's kid header.
type KeyConfig struct {
	KID string `yaml:"kid"`
	// Alg is HS256 (Secret), or EdDSA / RS256 (PublicKeyFile, PEM: verify only).
	Alg           string `yaml:"alg"`
	Secret        Secret `yaml:"secret"`
	PublicKeyFile string `yaml:"public_key_file"`
}

// Config is one tenant as written in config.yaml under tenants:.
type Config struct {
	ID             string        `yaml:"id"`
	Name           string        `yaml:"name"`
	Issuer         string        `yaml:"issuer"`   // JWT iss; default "fengda"
	Audience       string        `yaml:"audience"` // JWT aud; default "fengda"
	Keys           []KeyConfig   `yaml:"keys"`
	APIKeys        []Secret      `yaml:"api_keys"`
	RateLimit      RateLimit     `yaml:"rate_limit"`
	Engine         Engine        `yaml:"engine"`
	FallbackAnswer string        `yaml:"fallback_answer"`
	HistoryTTL     time.Duration `yaml:"history_ttl"` // 0: the session store's default
}

// Tenant is one configured, validated tenant.
type Tenant struct {
	ID             ID
	Name           string
	RateLimit      RateLimit
	Engine         Engine
	FallbackAnswer string
	HistoryTTL     time.Duration
}

// Registry holds the configured tenants. It is safe for concurrent use.
type Registry struct{}

// NewRegistry validates cfgs and builds the registry. getenv resolves Secret.Env.
func NewRegistry(cfgs []Config, getenv func(string) string) (*Registry, error) {
	panic("unimplemented")
}

// Get returns the tenant with the given ID, or ErrUnknown.
func (r *Registry) Get(id ID) (*Tenant, error) { panic("unimplemented") }

// Tenants returns every tenant, ordered by ID.
func (r *Registry) Tenants() []*Tenant { panic("unimplemented") }

// ByAPIKey returns the tenant owning key (compared in constant time), or ErrUnknown.
func (r *Registry) ByAPIKey(key string) (*Tenant, error) { panic("unimplemented") }

// Mint signs a user token for tenant id with the tenant's first signing key.
func (r *Registry) Mint(id ID, user string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error) {
	panic("unimplemented")
}

// Verify checks token and returns who it names; every failure wraps ErrUnauthenticated.
func (r *Registry) Verify(token string, now time.Time) (Principal, error) { panic("unimplemented") }
