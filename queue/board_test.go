package queue

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/queue/queuetest"
)

// seen collects a board's records as a watcher applies them.
type seen struct {
	mu sync.Mutex
	m  map[string]string
	ch chan struct{} // signalled on every record
}

func newSeen() *seen { return &seen{m: map[string]string{}, ch: make(chan struct{}, 100)} }

func (s *seen) apply(key string, value []byte) {
	s.mu.Lock()
	s.m[key] = string(value)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *seen) get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}

// waitFor waits up to d for key to hold want and returns how long it took.
func (s *seen) waitFor(t *testing.T, key, want string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if v, ok := s.get(key); ok && v == want {
			return time.Since(start)
		}
		select {
		case <-s.ch:
		case <-time.After(10 * time.Millisecond):
		case <-deadline.C:
			v, _ := s.get(key)
			t.Fatalf("record %s = %q after %s, want %q", key, v, d, want)
		}
	}
}

func openBoard(t *testing.T, q *Queue) *Board {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := q.Board(ctx, "TEST", time.Hour)
	if err != nil {
		t.Fatalf("Board: %v", err)
	}
	return b
}

func watch(t *testing.T, b *Board, s *seen) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := b.Watch(ctx, s.apply); err != nil {
		t.Fatalf("Watch: %v", err)
	}
}

// A record written by one replica reaches another within a second; a replica that
// starts watching later gets every record already there before Watch returns.
func TestBoardSharedByReplicas(t *testing.T) {
	cfg := config(t, queuetest.Backends[1]) // two replicas need a shared server
	q1, q2 := open(t, cfg, tenantA), open(t, cfg, tenantA)
	b1, b2 := openBoard(t, q1), openBoard(t, q2)
	s2 := newSeen()
	watch(t, b2, s2)

	ctx := context.Background()
	if err := b1.Put(ctx, "acme.t.0001", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	took := s2.waitFor(t, "acme.t.0001", "v1", time.Second)
	t.Logf("replica 2 saw the record %s after it was written", took)
	if err := b1.Put(ctx, "acme.t.0001", []byte("v2")); err != nil {
		t.Fatal(err)
	}
	s2.waitFor(t, "acme.t.0001", "v2", time.Second)

	q3 := open(t, cfg, tenantA)
	s3 := newSeen()
	watch(t, openBoard(t, q3), s3)
	if v, ok := s3.get("acme.t.0001"); !ok || v != "v2" {
		t.Fatalf("a replica starting later has %q (%v), want v2 when Watch returns", v, ok)
	}
}

// The embedded server keeps the board's records across a restart.
func TestBoardSurvivesRestart(t *testing.T) {
	cfg := config(t, queuetest.Backends[0])
	q := open(t, cfg, tenantA)
	if err := openBoard(t, q).Put(context.Background(), "acme.u.0002", []byte("before")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := q.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	q2 := open(t, cfg, tenantA)
	s := newSeen()
	watch(t, openBoard(t, q2), s)
	if v, ok := s.get("acme.u.0002"); !ok || v != "before" {
		t.Fatalf("after a restart the record is %q (%v), want \"before\"", v, ok)
	}
	// The watcher ends with the queue: goleak, in TestMain, checks it.
}

func TestBoardRefusesBadNames(t *testing.T) {
	q := open(t, config(t, queuetest.Backends[0]), tenantA)
	for _, name := range []string{"", "a.b", "a b", "../x"} {
		if _, err := q.Board(context.Background(), name, time.Hour); err == nil {
			t.Errorf("Board(%q) = nil error", name)
		}
	}
	if _, err := q.Board(context.Background(), "OK", 0); err == nil {
		t.Error("Board with max age 0 = nil error")
	}
}
