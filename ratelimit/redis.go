package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/fengda-ai/fengda/tenant"
)

// Key names one rate limit: a tenant's own (User empty) or one of its users'.
type Key struct {
	Tenant tenant.ID
	User   string // the verified user (JWT sub); empty for the tenant's own limit
}

// Rate is a limit: RPS requests a second, at most Burst at once.
type Rate struct {
	RPS   float64
	Burst int
}

// Decision is a limiter's answer for one request.
type Decision struct {
	Allowed bool
	// RetryAfter is, for a refused request, how long until one request would pass.
	RetryAfter time.Duration
}

// maxRateRPS caps the rate given to Redis: above a billion a second, a limit is as good
// as none, and the conversion to whole events per period stays exact.
const maxRateRPS = 1e9

// userHashBytes is how much of a user's SHA-256 goes into a key: 128 bits, so two users
// of one tenant do not share a limit by accident.
const userHashBytes = 16

// RedisLimiterConfig configures a RedisLimiter. Zero values take the documented defaults.
type RedisLimiterConfig struct {
	// KeyPrefix starts every key (default "fd:"). It must not contain '{' or '}', which
	// would move the hash tag.
	KeyPrefix string `yaml:"key_prefix"`
}

// RedisLimiter is a rate limit shared by every replica using the same Redis: the
// generic cell rate algorithm of github.com/go-redis/redis_rate, one Lua script call
// per decision, timed by the Redis server's clock so replicas' clocks do not matter.
// Its keys, one string each, share the tenant's hash tag:
//
//	<prefix>rl:{<tenant>}:t          the tenant's own limit
//	<prefix>rl:{<tenant>}:u:<hash>   one user's limit; <hash> is the first 128 bits of
//	                                 SHA-256 of the user id, in hex
//
// A user id (often a phone number) never appears in a key name, where monitoring tools
// would show it. Each key expires once its limit has refilled (after burst/rps seconds
// at most), so idle users leave nothing behind.
//
// A RedisLimiter is safe for concurrent use.
type RedisLimiter struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedisLimiter validates cfg and returns a limiter using client, which the caller
// owns and closes; its calls are bounded by the context given to Allow.
func NewRedisLimiter(client redis.UniversalClient, cfg RedisLimiterConfig) (*RedisLimiter, error) {
	if client == nil {
		return nil, errors.New("ratelimit: redis limiter: nil client")
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		return nil, fmt.Errorf("ratelimit: redis limiter: key_prefix %q must not contain braces", cfg.KeyPrefix)
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "fd:"
	}
	return &RedisLimiter{limiter: redis_rate.NewLimiter(rateClient{client}), prefix: cfg.KeyPrefix}, nil
}

// Allow takes one request from k's allowance under r and says whether it may pass. It
// returns an error when Redis does not answer before ctx ends, or for a rate that is
// not positive.
func (l *RedisLimiter) Allow(ctx context.Context, k Key, r Rate) (Decision, error) {
	lim, err := gcraLimit(r)
	if err != nil {
		return Decision{}, err
	}
	res, err := l.limiter.Allow(ctx, l.key(k), lim)
	if err != nil {
		return Decision{}, fmt.Errorf("redis rate limit of tenant %s: %w", k.Tenant, err)
	}
	if res.Allowed > 0 {
		return Decision{Allowed: true}, nil
	}
	return Decision{RetryAfter: max(res.RetryAfter, 0)}, nil
}

// key returns the Redis key of k.
func (l *RedisLimiter) key(k Key) string {
	base := l.prefix + "rl:{" + string(k.Tenant) + "}:"
	if k.User == "" {
		return base + "t"
	}
	sum := sha256.Sum256([]byte(k.User))
	return base + "u:" + hex.EncodeToString(sum[:userHashBytes])
}

// gcraLimit converts r into redis_rate's whole events per period.
func gcraLimit(r Rate) (redis_rate.Limit, error) {
	if !(r.RPS > 0) || math.IsInf(r.RPS, 0) || r.Burst < 1 {
		return redis_rate.Limit{}, fmt.Errorf("ratelimit: redis limiter: rate %v/s burst %d is not a limit", r.RPS, r.Burst)
	}
	rps := min(r.RPS, maxRateRPS)
	if rps == math.Trunc(rps) {
		return redis_rate.Limit{Rate: int(rps), Period: time.Second, Burst: r.Burst}, nil
	}
	// One event per emission interval, to the nanosecond.
	return redis_rate.Limit{Rate: 1, Period: time.Duration(float64(time.Second) / rps), Burst: r.Burst}, nil
}

// redisRatePrefix is what redis_rate puts in front of every key it is given.
const redisRatePrefix = "rate:"

// rateClient hands redis_rate a client that takes its "rate:" back off the keys, so
// that they start with the configured prefix like every other Fengda key (and match an
// ACL key pattern such as ~fd:*). TestRedisLimiterKeys checks the keys as stored.
type rateClient struct{ redis.UniversalClient }

func unprefixed(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, redisRatePrefix)
	}
	return out
}

func (c rateClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.Eval(ctx, script, unprefixed(keys), args...)
}

func (c rateClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalSha(ctx, sha1, unprefixed(keys), args...)
}

func (c rateClient) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalRO(ctx, script, unprefixed(keys), args...)
}

func (c rateClient) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalShaRO(ctx, sha1, unprefixed(keys), args...)
}

func (c rateClient) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return c.UniversalClient.Del(ctx, unprefixed(keys)...)
}
