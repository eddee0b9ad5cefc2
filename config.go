package main

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/gateway"
	"github.com/fengda-ai/fengda/queue"
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
	Server    ServerConfig    `yaml:"server"`
	Session   SessionConfig   `yaml:"session"`
	Dialogue  dialogue.Config `yaml:"dialogue"`
	Queue     queue.Config    `yaml:"queue"`
	RateLimit RateLimitConfig `yaml:"ratelimit"`
	Log       LogConfig       `yaml:"log"`
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

// SessionConfig selects and sizes the conversation store.
type SessionConfig struct {
	Store    string        `yaml:"store"` // memory | redis
	MaxTurns int           `yaml:"max_turns"`
	TTL      time.Duration `yaml:"ttl"`
	Memory   struct {
		MaxBytes int64 `yaml:"max_bytes"`
	} `yaml:"memory"`
	Redis RedisConfig `yaml:"redis"`
}

// RedisConfig locates Redis: one URL, or comma-separated addresses for a cluster, or
// Sentinel addresses with a master name.
type RedisConfig struct {
	URL          string        `yaml:"url"`
	MasterName   string        `yaml:"master_name"`
	KeyPrefix    string        `yaml:"key_prefix"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// RateLimitConfig switches the rate limits (each tenant's, and each user's where the
// tenant sets one) on or off, and says where they are counted.
type RateLimitConfig struct {
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

// LogConfig sets the log level and format, and the per-tenant log files.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
	// TenantDir, when set, is a directory where every line naming a tenant is also
	// written, as JSON, to <tenant>.log; "" (the default) writes no such files.
	TenantDir string `yaml:"tenant_dir"`
	// FlushInterval is how long a log line may wait in memory before it is written,
	// so that lines are written many at a time rather than with a system call each.
	// Lines at warn level and above are written at once, with those before them, and
	// every line held is written at shutdown. 0 writes each line as it is logged.
	// Default 100ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// checkTenantDir checks at start-up that log.tenant_dir is a directory this process can
// create files in.
func (c LogConfig) checkTenantDir() error {
	st, err := os.Stat(c.TenantDir)
	switch {
	case err != nil:
		return fmt.Errorf("log.tenant_dir: %w", err)
	case !st.IsDir():
		return fmt.Errorf("log.tenant_dir: %s is not a directory", c.TenantDir)
	}
	probe, err := os.CreateTemp(c.TenantDir, ".fengda-write-check-*")
	if err != nil {
		return fmt.Errorf("log.tenant_dir: %s is not writable: %w", c.TenantDir, err)
	}
	name := probe.Name()
	_ = probe.Close()
	return os.Remove(name)
}

// defaultConfig holds the defaults that apply before any file or environment.
func defaultConfig() Config {
	var c Config
	c.Server.Addr = ":8080"
	c.Server.Config = gateway.DefaultConfig()
	c.Server.DrainDelay = 5 * time.Second // the gateway's own default is 0, for embedding
	c.Session.Store = "memory"
	c.Session.MaxTurns = 100
	c.Session.TTL = 168 * time.Hour
	c.Session.Memory.MaxBytes = 256 << 20
	c.Session.Redis.URL = "redis://127.0.0.1:6379/0"
	c.Session.Redis.KeyPrefix = "fd:"
	c.Session.Redis.DialTimeout = 2 * time.Second
	c.Session.Redis.ReadTimeout = time.Second
	c.Session.Redis.WriteTimeout = time.Second
	c.Queue.Defaults()
	c.RateLimit.Enabled = true
	c.RateLimit.Store = "local"
	c.RateLimit.Timeout = gateway.DefaultRateStoreTimeout
	c.RateLimit.Backoff = gateway.DefaultRateStoreBackoff
	c.Log.Level = "info"
	c.Log.Format = "json"
	c.Log.FlushInterval = 100 * time.Millisecond
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
	data, err := expandEnv(data, getenv)
	if err != nil {
		return cfg, "", fmt.Errorf("%s: %w", source, err)
	}
	if err := decodeStrict(data, &cfg); err != nil {
		return cfg, "", fmt.Errorf("%s: %w", source, err)
	}
	if err := applyEnv(&cfg, "FENGDA", getenv); err != nil {
		return cfg, "", err
	}
	if err := cfg.validate(); err != nil {
		return cfg, "", err
	}
	return cfg, source, nil
}

// envRef is a reference to an environment variable inside a config value: ${NAME} or
// ${NAME:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${NAME} and ${NAME:-default} in the file's scalar values (never in
// keys, and never as YAML: a value cannot add structure). A reference to an unset
// variable without a default is an error naming the key. Data without references is
// returned as is.
func expandEnv(data []byte, getenv func(string) string) ([]byte, error) {
	if !envRef.Match(data) {
		return data, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return data, nil // decodeStrict reports it
	}
	var errs []string
	changed := false
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], joinKey(path, n.Content[i].Value))
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			if !envRef.MatchString(n.Value) {
				return
			}
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
				m := envRef.FindStringSubmatch(ref)
				if v := getenv(m[1]); v != "" {
					return v
				}
				if m[2] == "" {
					errs = append(errs, fmt.Sprintf("%s: environment variable %s is unset", path, m[1]))
				}
				return m[3]
			})
			n.Tag, n.Style, changed = "", 0, true // retype: "${N:-8080}" becomes a number
		}
	}
	walk(&root, "")
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	if !changed {
		return data, nil
	}
	return yaml.Marshal(&root)
}

// decodeStrict decodes YAML into v, refusing keys that v has no field for. Errors name
// the dotted key at fault, not only its line.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		var line int
		if _, scanErr := fmt.Sscanf(m, "line %d:", &line); scanErr == nil {
			if key := keyAtLine(&root, "", line); key != "" {
				m = key + ": " + m
			}
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine returns the dotted key of the mapping entry on the given line, if any.
func keyAtLine(n *yaml.Node, path string, line int) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, path, line); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			p := joinKey(path, key.Value)
			if key.Line == line {
				return p
			}
			if k := keyAtLine(val, p, line); k != "" {
				return k
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if k := keyAtLine(c, fmt.Sprintf("%s[%d]", path, i), line); k != "" {
				return k
			}
		}
	}
	return ""
}

func (c *Config) validate() error {
	switch {
	case c.Server.Addr == "":
		return errors.New("server.addr: must not be empty")
	case c.Server.AdminAddr != "" && !loopback(c.Server.AdminAddr):
		return fmt.Errorf("server.admin_addr: %q is not a loopback address: the profiles it serves must not be reachable from the network; use 127.0.0.1:6060 or [::1]:6060, and an SSH tunnel or kubectl port-forward to reach it", c.Server.AdminAddr)
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
	case !oneOf(c.RateLimit.Store, "local", "redis"):
		return fmt.Errorf("ratelimit.store: %q is not local or redis", c.RateLimit.Store)
	case c.RateLimit.Timeout <= 0:
		return fmt.Errorf("ratelimit.timeout: %s is not positive", c.RateLimit.Timeout)
	case c.RateLimit.Backoff <= 0:
		return fmt.Errorf("ratelimit.backoff: %s is not positive", c.RateLimit.Backoff)
	case c.RateLimit.Store == "redis" && c.Session.Redis.URL == "":
		return errors.New("session.redis.url: required when ratelimit.store is redis")
	case !oneOf(c.Log.Level, "debug", "info", "warn", "error"):
		return fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level)
	case !oneOf(c.Log.Format, "json", "console"):
		return fmt.Errorf("log.format: %q is not json or console", c.Log.Format)
	case c.Log.TenantDir != "" && strings.TrimSpace(c.Log.TenantDir) != c.Log.TenantDir:
		return fmt.Errorf("log.tenant_dir: %q begins or ends with white space", c.Log.TenantDir)
	case c.Log.FlushInterval < 0:
		return fmt.Errorf("log.flush_interval: %s is negative", c.Log.FlushInterval)
	case len(c.Tenants) == 0:
		return errors.New("tenants: at least one tenant is required")
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
func effectiveConfig(cfg Config) configTree {
	m, _ := maskedValue(reflect.ValueOf(cfg), "").(configTree)
	return m
}

// configTree is a section of the effective config; it logs as a nested object.
type configTree map[string]any

// MarshalLogObject writes the section's keys in order.
func (c configTree) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, k := range slices.Sorted(maps.Keys(c)) {
		if err := addConfigValue(enc, k, c[k]); err != nil {
			return err
		}
	}
	return nil
}

// configList is a list of the effective config (tenants, their keys).
type configList []any

// MarshalLogArray writes the list's items.
func (l configList) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, v := range l {
		var err error
		switch v := v.(type) {
		case configTree:
			err = enc.AppendObject(v)
		case configList:
			err = enc.AppendArray(v)
		case string:
			enc.AppendString(v)
		default:
			err = enc.AppendReflected(v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func addConfigValue(enc zapcore.ObjectEncoder, k string, v any) error {
	switch v := v.(type) {
	case configTree:
		return enc.AddObject(k, v)
	case configList:
		return enc.AddArray(k, v)
	case string:
		enc.AddString(k, v)
	case bool:
		enc.AddBool(k, v)
	case int:
		enc.AddInt(k, v)
	case int64:
		enc.AddInt64(k, v)
	case float64:
		enc.AddFloat64(k, v)
	default:
		return enc.AddReflected(k, v)
	}
	return nil
}

var secretType = reflect.TypeFor[tenant.Secret]()

// maskedValue is effectiveConfig for the value v at the dotted key.
func maskedValue(v reflect.Value, key string) any {
	t := v.Type()
	switch {
	case t == secretType:
		sec := v.Interface().(tenant.Secret)
		switch {
		case sec.Env != "":
			return "env:" + sec.Env
		case sec.File != "":
			return "file:" + sec.File
		case sec.Value != "":
			return "(inline value, masked)"
		}
		return ""
	case t == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		out := make(configTree)
		for i := range t.NumField() {
			sf := t.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			if opts == "inline" {
				if inner, ok := maskedValue(v.Field(i), key).(configTree); ok {
					maps.Copy(out, inner)
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			out[name] = maskedValue(v.Field(i), joinKey(key, name))
		}
		return out
	case v.Kind() == reflect.Slice:
		out := make(configList, v.Len())
		for i := range out {
			out[i] = maskedValue(v.Index(i), key)
		}
		return out
	case v.Kind() == reflect.String:
		s, last := v.String(), key[strings.LastIndex(key, ".")+1:]
		switch {
		case s == "":
			return s
		case strings.HasSuffix(last, "url"):
			return redactURLs(s)
		case strings.Contains(last, "secret") || strings.Contains(last, "password") || strings.HasSuffix(last, "api_key"):
			return "(masked)"
		case last == "system_prompt":
			// The tenant's instructions to its model: not for the shared log.
			return fmt.Sprintf("(%d characters)", utf8.RuneCountInString(s))
		}
		return s
	}
	return v.Interface()
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

// applyEnv overrides every scalar field of the struct v points to from the environment:
// the key a.b.c is read from PREFIX_A_B_C. Values are parsed as the field's type; a bad
// one is an error naming the variable and the key.
func applyEnv(v any, prefix string, getenv func(string) string) error {
	return walkScalars(reflect.ValueOf(v).Elem(), "", func(key string, f reflect.Value) error {
		name := prefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		raw := getenv(name)
		if raw == "" {
			return nil
		}
		if err := setScalar(f, raw); err != nil {
			return fmt.Errorf("%s (from %s): %w", key, name, err)
		}
		return nil
	})
}

// walkScalars calls fn for every scalar field below v with its dotted YAML key. Slices
// (the tenant list) are not walked: they have no single key.
func walkScalars(v reflect.Value, path string, fn func(key string, f reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		f := v.Field(i)
		key := path
		if opts != "inline" {
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			key = joinKey(path, name)
		}
		switch {
		case f.Kind() == reflect.Struct:
			if err := walkScalars(f, key, fn); err != nil {
				return err
			}
		case f.Kind() == reflect.Slice || f.Kind() == reflect.Map || f.Kind() == reflect.Func:
		default:
			if err := fn(key, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinKey(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var durationType = reflect.TypeFor[time.Duration]()

func setScalar(f reflect.Value, raw string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 168h", raw)
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(raw)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("%q is not true or false", raw)
		}
		f.SetBool(b)
	case f.CanInt():
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || f.OverflowInt(n) {
			return fmt.Errorf("%q is not a whole number in range", raw)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Float64 || f.Kind() == reflect.Float32:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", raw)
		}
		f.SetFloat(x)
	default:
		return fmt.Errorf("cannot be set from the environment (type %s)", f.Type())
	}
	return nil
}
