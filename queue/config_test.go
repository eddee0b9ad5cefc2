package queue

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantKey string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"off skips the rest", func(c *Config) { c.Mode = ModeOff; c.MaxMsgs = -1 }, ""},
		{"external", func(c *Config) { c.Mode = ModeExternal; c.URL = "nats://a:4222,nats://b:4222"; c.Replicas = 3 }, ""},
		{"unknown mode", func(c *Config) { c.Mode = "kafka" }, "queue.mode"},
		{"external without url", func(c *Config) { c.Mode = ModeExternal }, "queue.url"},
		{"embedded replicas", func(c *Config) { c.Replicas = 3 }, "queue.replicas"},
		{"too many replicas", func(c *Config) { c.Mode = ModeExternal; c.URL = "nats://x"; c.Replicas = 7 }, "queue.replicas"},
		{"stream name", func(c *Config) { c.Stream = "a.b" }, "queue.stream"},
		{"subject wildcard", func(c *Config) { c.Subject = "fengda.*" }, "queue.subject"},
		{"subject empty token", func(c *Config) { c.Subject = "fengda..turns" }, "queue.subject"},
		{"max msgs", func(c *Config) { c.MaxMsgs = -1 }, "queue.max_msgs"},
		{"max bytes", func(c *Config) { c.MaxBytes = -1 }, "queue.max_bytes"},
		{"per tenant above stream", func(c *Config) { c.MaxMsgsPerTenant = c.MaxMsgs + 1 }, "queue.max_msgs_per_tenant"},
		{"dedupe window below max wait", func(c *Config) { c.Duplicates = 10 * time.Second }, "queue.duplicates"},
		{"ack wait", func(c *Config) { c.AckWait = time.Millisecond }, "queue.ack_wait"},
		{"max ack pending", func(c *Config) { c.MaxAckPending = -1 }, "queue.max_ack_pending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.Defaults()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.wantKey == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantKey != "" && (err == nil || !strings.Contains(err.Error(), tt.wantKey+":")):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantKey)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	got := c
	want := Config{
		Mode: ModeEmbedded, DataDir: "./data/jetstream", Stream: "FENGDA_TURNS", Subject: "fengda.turns",
		MaxMsgs: 100000, MaxBytes: 256 << 20, MaxMsgsPerTenant: 20000, Replicas: 1,
		Duplicates: 2 * time.Minute, AckWait: time.Minute, MaxWait: 30 * time.Second,
	}
	if got != want {
		t.Fatalf("Defaults() = %+v, want %+v", got, want)
	}
}

func TestConfigValidateDeadline(t *testing.T) {
	var c Config
	c.Defaults()
	if err := c.ValidateDeadline(30 * time.Second); err != nil {
		t.Fatalf("ValidateDeadline(30s) with ack_wait 60s = %v, want nil", err)
	}
	if err := c.ValidateDeadline(time.Minute); err == nil || !strings.Contains(err.Error(), "queue.ack_wait:") {
		t.Fatalf("ValidateDeadline(60s) with ack_wait 60s = %v, want an error naming queue.ack_wait", err)
	}
}
