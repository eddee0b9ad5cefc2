package gateway

import (
	"fmt"
	"time"
)

// Config holds the gateway's settings. Zero values take the defaults (see Defaults).
type Config struct {
	// MaxBodyBytes caps a request body; larger is 413 too_large. Default 16384.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaderBytes caps the request line and headers; larger is 431. Default 8192.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxMessageChars caps a chat message, in runes. Default 2000.
	MaxMessageChars int `yaml:"max_message_chars"`
	// ReadHeaderTimeout bounds reading the request headers. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading the whole request. Default 15s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a non-streaming response, set per request so that SSE streams
	// are not cut. Default 15s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds a keep-alive connection waiting for its next request. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// RequestTimeout is the deadline of one chat turn, streamed or not. Default 10s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// DrainDelay is how long Run keeps serving after its context ends, with /readyz
	// answering 503, so that load balancers stop sending before the listener closes.
	// Default 0 (close at once); config.yaml ships 5s. A preStop sleep in front of
	// SIGTERM does the same job and can stand in for it.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// ShutdownTimeout bounds the wait for in-flight requests once the listener is
	// closed. Default 20s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// QueueWait is how long a chat request whose turn went to the spillover queue may
	// wait for its result (queue.max_wait); its write deadline is extended by as much.
	// 0 when spillover is off. Set from the queue section, so it has no key here.
	QueueWait time.Duration `yaml:"-"`
	// TokenMaxTTL is the longest lifetime POST /v1/tokens grants. Default 24h.
	TokenMaxTTL time.Duration `yaml:"token_max_ttl"`
	// SSEHeartbeat is the interval of comment lines that keep an idle stream open
	// through proxies. Default 15s.
	SSEHeartbeat time.Duration `yaml:"sse_heartbeat"`
	// KBMaxBodyBytes caps the body of a knowledge-base route (/v1/admin/kb/...), which
	// may be a whole base; larger is 413 too_large. Set from knowledge.max_bytes, so it
	// has no key here; 0 is MaxBodyBytes.
	KBMaxBodyBytes int64 `yaml:"-"`
	// Version is the build's version, shown by GET /healthz. Set by the program, so it
	// has no key.
	Version string `yaml:"-"`
	// Demo is the demo mode, set from the top-level demo section.
	Demo DemoConfig `yaml:"-"`
}

// DemoConfig is the demo mode: GET / serves a chat page for the demo tenants, and
// POST /v1/demo/token gives any visitor a short-lived token for a new anonymous user of
// one of them. Off by default; the shipped config.yaml turns it on for its demo
// tenants. Turn it off before real users' tenants are configured.
type DemoConfig struct {
	Enabled bool `yaml:"enabled"`
	// TokenTTL is the lifetime of a demo token; the page renews it while in use.
	// Default 30m, at most token_max_ttl.
	TokenTTL time.Duration `yaml:"token_ttl"`
	// Tenants are the tenants on the demo page, in this order; each needs an HS256 key.
	// Empty: every tenant with an HS256 key, ordered by id.
	Tenants []string `yaml:"tenants"`
}

// DefaultDemoTokenTTL is the default DemoConfig.TokenTTL.
const DefaultDemoTokenTTL = 30 * time.Minute

// Validate returns an error naming the first field, by its YAML key, that cannot work;
// the caller prefixes the section. Whether the tenants exist is checked by New.
func (d *DemoConfig) Validate(tokenMaxTTL time.Duration) error {
	if d.TokenTTL < time.Minute || d.TokenTTL > tokenMaxTTL {
		return fmt.Errorf("token_ttl: %v is not between 1m and server.token_max_ttl (%v)", d.TokenTTL, tokenMaxTTL)
	}
	return nil
}

// Default values of Config.
const (
	DefaultMaxBodyBytes      = 16 << 10
	DefaultMaxHeaderBytes    = 8 << 10
	DefaultMaxMessageChars   = 2000
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 15 * time.Second
	DefaultWriteTimeout      = 15 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultShutdownTimeout   = 20 * time.Second
	DefaultTokenMaxTTL       = 24 * time.Hour
	DefaultSSEHeartbeat      = 15 * time.Second
)

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	var c Config
	c.Defaults()
	return c
}

// Defaults sets every zero numeric field to its default. It leaves DrainDelay alone,
// whose zero is a valid setting.
func (c *Config) Defaults() {
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&c.MaxMessageChars, DefaultMaxMessageChars)
	setDefault(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&c.ReadTimeout, DefaultReadTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.RequestTimeout, DefaultRequestTimeout)
	setDefault(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDefault(&c.TokenMaxTTL, DefaultTokenMaxTTL)
	setDefault(&c.SSEHeartbeat, DefaultSSEHeartbeat)
	setDefault(&c.Demo.TokenTTL, DefaultDemoTokenTTL)
}

func setDefault[T int | int64 | time.Duration](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}

// Validate returns an error naming the first field, by its YAML key, that cannot work
// ("max_body_bytes: must be positive"); the caller prefixes the section.
func (c *Config) Validate() error {
	positive := []struct {
		key string
		ok  bool
	}{
		{"max_body_bytes", c.MaxBodyBytes > 0},
		{"max_header_bytes", c.MaxHeaderBytes > 0},
		{"max_message_chars", c.MaxMessageChars > 0},
		{"read_header_timeout", c.ReadHeaderTimeout > 0},
		{"read_timeout", c.ReadTimeout > 0},
		{"write_timeout", c.WriteTimeout > 0},
		{"idle_timeout", c.IdleTimeout > 0},
		{"request_timeout", c.RequestTimeout > 0},
		{"shutdown_timeout", c.ShutdownTimeout > 0},
		{"sse_heartbeat", c.SSEHeartbeat > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s: must be positive", p.key)
		}
	}
	if c.DrainDelay < 0 {
		return fmt.Errorf("drain_delay: %v is negative", c.DrainDelay)
	}
	if c.TokenMaxTTL < time.Second {
		return fmt.Errorf("token_max_ttl: %v is under 1s", c.TokenMaxTTL)
	}
	if int64(c.MaxMessageChars) > c.MaxBodyBytes {
		return fmt.Errorf("max_message_chars: %d exceeds max_body_bytes %d", c.MaxMessageChars, c.MaxBodyBytes)
	}
	return nil
}
