package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/tenant"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != ":8080" || cfg.Session.Store != "memory" || cfg.Session.MaxTurns != 100 ||
		cfg.Session.TTL != 168*time.Hour || !cfg.RateLimit.Enabled || cfg.Log.Level != "info" {
		t.Errorf("defaults: got %+v", cfg)
	}
	if len(cfg.Tenants) != 2 {
		t.Errorf("demo tenants: got %d, want 2", len(cfg.Tenants))
	}
}

func TestLoadConfigEnvOverrides(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(map[string]string{
		"FENGDA_SESSION_STORE":     "redis",
		"FENGDA_SESSION_REDIS_URL": "redis://10.0.0.1:6379/2",
		"FENGDA_SESSION_MAX_TURNS": "50",
		"FENGDA_SESSION_TTL":       "1h",
		"FENGDA_DIALOGUE_WORKERS":  "8",
		"FENGDA_DIALOGUE_BACKLOG":  "16",
		"FENGDA_RATELIMIT_ENABLED": "false",
		"FENGDA_LOG_LEVEL":         "debug",
		"FENGDA_SERVER_ADDR":       "127.0.0.1:9999",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{cfg.Session.Store, cfg.Session.Redis.URL, cfg.Session.MaxTurns, cfg.Session.TTL,
		cfg.Dialogue.Workers, cfg.Dialogue.Backlog, cfg.RateLimit.Enabled, cfg.Log.Level, cfg.Server.Addr}
	want := []any{"redis", "redis://10.0.0.1:6379/2", 50, time.Hour, 8, 16, false, "debug", "127.0.0.1:9999"}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("override %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		wantInErr  string
	}{
		{"unknown key", "session:\n  stor: redis\n", nil, "stor"},
		{"bad store", "", map[string]string{"FENGDA_SESSION_STORE": "mongo"}, "session.store"},
		{"bad int", "", map[string]string{"FENGDA_SESSION_MAX_TURNS": "many"}, "session.max_turns"},
		{"bad duration", "", map[string]string{"FENGDA_SESSION_TTL": "7 days"}, "session.ttl"},
		{"bad bool", "", map[string]string{"FENGDA_RATELIMIT_ENABLED": "perhaps"}, "ratelimit.enabled"},
		{"bad level", "", map[string]string{"FENGDA_LOG_LEVEL": "loud"}, "log.level"},
		{"negative workers", "", map[string]string{"FENGDA_DIALOGUE_WORKERS": "-1"}, "dialogue.workers"},
		{"bad queue mode", "", map[string]string{"FENGDA_QUEUE_MODE": "kafka"}, "queue.mode"},
		{"negative drain delay", "", map[string]string{"FENGDA_SERVER_DRAIN_DELAY": "-1s"}, "server.drain_delay"},
		{"admin on every interface", "", map[string]string{"FENGDA_SERVER_ADMIN_ADDR": ":6060"}, "server.admin_addr"},
		{"admin on a public address", "", map[string]string{"FENGDA_SERVER_ADMIN_ADDR": "10.1.2.3:6060"}, "server.admin_addr"},
		{"admin without a port", "", map[string]string{"FENGDA_SERVER_ADMIN_ADDR": "127.0.0.1"}, "server.admin_addr"},
		{"ack wait within the answer deadline", "", map[string]string{"FENGDA_QUEUE_ACK_WAIT": "5s"}, "queue.ack_wait"},
		{"bad type in file", "session:\n  max_turns: lots\n", nil, "max_turns"},
		{"unset reference", "session:\n  redis:\n    url: ${FENGDA_TEST_UNSET}\n", nil,
			"session.redis.url: environment variable FENGDA_TEST_UNSET is unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(tc.file)
			}
			_, _, err := loadConfig(path, envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("got error %v, want one naming %q", err, tc.wantInErr)
			}
		})
	}
}

