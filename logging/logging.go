package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fengda-ai/fengda/tenant"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New builds the root logger, writing to out (stderr when nil): zap's production
// JSON lines, made line-safe (NewLineSafeEncoder), or with log.format console,
// its development text. Every line passes through PII redaction. With
// log.flush_interval set, lines are held in a logBuffer and written many at a time;
// a line at warn level or above is written at once, with those before it, and the
// logger's Sync writes whatever is held. With log.tenant_dir set, it also returns the
// tenant log files: each line naming a configured tenant goes, as JSON, to that
// tenant's file too.
func New(cfg Config, tenants []tenant.Config, out io.Writer) (*zap.Logger, *LogFiles, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	stderr := zapcore.Lock(os.Stderr)
	sink := stderr
	if out != nil {
		sink = zapcore.Lock(zapcore.AddSync(out))
	}
	var held *logBuffer
	if cfg.FlushInterval > 0 {
		held = newLogBuffer(sink, logBufferSize, cfg.FlushInterval)
		sink = held
	}
	jsonEncoder := func() zapcore.Encoder {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		return NewLineSafeEncoder(zapcore.NewJSONEncoder(ec))
	}
	enc := jsonEncoder()
	opts := []zap.Option{zap.ErrorOutput(stderr), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)}
	if cfg.Format == "console" { // as zap.NewDevelopmentConfig
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
		opts = []zap.Option{zap.ErrorOutput(stderr), zap.AddCaller(), zap.AddStacktrace(zapcore.WarnLevel), zap.Development()}
	}
	if held != nil {
		// Runs after the entry is written: warnings and errors are never held back.
		opts = append(opts, zap.Hooks(func(e zapcore.Entry) error {
			if e.Level >= zapcore.WarnLevel {
				return held.Flush()
			}
			return nil
		}))
	}
	core := zapcore.NewCore(enc, sink, level)
	var files *LogFiles
	if cfg.TenantDir != "" {
		if err := cfg.checkTenantDir(); err != nil {
			return nil, nil, err
		}
		// The IDs are validated as the registry validates them; an invalid one is
		// left out here, and stops start-up when the registry is built.
		var ids []tenant.ID
		for _, t := range tenants {
			if id, err := tenant.ParseID(t.ID); err == nil {
				ids = append(ids, id)
			}
		}
		if files, err = OpenLogFiles(cfg.TenantDir, ids); err != nil {
			return nil, nil, fmt.Errorf("log.tenant_dir: %w", err)
		}
		core = zapcore.NewTee(core, files.Core(jsonEncoder(), level))
	}
	return zap.New(NewRedactingCore(core), opts...), files, nil
}

// Config sets the log level and format, and the per-tenant log files.
type Config struct {
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
