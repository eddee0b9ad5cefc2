package logging

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// TestMain checks that Close ends the held writer's flushing.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

func testLogger(t *testing.T, interval time.Duration) (*Logger, *writeCounter) {
	t.Helper()
	out := &writeCounter{}
	log, err := New(Config{Level: "info", Format: "json", FlushInterval: interval}, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	return log, out
}

// TestLoggerHoldsInfoLines: with an interval longer than the test, info lines are held;
// a warning is written at once, in one write with the lines before it; an error too;
// Sync and Close write what is held.
func TestLoggerHoldsInfoLines(t *testing.T) {
	log, out := testLogger(t, time.Hour)
	for i := range 5 {
		log.Info("request", zap.Int("n", i))
	}
	if text, writes := out.got(); writes != 0 || text != "" {
		t.Fatalf("info lines written at once: %d writes of %q", writes, text)
	}
	log.Warn("a warning")
	text, writes := out.got()
	if writes != 1 || strings.Count(text, "\n") != 6 || !inOrder(text, `"n":0`, `"n":1`, `"n":2`, `"n":3`, `"n":4`, "a warning") {
		t.Errorf("after a warning: %d writes of %q, want the 5 lines and the warning, in order, in one", writes, text)
	}
	log.Info("before the error")
	log.Error("an error")
	if text, _ := out.got(); !inOrder(text, "a warning", "before the error", "an error") {
		t.Errorf("an error was held back: %q", text)
	}

	log.Info("at sync")
	if err := log.Sync(); err != nil {
		t.Fatal(err)
	}
	if text, _ := out.got(); !strings.HasSuffix(text, "\n") || !strings.Contains(text, "at sync") {
		t.Errorf("Sync did not write the line held: %q", text)
	}
	log.Info("at close")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	if text, _ := out.got(); !strings.Contains(text, "at close") {
		t.Errorf("Close did not write the line held: %q", text)
	}
}

// TestLoggerFlushesHeldLines: held lines are written without a warning or a Sync, in
// order, once the interval has passed.
func TestLoggerFlushesHeldLines(t *testing.T) {
	log, out := testLogger(t, 10*time.Millisecond)
	for i := range 5 {
		log.Info("request", zap.Int("n", i))
	}
	eventually(t, 5*time.Second, "the info lines to be written", func() bool {
		text, _ := out.got()
		return strings.Count(text, "\n") == 5
	})
	if text, _ := out.got(); !inOrder(text, `"n":0`, `"n":1`, `"n":2`, `"n":3`, `"n":4`) {
		t.Errorf("got %q, want the 5 lines in order", text)
	}
}

// failOnce fails its first write and records the others.
type failOnce struct {
	writeCounter
	failed bool
}

func (w *failOnce) Write(p []byte) (int, error) {
	w.mu.Lock()
	failed := w.failed
	w.failed = true
	w.mu.Unlock()
	if !failed {
		return 0, errors.New("disk full")
	}
	return w.writeCounter.Write(p)
}

// TestLoggerWritesOnAfterAFailedWrite: the lines of a failed write are lost, and the
// next ones are written.
func TestLoggerWritesOnAfterAFailedWrite(t *testing.T) {
	out := &failOnce{}
	log, err := New(Config{Level: "info", Format: "json", FlushInterval: time.Hour}, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	log.Info("lost")
	_ = log.Sync()
	log.Info("after the failure")
	_ = log.Sync()
	if text, _ := out.got(); strings.Contains(text, "lost") || !strings.Contains(text, "after the failure") {
		t.Errorf("got %q, want the line after the failed write only", text)
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
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
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
				log, err := New(Config{Level: "info", Format: "json", FlushInterval: interval}, nil, sink.out)
				if err != nil {
					b.Fatal(err)
				}
				defer log.Close()
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					log.Info("request", zap.String("request_id", "Q7ZB4KX2M3N5P6R7"), zap.String("method", "POST"),
						zap.String("route", "/v1/chat"), zap.Int("status", 200), zap.String("tenant", "qinghe-bank"),
						zap.Duration("latency", 1234567))
				}
				// CPU time, its flushing included, varies less than ns/op on a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
