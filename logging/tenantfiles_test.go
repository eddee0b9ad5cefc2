package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/fengda-ai/fengda/tenant"
)

// newTenantLogger returns a logger as New builds it with log.tenant_dir set: the main
// log (into the returned buffer) and the tenants' files, under the redacting core.
func newTenantLogger(t *testing.T, ids ...tenant.ID) (*zap.Logger, *TenantFiles, *bytes.Buffer) {
	t.Helper()
	files, err := openTenantFiles(t.TempDir(), ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = files.Close() })
	var buf bytes.Buffer
	enc := newLineSafeEncoder(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()))
	main := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(&buf)), zapcore.InfoLevel)
	core := zapcore.NewTee(main, files.core(enc.Clone(), zapcore.InfoLevel))
	return zap.New(newRedactingCore(core)), files, &buf
}

// readTenantLog returns the entries of tenant id's file.
func readTenantLog(t *testing.T, files *TenantFiles, id tenant.ID) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join(files.Dir(), string(id)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s.log: %q: %v", id, sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func messages(entries []map[string]any) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e["msg"].(string))
	}
	return out
}

func TestLogFilesRouteByTenant(t *testing.T) {
	l, files, main := newTenantLogger(t, "bank-a", "shop-b")
	a := l.With(zap.String("tenant", "bank-a"), zap.String("request_id", "r1"))
	a.Info("a: with")
	a.Named("dialogue").With(zap.String("session", "s1")).Warn("a: nested with, call 13812345678")
	l.Info("b: field", zap.String("tenant", "shop-b"))
	l.Info("b: stringer", zap.Stringer("tenant", tenant.ID("shop-b")))
	l.Sugar().Infow("b: sugared", "tenant", "shop-b")
	a.Info("a: same tenant again", zap.String("tenant", "bank-a"))

	l.Info("none: no tenant")
	l.Info("none: empty tenant", zap.String("tenant", ""))
	l.Info("none: unknown tenant", zap.String("tenant", "other"))
	l.Info("none: path", zap.String("tenant", "../shop-b"))
	a.Info("none: two tenants", zap.String("tenant", "shop-b"))
	a.With(zap.String("tenant", "shop-b")).Info("none: two tenants by With")
	l.Info("none: nested", zap.Namespace("peer"), zap.String("tenant", "bank-a"))
	l.Info("none: not a string", zap.Int("tenant", 1))
	l.Debug("none: below the level", zap.String("tenant", "bank-a"))
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}

	gotA := messages(readTenantLog(t, files, "bank-a"))
	wantA := []string{"a: with", "a: nested with, call 138****5678", "a: same tenant again"}
	if strings.Join(gotA, "|") != strings.Join(wantA, "|") {
		t.Errorf("bank-a.log: %q, want %q", gotA, wantA)
	}
	gotB := messages(readTenantLog(t, files, "shop-b"))
	wantB := []string{"b: field", "b: stringer", "b: sugared"}
	if strings.Join(gotB, "|") != strings.Join(wantB, "|") {
		t.Errorf("shop-b.log: %q, want %q", gotB, wantB)
	}
	for _, e := range readTenantLog(t, files, "bank-a") {
		if e["tenant"] != "bank-a" || e["request_id"] != "r1" || e["level"] == nil || e["ts"] == nil {
			t.Errorf("bank-a.log entry %v: want tenant, request_id, level and ts", e)
		}
	}
	// The main log has every line at the level.
	if n := strings.Count(main.String(), "\n"); n != 14 {
		t.Errorf("main log: %d lines, want 14 (all but the debug one):\n%s", n, main)
	}
	entries, _ := os.ReadDir(files.Dir())
	if len(entries) != 2 {
		t.Errorf("the directory holds %d files, want the 2 tenants'", len(entries))
	}
}

func TestLogFilesReopenAndClose(t *testing.T) {
	l, files, _ := newTenantLogger(t, "bank-a")
	l.Info("before", zap.String("tenant", "bank-a"))
	path := filepath.Join(files.Dir(), "bank-a.log")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Info("renamed, not reopened", zap.String("tenant", "bank-a"))
	if err := files.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Info("after", zap.String("tenant", "bank-a"))
	if got := messages(readTenantLog(t, files, "bank-a")); strings.Join(got, "|") != "after" {
		t.Errorf("bank-a.log after reopen: %q, want [after]", got)
	}
	old, _ := os.ReadFile(path + ".1")
	if n := strings.Count(string(old), "\n"); n != 2 {
		t.Errorf("the rotated file has %d lines, want 2:\n%s", n, old)
	}
	if err := files.Close(); err != nil {
		t.Fatal(err)
	}
	l.Info("after close", zap.String("tenant", "bank-a")) // dropped, no error
	if got := messages(readTenantLog(t, files, "bank-a")); len(got) != 1 {
		t.Errorf("bank-a.log after close: %q", got)
	}
}

func TestLogFilesConcurrent(t *testing.T) {
	ids := []tenant.ID{"bank-a", "shop-b", "bank-c"}
	l, files, _ := newTenantLogger(t, ids...)
	const perTenant = 200
	var wg sync.WaitGroup
	for _, id := range ids {
		tl := l.With(zap.String("tenant", string(id)))
		for range 4 {
			wg.Go(func() {
				for i := range perTenant / 4 {
					tl.Info("turn", zap.Int("i", i), zap.String("message", strings.Repeat("长", 500)))
				}
			})
		}
	}
	wg.Go(func() {
		for range 20 {
			if err := files.Reopen(); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	for _, id := range ids {
		entries := readTenantLog(t, files, id)
		if len(entries) != perTenant {
			t.Errorf("%s.log: %d lines, want %d", id, len(entries), perTenant)
		}
		for _, e := range entries {
			if e["tenant"] != string(id) {
				t.Fatalf("%s.log holds a line of %v", id, e["tenant"])
			}
		}
	}
}

func TestOpenTenantFilesRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		dir string
		ids []tenant.ID
	}{
		"missing directory": {filepath.Join(dir, "missing"), []tenant.ID{"bank-a"}},
		"a file":            {file, []tenant.ID{"bank-a"}},
		"an invalid ID":     {dir, []tenant.ID{"../etc"}},
	} {
		if _, err := openTenantFiles(tc.dir, tc.ids); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if _, err := openTenantFiles(ro, []tenant.ID{"bank-a"}); err == nil {
			t.Error("a read-only directory: opened")
		}
	}
}
