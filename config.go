package main

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/gateway"
	"github.com/fengda-ai/fengda/insights"
	"github.com/fengda-ai/fengda/internal/yamlenv"
	"github.com/fengda-ai/fengda/knowledge"
	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// defaultConfigYAML is config.yaml as shipped, so a binary copied anywhere still starts
// with the demo tenants when no config file is found.
//
//go:embed config.yaml
var defaultConfigYAML []byte

// Config is the whole configuration. Every scalar key a.b.c can be overridden by the
// environment variable FENGDA_A_B_C.
type Config struct {
	Server    ServerConfig     `yaml:"server"`
	Session   session.Config   `yaml:"session"`
	Dialogue  dialogue.Config  `yaml:"dialogue"`
	Queue     queue.Config     `yaml:"queue"`
	RateLimit ratelimit.Config `yaml:"ratelimit"`
	// Knowledge bounds the tenants' live knowledge bases and the versions kept.
	Knowledge knowledge.Config `yaml:"knowledge"`
	// Insights bounds the records of answered turns and feedback kept per tenant.
	Insights insights.Config `yaml:"insights"`
	Log      logging.Config  `yaml:"log"`
	// Demo turns on the demo page and anonymous demo tokens. Off unless the file says
	// so; the shipped config.yaml does, for its demo tenants.
	Demo    gateway.DemoConfig `yaml:"demo"`
	Tenants []tenant.Config    `yaml:"tenants"`
}

// ServerConfig is the HTTP edge: its address plus the gateway's own settings.
type ServerConfig struct {
	Addr string `yaml:"addr"`
	// AdminAddr is the loopback address of the admin listener (pprof under
	// /debug/pprof/); empty, the default, means none.
	AdminAddr      string `yaml:"admin_addr"`
	gateway.Config `yaml:",inline"`
}

// defaultConfig holds the defaults that apply before any file or environment.
func defaultConfig() Config {
	var c Config
	c.Server.Addr = ":8080"
	c.Server.Config = gateway.DefaultConfig()
	c.Server.DrainDelay = 5 * time.Second // the gateway's own default is 0, for embedding
	c.Session = session.DefaultConfig()
	c.Queue.Defaults()
	c.Knowledge.Defaults()
	c.Insights.Defaults()
	c.RateLimit = ratelimit.DefaultConfig()
	c.Log = logging.DefaultConfig()
	c.Demo.TokenTTL = gateway.DefaultDemoTokenTTL
	return c
}

// loadConfig reads defaults, then the file at path ("" means ./config.yaml if present,
// else the embedded copy), then the environment. It returns the config and where it
// came from.
func loadConfig(path string, getenv func(string) string) (Config, string, error) {
	cfg := defaultConfig()
	data, source := defaultConfigYAML, "built-in config.yaml"
	switch {
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, "", fmt.Errorf("read config: %w", err)
		}
		data, source = b, path
	default:
		if b, err := os.ReadFile("config.yaml"); err == nil {
			data, source = b, "config.yaml"
		}
	}
	data, err := yamlenv.Expand(data, getenv)
	if err != nil {
		return cfg, "", fmt.Errorf("%s: %w", source, err)
	}
	if err := yamlenv.DecodeStrict(data, &cfg); err != nil {
		return cfg, "", fmt.Errorf("%s: %w", source, err)
	}
	if err := yamlenv.ApplyEnv(&cfg, "FENGDA", getenv); err != nil {
		return cfg, "", err
	}
	if err := cfg.validate(); err != nil {
		return cfg, "", err
	}
	return cfg, source, nil
}

func (c *Config) validate() error {
	switch {
	case c.Server.Addr == "":
		return errors.New("server.addr: must not be empty")
	case c.Server.AdminAddr != "" && !loopback(c.Server.AdminAddr):
		return fmt.Errorf("server.admin_addr: %q is not a loopback address (e.g. 127.0.0.1:6060): profiles must not be reachable from the network", c.Server.AdminAddr)
	case c.Session.Store != "memory" && c.Session.Store != "redis":
		return fmt.Errorf("session.store: %q is not memory or redis", c.Session.Store)
	case c.Session.MaxTurns < 1 || c.Session.MaxTurns > 10000:
		return fmt.Errorf("session.max_turns: %d out of range 1..10000", c.Session.MaxTurns)
	case c.Session.TTL < time.Minute:
		return fmt.Errorf("session.ttl: %s is shorter than 1m", c.Session.TTL)
	case c.Session.Memory.MaxBytes < 1<<20:
		return fmt.Errorf("session.memory.max_bytes: %d is below 1 MiB", c.Session.Memory.MaxBytes)
	case c.Session.Store == "redis" && c.Session.Redis.URL == "":
		return errors.New("session.redis.url: required when session.store is redis")
	case c.Session.Redis.DialTimeout <= 0:
		return errors.New("session.redis.dial_timeout: must be positive")
	case c.Session.Redis.ReadTimeout <= 0:
		return errors.New("session.redis.read_timeout: must be positive")
	case c.Session.Redis.WriteTimeout <= 0:
		return errors.New("session.redis.write_timeout: must be positive")
	}
	if err := c.RateLimit.Validate(); err != nil {
		return err
	}
	switch {
	case c.RateLimit.Store == ratelimit.StoreRedis && c.Session.Redis.URL == "":
		return errors.New("session.redis.url: required when ratelimit.store is redis")
	case len(c.Tenants) == 0:
		return errors.New("tenants: at least one tenant is required")
	}
	if err := c.Log.Validate(); err != nil {
		return err
	}
	if err := c.Dialogue.Validate(); err != nil {
		return err
	}
	if err := c.Server.Config.Validate(); err != nil {
		return fmt.Errorf("server.%w", err)
	}
	if err := c.Demo.Validate(c.Server.TokenMaxTTL); err != nil {
		return fmt.Errorf("demo.%w", err)
	}
	if err := c.Queue.Validate(); err != nil {
		return err
	}
	if err := c.Knowledge.Validate(); err != nil {
		return fmt.Errorf("knowledge.%w", err)
	}
	if err := c.Insights.Validate(); err != nil {
		return err
	}
	// A queued turn is answered within the turn deadline and then stored.
	return c.Queue.ValidateDeadline(c.Server.RequestTimeout + c.Dialogue.StoreTimeout)
}

// loopback reports whether addr is host:port with a loopback host: localhost or a
// loopback IP. An empty host (":6060") listens on every interface, so it is not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// effectiveConfig is cfg as a tree of keys for the start-up log, every secret masked:
// a tenant secret shows where it comes from (env:NAME, file:PATH) but never an inline
// value, and every URL (Redis, NATS, model base URLs) loses its password.
func effectiveConfig(cfg Config) yamlenv.Tree {
	return yamlenv.Masked(cfg, logging.RedactURLs)
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}
