package logging

import (
	"errors"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
)

// logBufferSize is how many bytes of log lines a logBuffer holds before it writes them
// out without waiting for its interval.
const logBufferSize = 256 << 10

// logBuffer holds log lines and writes them out together, one write for many lines
// rather than a system call for each: within its interval of the first line it holds,
// or once it is full, or on Flush or Sync. It keeps no goroutine of its own: a timer,
// armed by the first line held, writes them. Lines are written whole and in order.
type logBuffer struct {
	out      zapcore.WriteSyncer
	interval time.Duration
	size     int

	mu    sync.Mutex
	buf   []byte
	timer *time.Timer // armed while buf holds lines; nil until the first
}

func newLogBuffer(out zapcore.WriteSyncer, size int, interval time.Duration) *logBuffer {
	return &logBuffer{out: out, interval: interval, size: size}
}

// Write holds p, one encoded line, or writes it at once when it is larger than the
// buffer. An error is the error of writing out the lines held before.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > b.size {
			return b.out.Write(p)
		}
	}
	if len(b.buf) == 0 {
		if b.buf == nil {
			b.buf = make([]byte, 0, b.size)
		}
		if b.timer == nil {
			b.timer = time.AfterFunc(b.interval, func() { _ = b.Flush() })
		} else {
			b.timer.Reset(b.interval)
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes out the lines held.
func (b *logBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *logBuffer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	b.timer.Stop()
	_, err := b.out.Write(b.buf)
	b.buf = b.buf[:0] // lines that failed to be written are dropped, as unheld ones would be
	return err
}

// Sync writes out the lines held, then syncs the output.
func (b *logBuffer) Sync() error {
	return errors.Join(b.Flush(), b.out.Sync())
}
