package logging

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for key, change := range map[string]func(*Config){
		"log.level":          func(c *Config) { c.Level = "verbose" },
		"log.format":         func(c *Config) { c.Format = "text" },
		"log.tenant_dir":     func(c *Config) { c.TenantDir = " /var/log" },
		"log.flush_interval": func(c *Config) { c.FlushInterval = -time.Second },
	} {
		c := DefaultConfig()
		change(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), key+": ") {
			t.Errorf("%s: got %v, want an error naming the key", key, err)
		}
	}
}

// TestNewChecksTenantDir: a tenant directory that is missing, not a directory, or not
// writable stops start-up with an error naming log.tenant_dir; a good one gets a file
// per valid tenant ID and nothing else.
func TestNewChecksTenantDir(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.TenantDir = dir
	tenants := []tenant.Config{{ID: "bank-a"}, {ID: "shop-b"}, {ID: "../bad"}}
	log, err := New(cfg, tenants, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_ = log.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "bank-a.log shop-b.log" {
		t.Errorf("log.tenant_dir holds %v, want a file per valid tenant ID and nothing else", names)
	}

	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{"missing": filepath.Join(dir, "missing"), "a file": file}
	if os.Geteuid() != 0 { // root writes anywhere
		bad["read-only"] = readOnly
	}
	for name, d := range bad {
		c := cfg
		c.TenantDir = d
		if _, err := New(c, tenants, io.Discard); err == nil || !strings.Contains(err.Error(), "log.tenant_dir") {
			t.Errorf("%s: got %v, want an error naming log.tenant_dir", name, err)
		}
	}
}