func TestLoadConfigExpandsReferences(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	body := "session:\n  max_turns: ${TURNS:-40}\n  redis:\n    url: \"${REDIS_URL}\"\n    key_prefix: \"x-${PREFIX:-fd}:\"\n" +
		"tenants:\n  - id: t1\n    keys: [{kid: k1, alg: HS256, secret: {value: \"${SECRET:-0123456789abcdef0123456789abcdef}\"}}]\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// A value cannot add structure: YAML inside a variable stays a string.
	cfg, _, err := loadConfig(p, envOf(map[string]string{"REDIS_URL": "redis://h:1/0\nlog:\n  level: debug"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Session.MaxTurns != 40 || cfg.Session.Redis.URL != "redis://h:1/0\nlog:\n  level: debug" ||
		cfg.Session.Redis.KeyPrefix != "x-fd:" || cfg.Log.Level != "info" {
		t.Errorf("got max_turns %d url %q prefix %q level %q", cfg.Session.MaxTurns, cfg.Session.Redis.URL,
			cfg.Session.Redis.KeyPrefix, cfg.Log.Level)
	}
}

func TestLoadConfigDrainDelayAndAdmin(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.DrainDelay != 5*time.Second || cfg.Server.AdminAddr != "" {
		t.Errorf("config.yaml: drain_delay %v, admin_addr %q; want 5s and off", cfg.Server.DrainDelay, cfg.Server.AdminAddr)
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:0"} {
		cfg, _, err := loadConfig("", envOf(map[string]string{"FENGDA_SERVER_DRAIN_DELAY": "0s", "FENGDA_SERVER_ADMIN_ADDR": addr}))
		if err != nil {
			t.Errorf("admin_addr %s: %v", addr, err)
			continue
		}
		if cfg.Server.DrainDelay != 0 || cfg.Server.AdminAddr != addr {
			t.Errorf("drain_delay %v, admin_addr %q; want 0s and %s", cfg.Server.DrainDelay, cfg.Server.AdminAddr, addr)
		}
	}
}

// TestEffectiveConfigMasksSecrets: the start-up log shows every setting and where each
// secret comes from, but no secret.
func TestEffectiveConfigMasksSecrets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	body := `session:
  redis:
    url: "redis://:hunter2-redis@10.0.0.5:6379/0,10.0.0.6:6379"
queue:
  mode: external
  url: "nats://fengda:hunter2-nats@nats-0:4222"
tenants:
  - id: t1
    keys:
      - {kid: k1, alg: HS256, secret: {value: "hunter2-jwt-0123456789abcdef0123456789"}}
      - {kid: k2, alg: HS256, secret: {env: T1_JWT}}
    api_keys: [{value: "hunter2-apikey-0123456789abcdef"}, {file: /run/secrets/t1-api}]
    engine:
      kind: openai
      kb: kb/shop-en.yaml
      llm:
        base_url: "https://user:hunter2-base@llm.example.com/v1"
        model: m
        api_key: {value: "sk-hunter2-llm"}
        system_prompt: "You are the shop's assistant. hunter2-instructions"
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig(p, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(effectiveConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if strings.Contains(out, "hunter2") {
		t.Errorf("a secret is in the effective config: %s", out)
	}
	for _, want := range []string{`"env:T1_JWT"`, `"file:/run/secrets/t1-api"`, `"(inline value, masked)"`,
		`10.0.0.5:6379`, `nats-0:4222`, `llm.example.com`, `"system_prompt":"(50 characters)"`, `"drain_delay":"5s"`, `"max_turns":100`, `10.0.0.6:6379"`, `"mode":"external"`} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %s: %s", want, out)
		}
	}
}

