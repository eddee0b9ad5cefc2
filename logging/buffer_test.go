package logging

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// writeCounter records what is written to it, and in how many writes.
type writeCounter struct {
	mu     sync.Mutex
	buf    strings.Builder
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *writeCounter) got() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

func testLogger(t *testing.T, interval time.Duration) (*zap.Logger, *writeCounter) {
	t.Helper()
	out := &writeCounter{}
	log, _, err := New(Config{Level: "info", Format: "json", FlushInterval: interval}, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	return log, out
}

// TestLogBufferHoldsInfoLines: info lines are written together once the interval has
// passed, in order; a warning is written at once with the lines before it; Sync writes
// what is held.
func TestLogBufferHoldsInfoLines(t *testing.T) {
	const interval = time.Second
	log, out := testLogger(t, interval)
	start := time.Now()
	for i := range 5 {
		log.Info("request", zap.Int("n", i))
	}
	if text, writes := out.got(); writes != 0 || text != "" {
		t.Fatalf("info lines written at once: %d writes of %q", writes, text)
	}
	eventually(t, 5*time.Second, "the info lines to be written", func() bool {
		_, writes := out.got()
		return writes > 0
	})
	if took := time.Since(start); took < interval/2 {
		t.Errorf("info lines written %v after they were logged, want about %v", took, interval)
	}
	text, writes := out.got()
	if writes != 1 || strings.Count(text, "\n") != 5 || !inOrder(text, `"n":0`, `"n":1`, `"n":2`, `"n":3`, `"n":4`) {
		t.Errorf("%d writes of %q, want the 5 lines in order in one", writes, text)
	}

	log.Info("before the warning")
	log.Warn("a warning")
	if text, writes := out.got(); writes != 2 || !inOrder(text, "before the warning", "a warning") {
		t.Errorf("after a warning: %d writes of %q, want it written at once after the line before it", writes, text)
	}
	log.Error("an error")
	if text, _ := out.got(); !strings.Contains(text, "an error") {
		t.Errorf("an error was held back: %q", text)
	}

	log.Info("at shutdown")
	if err := log.Sync(); err != nil {
		t.Fatal(err)
	}
	if text, _ := out.got(); !strings.HasSuffix(text, "\n") || !strings.Contains(text, "at shutdown") {
		t.Errorf("Sync did not write the line held: %q", text)
	}
}

// TestLogBufferFull: a full buffer is written without waiting, whole lines only, and
// a line larger than the buffer is written whole.
func TestLogBufferFull(t *testing.T) {
	out := &writeCounter{}
	b := newLogBuffer(zapcore.AddSync(out), 64, time.Hour)
	line := strings.Repeat("x", 39) + "\n" // 40 bytes: one fits, two do not
	for range 3 {
		if _, err := b.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if text, writes := out.got(); writes != 2 || text != line+line {
		t.Errorf("%d writes of %q, want the first two lines in two writes", writes, text)
	}
	long := strings.Repeat("y", 100) + "\n"
	if _, err := b.Write([]byte(long)); err != nil {
		t.Fatal(err)
	}
	if text, writes := out.got(); writes != 4 || text != line+line+line+long {
		t.Errorf("%d writes of %q, want the line held, then the long line", writes, text)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, writes := out.got(); writes != 4 {
		t.Errorf("Sync of an empty buffer wrote %d times", writes-4)
	}
}

// TestLogFlushIntervalZero: 0 writes each line as it is logged.
func TestLogFlushIntervalZero(t *testing.T) {
	log, out := testLogger(t, 0)
	log.Info("one")
	log.Info("two")
	if text, writes := out.got(); writes != 2 || !inOrder(text, "one", "two") {
		t.Errorf("%d writes of %q, want each line written at once", writes, text)
	}
}

// inOrder reports whether text holds each of subs, in that order.
func inOrder(text string, subs ...string) bool {
	for _, s := range subs {
		i := strings.Index(text, s)
		if i < 0 {
			return false
		}
		text = text[i+len(s):]
	}
	return true
}

// eventually fails the test unless cond holds within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}

// BenchmarkLogger is an access line through the root logger, into /dev/null and into
// a file: written as it is logged (flush_interval 0) and held to be written many at a
// time (100ms, the default).
func BenchmarkLogger(b *testing.B) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devNull.Close()
	file, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	for _, sink := range []struct {
		name string
		out  *os.File
	}{{"devnull", devNull}, {"file", file}} {
		for _, interval := range []time.Duration{0, 100 * time.Millisecond} {
			b.Run(sink.name+"/flush_interval="+interval.String(), func(b *testing.B) {
				log, _, err := New(Config{Level: "info", Format: "json", FlushInterval: interval}, nil, sink.out)
				if err != nil {
					b.Fatal(err)
				}
				defer log.Sync()
				b.ReportAllocs()
				for b.Loop() {
					log.Info("request", zap.String("request_id", "Q7ZB4KX2M3N5P6R7"), zap.String("method", "POST"),
						zap.String("route", "/v1/chat"), zap.Int("status", 200), zap.String("tenant", "qinghe-bank"),
						zap.Duration("latency", 1234567))
				}
			})
		}
	}
}
