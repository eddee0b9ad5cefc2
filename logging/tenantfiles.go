package logging

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap/zapcore"

	"github.com/fengda-ai/fengda/tenant"
)

// TenantFiles writes each tenant's lines to a file of its own, <dir>/<tenant>.log, that
// its operator can be given: every line naming the tenant in a top-level tenant field
// (from With or the entry itself), and no other. A line naming no tenant, an unknown
// one, or two different ones goes to no tenant's file. Files are appended to, their
// paths built from validated IDs only; rotation is the system's (logrotate with
// copytruncate, or a rename and then Reopen).
type TenantFiles struct {
	dir   string
	files map[tenant.ID]*logFile
}

// logFile is one tenant's file; mu serialises writes with Reopen and Close.
type logFile struct {
	path string
	mu   sync.Mutex
	f    *os.File // nil once closed
}

// logFileMode lets the process and its group read a tenant's file.
const logFileMode = 0o640

// openTenantFiles opens, creating them if need be, the files of tenants in dir, an
// existing, writable directory.
func openTenantFiles(dir string, tenants []tenant.ID) (*TenantFiles, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	l := &TenantFiles{dir: dir, files: make(map[tenant.ID]*logFile, len(tenants))}
	for _, id := range tenants {
		if _, err := tenant.ParseID(string(id)); err != nil {
			_ = l.Close()
			return nil, err
		}
		path := filepath.Join(dir, string(id)+".log")
		f, err := openLogFile(path)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		l.files[id] = &logFile{path: path, f: f}
	}
	return l, nil
}

func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, logFileMode)
}

// Dir returns the directory of the files.
func (l *TenantFiles) Dir() string { return l.dir }

// Reopen closes every file and opens its path again: after a log rotation renamed the
// files, lines go to new ones. A file that cannot be opened keeps its old handle.
func (l *TenantFiles) Reopen() error {
	var errs []error
	for _, lf := range l.files {
		f, err := openLogFile(lf.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lf.mu.Lock()
		old := lf.f
		lf.f = f
		lf.mu.Unlock()
		if old != nil {
			_ = old.Close()
		}
	}
	return errors.Join(errs...)
}

// Sync flushes every file to disk.
func (l *TenantFiles) Sync() error {
	var errs []error
	for _, lf := range l.files {
		lf.mu.Lock()
		if lf.f != nil {
			if err := lf.f.Sync(); err != nil {
				errs = append(errs, err)
			}
		}
		lf.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Close closes every file. Lines logged afterwards go to no tenant's file.
func (l *TenantFiles) Close() error {
	var errs []error
	for _, lf := range l.files {
		lf.mu.Lock()
		if lf.f != nil {
			errs = append(errs, lf.f.Close())
			lf.f = nil
		}
		lf.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (lf *logFile) write(p []byte) error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return nil
	}
	_, err := lf.f.Write(p)
	return err
}

func (lf *logFile) sync() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return nil
	}
	return lf.f.Sync()
}

// core returns a core that writes, with enc, each entry enabled by level to the file of
// the tenant it names. Tee it with the main core, under the redacting core (the lines
// are the main log's lines, redacted alike).
func (l *TenantFiles) core(enc zapcore.Encoder, level zapcore.LevelEnabler) zapcore.Core {
	return &tenantCore{LevelEnabler: level, files: l, enc: enc}
}

// tenantCore is TenantFiles' core. It follows the tenant field through With, since the
// fields With adds are encoded once, not passed to Write.
type tenantCore struct {
	zapcore.LevelEnabler
	files  *TenantFiles
	enc    zapcore.Encoder // holds the fields of With
	tenant tenantField     // the tenant among them
}

var _ zapcore.Core = (*tenantCore)(nil)

// tenantField tracks the top-level tenant field of an entry's fields.
type tenantField struct {
	value  string
	seen   bool // a tenant field was found
	mixed  bool // two different tenant values, or a tenant value that is not a string
	nested bool // a namespace was opened: later fields are not top-level
}

// tenantKey is the field that names a line's tenant.
const tenantKey = "tenant"

func (t *tenantField) add(f zapcore.Field) {
	switch {
	case t.nested:
	case f.Type == zapcore.NamespaceType:
		t.nested = true
	case f.Key != tenantKey:
	default:
		v, ok := fieldString(f)
		if !ok || t.seen && v != t.value {
			t.mixed = true
		}
		t.value, t.seen = v, true
	}
}

// fieldString returns the value of a string-like field.
func fieldString(f zapcore.Field) (string, bool) {
	switch f.Type {
	case zapcore.StringType:
		return f.String, true
	case zapcore.ByteStringType:
		b, ok := f.Interface.([]byte)
		return string(b), ok
	case zapcore.StringerType:
		if s, ok := f.Interface.(fmt.Stringer); ok {
			return s.String(), true
		}
	}
	return "", false
}

// file returns the file of the tenant t names, if it names exactly one known tenant.
func (c *tenantCore) file(t tenantField) *logFile {
	if !t.seen || t.mixed || t.value == "" {
		return nil
	}
	return c.files.files[tenant.ID(t.value)]
}

func (c *tenantCore) With(fields []zapcore.Field) zapcore.Core {
	clone := &tenantCore{LevelEnabler: c.LevelEnabler, files: c.files, enc: c.enc.Clone(), tenant: c.tenant}
	for _, f := range fields {
		f.AddTo(clone.enc)
		clone.tenant.add(f)
	}
	return clone
}

func (c *tenantCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) && !c.tenant.mixed {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *tenantCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	t := c.tenant
	for _, f := range fields {
		t.add(f)
	}
	lf := c.file(t)
	if lf == nil {
		return nil
	}
	buf, err := c.enc.EncodeEntry(e, fields)
	if err != nil {
		return err
	}
	err = lf.write(buf.Bytes())
	buf.Free()
	if err != nil {
		return fmt.Errorf("tenant log %s: %w", lf.path, err)
	}
	if e.Level > zapcore.ErrorLevel {
		return lf.sync() // the process may be about to end
	}
	return nil
}

func (c *tenantCore) Sync() error { return c.files.Sync() }

// Level lets zap see the level without probing every one.
func (c *tenantCore) Level() zapcore.Level { return zapcore.LevelOf(c.LevelEnabler) }
