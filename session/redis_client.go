package session

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/fengda-ai/fengda/logging"
	"github.com/redis/go-redis/v9"
)

// RedisClientConfig says how to reach Redis, and under which prefix Fengda's keys live
// there. Zero values take the documented defaults.
type RedisClientConfig struct {
	// URL is redis://[user:password@]host:port/db or rediss:// for TLS (default
	// "redis://127.0.0.1:6379/0"). Several comma-separated addresses (host:port or
	// URLs; credentials, db and TLS come from the first) name Sentinels when
	// MasterName is set and Cluster nodes otherwise.
	URL string `yaml:"url"`
	// MasterName is the Sentinel master name; empty for a single node or a Cluster.
	MasterName string `yaml:"master_name"`
	// KeyPrefix starts every key of the store and of the shared rate limits (default
	// "fd:"); NewRedisClient does not use it.
	KeyPrefix string `yaml:"key_prefix"`
	// DialTimeout bounds one connection attempt (default 2s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReadTimeout bounds waiting for a reply when the context has no earlier deadline
	// (default 1s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds sending a command when the context has no earlier deadline
	// (default 1s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// Defaults of RedisClientConfig.
const (
	DefaultRedisURL          = "redis://127.0.0.1:6379/0"
	DefaultKeyPrefix         = "fd:"
	DefaultRedisDialTimeout  = 2 * time.Second
	DefaultRedisReadTimeout  = time.Second
	DefaultRedisWriteTimeout = time.Second
)

// NewRedisClient builds a single-node, Sentinel or Cluster client for a RedisStore. It
// dials nothing yet. The options are chosen for a store of conversation turns:
//
//   - MaxRetries -1: go-redis would otherwise resend a command whose reply was lost,
//     and a resent append could store a turn twice. Callers retry with the same
//     ClientMsgID instead, which the store deduplicates.
//   - ContextTimeoutEnabled: a request's deadline bounds the command, so a slow Redis
//     turns into ErrUnavailable in time for a 503 rather than a hung request.
//   - MaxRedirects -1, for the same reason in a Cluster (see below).
//   - One dial attempt per command: a down Redis fails fast instead of after backoff.
//   - Reads go to the primary (no ReadOnly, RouteByLatency or RouteRandomly), so a
//     user reads the turn they just wrote.
func NewRedisClient(cfg RedisClientConfig) (redis.UniversalClient, error) {
	if cfg.DialTimeout < 0 || cfg.ReadTimeout < 0 || cfg.WriteTimeout < 0 {
		return nil, errors.New("session: redis client: negative timeout")
	}
	if cfg.URL == "" {
		cfg.URL = DefaultRedisURL
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultRedisDialTimeout
	}
	if cfg.ReadTimeout == 0 {
		cfg.ReadTimeout = DefaultRedisReadTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultRedisWriteTimeout
	}
	opts := &redis.UniversalOptions{
		MasterName:            cfg.MasterName,
		DialTimeout:           cfg.DialTimeout,
		DialerRetries:         1,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		// A ClusterClient resends a command after EOF or a timeout through its
		// redirect loop, whatever MaxRetries says; -1 turns that loop off. A MOVED
		// reply then fails one command and reloads the slot map for the next.
		MaxRedirects: -1,
	}
	for i, part := range strings.Split(cfg.URL, ",") {
		part = strings.TrimSpace(part)
		addr := part
		if strings.Contains(part, "://") {
			if !strings.HasPrefix(part, "redis://") && !strings.HasPrefix(part, "rediss://") {
				return nil, fmt.Errorf("session: redis client: url %q: scheme must be redis or rediss", logging.RedactURLs(part))
			}
			o, err := redis.ParseURL(part)
			if err != nil {
				return nil, fmt.Errorf("session: redis client: url %q: %w", logging.RedactURLs(part), err)
			}
			addr = o.Addr
			if i == 0 {
				opts.Username, opts.Password, opts.DB, opts.TLSConfig = o.Username, o.Password, o.DB, o.TLSConfig
			}
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("session: redis client: address %q: %w", logging.RedactURLs(part), err)
		}
		opts.Addrs = append(opts.Addrs, addr)
	}
	if len(opts.Addrs) > 1 && opts.MasterName == "" && opts.DB != 0 {
		return nil, errors.New("session: redis client: a cluster has only db 0")
	}
	return redis.NewUniversalClient(opts), nil
}
