package session

import "time"

// Store kinds: the values of Config.Store.
const (
	StoreMemory = "memory"
	StoreRedis  = "redis"
)

// Config is the session section of the configuration: which store, how much it keeps,
// and where Redis is (also for the rate limits shared through Redis).
type Config struct {
	Store    string        `yaml:"store"`     // memory | redis
	MaxTurns int           `yaml:"max_turns"` // turns kept per session
	TTL      time.Duration `yaml:"ttl"`       // sliding expiry of a session
	Memory   struct {
		MaxBytes int64 `yaml:"max_bytes"` // the memory store's budget
	} `yaml:"memory"`
	Redis RedisClientConfig `yaml:"redis"`
}

// DefaultConfig returns the documented defaults: the memory store, 100 turns, 7 days,
// 256 MiB, and a local Redis for when the store is switched to it.
func DefaultConfig() Config {
	c := Config{Store: StoreMemory, MaxTurns: 100, TTL: 168 * time.Hour}
	c.Memory.MaxBytes = 256 << 20
	c.Redis = RedisClientConfig{
		URL:          DefaultRedisURL,
		KeyPrefix:    DefaultKeyPrefix,
		DialTimeout:  DefaultRedisDialTimeout,
		ReadTimeout:  DefaultRedisReadTimeout,
		WriteTimeout: DefaultRedisWriteTimeout,
	}
	return c
}

// MemoryStoreConfig is the MemoryStore's part of c.
func (c Config) MemoryStoreConfig() MemoryConfig {
	return MemoryConfig{MaxTurns: c.MaxTurns, TTL: c.TTL, MaxBytes: c.Memory.MaxBytes}
}

// RedisStoreConfig is the RedisStore's part of c.
func (c Config) RedisStoreConfig() RedisConfig {
	return RedisConfig{KeyPrefix: c.Redis.KeyPrefix, MaxTurns: c.MaxTurns, TTL: c.TTL}
}
