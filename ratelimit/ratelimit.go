// Package ratelimit owns the request rate limits of tenants and their users: the
// switch and the shared store's timeouts (config key ratelimit), the local token
// buckets, the Redis GCRA limiter shared by replicas, and the fall back to local
// buckets while Redis fails. Each tenant's own limits are part of its tenant config
// (tenants[].rate_limit, tenant.RateLimit), read through Tenants.
//
// It must not know about HTTP: the gateway turns a *LimitedError into a 429 with
// Retry-After. It is given its Redis client and must not build one.
package ratelimit

import (
	"fmt"
	"time"
)

// Where limits are counted: the values of Config.Store.
const (
	StoreLocal = "local" // each process on its own: N replicas admit N times a limit
	StoreRedis = "redis" // once for every replica, in Redis
)

// Defaults of Config.
const (
	DefaultTimeout = 50 * time.Millisecond
	DefaultBackoff = time.Second
)

// Config switches the rate limits (each tenant's, and each user's where the tenant
// sets one) on or off, and says where they are counted.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// Store is local (each process counts on its own, so N replicas admit N times a
	// limit) or redis (counted once for every replica, in the Redis of session.redis,
	// under its key_prefix, whatever session.store says).
	Store string `yaml:"store"`
	// Timeout bounds one call to Redis; past it the request is limited locally.
	Timeout time.Duration `yaml:"timeout"`
	// Backoff is how long limits stay local after a failed call before Redis is tried
	// again, so that an outage does not add Timeout to every request.
	Backoff time.Duration `yaml:"backoff"`
}

// DefaultConfig returns the documented defaults: limits on, counted locally.
func DefaultConfig() Config {
	return Config{Enabled: true, Store: StoreLocal, Timeout: DefaultTimeout, Backoff: DefaultBackoff}
}

// Validate reports the first bad value, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Store != StoreLocal && c.Store != StoreRedis:
		return fmt.Errorf("ratelimit.store: %q is not local or redis", c.Store)
	case c.Timeout <= 0:
		return fmt.Errorf("ratelimit.timeout: %s is not positive", c.Timeout)
	case c.Backoff <= 0:
		return fmt.Errorf("ratelimit.backoff: %s is not positive", c.Backoff)
	}
	return nil
}
