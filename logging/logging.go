// Package logging owns the root logger: the log section of the configuration, the
// writer that holds lines to write them many at a time, PII redaction of everything
// logged, line-safe JSON, the per-tenant log files, the sampling of lines a tenant
// could flood, the masking of passwords in URLs, and go-redis's logger. Other packages
// are given a *zap.Logger and never build one. It logs nothing itself, never touches
// zap's global logger, and imports nothing of ours but tenant.
package logging

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fengda-ai/fengda/tenant"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// bufferSize is how many bytes of log lines the held writer keeps before it writes them
// out without waiting for log.flush_interval.
const bufferSize = 256 << 10

// Logger is the root logger and what it writes to. Close it after the last line.
type Logger struct {
	*zap.Logger
	// Files are the tenant log files (log.tenant_dir), nil when that is off.
	Files *TenantFiles
	held  *zapcore.BufferedWriteSyncer // nil when log.flush_interval is 0
}

// New builds the root logger, writing to out (stderr when nil): zap's production JSON
// lines, made line-safe, or with log.format console its development text. Every line
// passes through PII redaction. With log.flush_interval set, lines are held and written
// many at a time; a line at warn level or above is written at once, with those before
// it, and Sync writes whatever is held. With log.tenant_dir set, each line naming a
// configured tenant also goes, as JSON, to that tenant's file.
func New(cfg Config, tenants []tenant.Config, out io.Writer) (*Logger, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	if out == nil {
		out = os.Stderr
	}
	stderr := zapcore.Lock(os.Stderr)
	sink := zapcore.Lock(zapcore.AddSync(out))
	l := &Logger{}
	if cfg.FlushInterval > 0 {
		l.held = &zapcore.BufferedWriteSyncer{
			WS:            heldOutput{out: out, errs: stderr},
			Size:          bufferSize,
			FlushInterval: cfg.FlushInterval,
		}
		sink = l.held
	}
	jsonEncoder := func() zapcore.Encoder {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		return newLineSafeEncoder(zapcore.NewJSONEncoder(ec))
	}
	enc := jsonEncoder()
	opts := []zap.Option{zap.ErrorOutput(stderr), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)}
	if cfg.Format == "console" { // as zap.NewDevelopmentConfig
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
		opts = []zap.Option{zap.ErrorOutput(stderr), zap.AddCaller(), zap.AddStacktrace(zapcore.WarnLevel), zap.Development()}
	}
	if l.held != nil {
		// Runs after the entry is written: warnings and errors are never held back.
		opts = append(opts, zap.Hooks(func(e zapcore.Entry) error {
			if e.Level >= zapcore.WarnLevel {
				return l.held.Sync()
			}
			return nil
		}))
	}
	core := zapcore.NewCore(enc, sink, level)
	if cfg.TenantDir != "" {
		if err := cfg.checkTenantDir(); err != nil {
			return nil, err
		}
		// An invalid ID gets no file here; the registry refuses it at start-up.
		var ids []tenant.ID
		for _, t := range tenants {
			if id, err := tenant.ParseID(t.ID); err == nil {
				ids = append(ids, id)
			}
		}
		if l.Files, err = openTenantFiles(cfg.TenantDir, ids); err != nil {
			return nil, fmt.Errorf("log.tenant_dir: %w", err)
		}
		core = zapcore.NewTee(core, l.Files.core(jsonEncoder(), level))
	}
	l.Logger = zap.New(newRedactingCore(core), opts...)
	return l, nil
}

// Close writes out the lines held, ends the held writer's flushing and closes the
// tenant files. Nothing should be logged after it.
func (l *Logger) Close() error {
	err := l.Sync()
	if l.held != nil {
		err = errors.Join(err, l.held.Stop())
	}
	if l.Files != nil {
		err = errors.Join(err, l.Files.Close())
	}
	return err
}

// heldOutput is what the held writer writes to. It has no Sync of its own, so that the
// held writer's Sync only writes out the lines held: a warning must not cost an fsync,
// and an fsync of stderr fails on a pipe or a terminal. A failed write is reported to
// errs, as zap reports its own, and then counted as done: the held writer's
// bufio.Writer would otherwise keep the error and write nothing more. Its lines are
// lost, as an unheld line's would be.
type heldOutput struct {
	out  io.Writer
	errs zapcore.WriteSyncer
}

func (h heldOutput) Write(p []byte) (int, error) {
	if _, err := h.out.Write(p); err != nil {
		fmt.Fprintf(h.errs, "%v write error: %v\n", time.Now().UTC(), err)
	}
	return len(p), nil
}

func (heldOutput) Sync() error { return nil }