func TestLoadConfigRateLimit(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RateLimit; !got.Enabled || got.Store != "local" || got.Timeout != 50*time.Millisecond || got.Backoff != time.Second {
		t.Errorf("config.yaml: ratelimit %+v, want enabled, local, 50ms, 1s", got)
	}
	cfg, _, err = loadConfig("", envOf(map[string]string{
		"FENGDA_RATELIMIT_STORE":   "redis",
		"FENGDA_RATELIMIT_TIMEOUT": "20ms",
		"FENGDA_RATELIMIT_BACKOFF": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RateLimit; got.Store != "redis" || got.Timeout != 20*time.Millisecond || got.Backoff != 5*time.Second {
		t.Errorf("from the environment: ratelimit %+v, want redis, 20ms, 5s", got)
	}

	p := filepath.Join(t.TempDir(), "c.yaml")
	write := func(body string) string {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tenants := "tenants:\n  - id: t1\n    keys: [{kid: k1, alg: HS256, secret: {value: \"0123456789abcdef0123456789abcdef\"}}]\n"
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		wantInErr  string
	}{
		{"unknown store", "", map[string]string{"FENGDA_RATELIMIT_STORE": "memcached"}, "ratelimit.store"},
		{"zero timeout", "", map[string]string{"FENGDA_RATELIMIT_TIMEOUT": "0s"}, "ratelimit.timeout"},
		{"negative backoff", "", map[string]string{"FENGDA_RATELIMIT_BACKOFF": "-1s"}, "ratelimit.backoff"},
		{"bad duration", "", map[string]string{"FENGDA_RATELIMIT_TIMEOUT": "fast"}, "ratelimit.timeout"},
		{"redis without url", "session:\n  redis:\n    url: \"\"\nratelimit:\n  store: redis\n" + tenants, nil, "session.redis.url"},
		{"unknown key", "ratelimit:\n  stroe: redis\n" + tenants, nil, "stroe"},
		{"negative user rps", "tenants:\n  - id: t1\n    keys: [{kid: k1, alg: HS256, secret: {value: \"0123456789abcdef0123456789abcdef\"}}]\n    rate_limit: {user_rps: -1}\n", nil,
			"tenants[0].rate_limit.user_rps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(tc.file)
			}
			cfg, _, err := loadConfig(path, envOf(tc.env))
			if err == nil {
				// Tenants are validated by the registry, as the program starts.
				_, err = tenant.NewRegistry(cfg.Tenants, envOf(tc.env))
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("got error %v, want one naming %q", err, tc.wantInErr)
			}
		})
	}
}

// TestTenantLogDirConfig: log.tenant_dir is off by default and set from the
// environment; the logger opens a file per configured tenant there.
func TestTenantLogDirConfig(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.TenantDir != "" {
		t.Errorf("log.tenant_dir defaults to %q, want off", cfg.Log.TenantDir)
	}
	dir := t.TempDir()
	cfg, _, err = loadConfig("", envOf(map[string]string{"FENGDA_LOG_TENANT_DIR": dir}))
	if err != nil || cfg.Log.TenantDir != dir {
		t.Fatalf("FENGDA_LOG_TENANT_DIR: got %q, %v", cfg.Log.TenantDir, err)
	}
	log, err := logging.New(cfg.Log, cfg.Tenants, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_ = log.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "northwind-shop.log qinghe-bank.log" {
		t.Errorf("log.tenant_dir holds %v, want a file per configured tenant and nothing else", names)
	}
}

func TestLogFlushIntervalConfig(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.FlushInterval != 100*time.Millisecond {
		t.Errorf("log.flush_interval defaults to %v, want 100ms", cfg.Log.FlushInterval)
	}
	cfg, _, err = loadConfig("", envOf(map[string]string{"FENGDA_LOG_FLUSH_INTERVAL": "0s"}))
	if err != nil || cfg.Log.FlushInterval != 0 {
		t.Errorf("FENGDA_LOG_FLUSH_INTERVAL=0s: got %v, %v", cfg.Log.FlushInterval, err)
	}
	_, _, err = loadConfig("", envOf(map[string]string{"FENGDA_LOG_FLUSH_INTERVAL": "-1s"}))
	if err == nil || !strings.Contains(err.Error(), "log.flush_interval") {
		t.Errorf("a negative log.flush_interval: got %v, want an error naming the key", err)
	}
}
