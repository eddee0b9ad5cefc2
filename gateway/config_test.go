package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfig(t *testing.T) {
	got := DefaultConfig()
	want := Config{
		MaxBodyBytes:      16384,
		MaxHeaderBytes:    8192,
		MaxMessageChars:   2000,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       120 * time.Second,
		RequestTimeout:    10 * time.Second,
		ShutdownTimeout:   20 * time.Second,
		TokenMaxTTL:       24 * time.Hour,
		SSEHeartbeat:      15 * time.Second,
		Demo:              DemoConfig{TokenTTL: 30 * time.Minute},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("DefaultConfig (-got +want):\n%s", diff)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate(DefaultConfig) = %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"negative body", func(c *Config) { c.MaxBodyBytes = -1 }, "max_body_bytes: must be positive"},
		{"negative timeout", func(c *Config) { c.RequestTimeout = -time.Second }, "request_timeout: must be positive"},
		{"sub-second token ttl", func(c *Config) { c.TokenMaxTTL = time.Millisecond }, "token_max_ttl"},
		{"message over body", func(c *Config) { c.MaxBodyBytes = 100; c.MaxMessageChars = 200 }, "max_message_chars"},
		{"negative drain delay", func(c *Config) { c.DrainDelay = -time.Second }, "drain_delay"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.change)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want an error holding %q", err, tt.wantErr)
			}
			if _, err := New(cfg, Deps{Dialogue: &fakeDialogue{}, Tenants: &fakeTenants{}}); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

func TestNewFillsZeroConfig(t *testing.T) {
	s, err := New(Config{}, Deps{Dialogue: &fakeDialogue{}, Tenants: &fakeTenants{}})
	if err != nil {
		t.Fatalf("New(Config{}) = %v", err)
	}
	if got, want := s.cfg.MaxBodyBytes, int64(DefaultMaxBodyBytes); got != want {
		t.Errorf("MaxBodyBytes = %d, want %d", got, want)
	}
	if s.cfg.DrainDelay != 0 {
		t.Errorf("DrainDelay = %v, want 0: no delay unless configured", s.cfg.DrainDelay)
	}
	if _, err := New(DefaultConfig(), Deps{Tenants: &fakeTenants{}}); err == nil {
		t.Error("New accepted a nil engine")
	}
	if _, err := New(DefaultConfig(), Deps{Dialogue: &fakeDialogue{}}); err == nil {
		t.Error("New accepted a nil registry")
	}
}
