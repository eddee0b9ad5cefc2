package logging

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is the log section of the configuration.
type Config struct {
	Level  string `yaml:"level"`  // debug | info (default) | warn | error
	Format string `yaml:"format"` // json (default) | console
	// TenantDir, when set, is a directory where every line naming a tenant is also
	// written, as JSON, to <tenant>.log; "" (the default) writes no such files.
	TenantDir string `yaml:"tenant_dir"`
	// FlushInterval is how long a line may be held before it is written, so that
	// lines are written many at a time. Lines at warn level and above are written at
	// once, with those before them; Close writes whatever is held. 0 writes each line
	// as it is logged. Default 100ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DefaultConfig returns the defaults: info lines as JSON, held up to 100ms, no tenant
// files.
func DefaultConfig() Config {
	return Config{Level: "info", Format: "json", FlushInterval: 100 * time.Millisecond}
}

// Validate checks the values, not the directory (New does). Errors name the key.
func (c Config) Validate() error {
	switch {
	case c.Level != "debug" && c.Level != "info" && c.Level != "warn" && c.Level != "error":
		return fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Level)
	case c.Format != "json" && c.Format != "console":
		return fmt.Errorf("log.format: %q is not json or console", c.Format)
	case c.TenantDir != "" && strings.TrimSpace(c.TenantDir) != c.TenantDir:
		return fmt.Errorf("log.tenant_dir: %q begins or ends with white space", c.TenantDir)
	case c.FlushInterval < 0:
		return fmt.Errorf("log.flush_interval: %s is negative", c.FlushInterval)
	}
	return nil
}

// checkTenantDir checks that log.tenant_dir is a directory this process can create
// files in.
func (c Config) checkTenantDir() error {
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
