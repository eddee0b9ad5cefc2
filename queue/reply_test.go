package queue

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/queue/queuetest"
)

// A result published by another connection reaches the waiter; a wait past its
// deadline returns the context's error.
func TestAwaitReply(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		cfg := config(t, b)
		waiting := open(t, cfg, tenantA, tenantB)
		working := waiting
		if b.External {
			working = open(t, cfg, tenantA, tenantB) // another replica
		}

		t.Run("reply reaches the waiter", func(t *testing.T) {
			w, err := waiting.Await(tenantA, "turn-1")
			if err != nil {
				t.Fatal(err)
			}
			consume(t, working, 1, func(_ context.Context, m Msg) error {
				return working.Reply(m.Tenant, m.ID, append([]byte("answer to "), m.Data...))
			})
			publish(t, waiting, tenantA, "turn-1")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := w.Wait(ctx)
			if err != nil || string(got) != "answer to data turn-1" {
				t.Fatalf("Wait = (%q, %v), want the answer", got, err)
			}
		})
		t.Run("another tenant's reply does not", func(t *testing.T) {
			w, err := waiting.Await(tenantA, "turn-2")
			if err != nil {
				t.Fatal(err)
			}
			if err := working.Reply(tenantB, "turn-2", []byte("not yours")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if got, err := w.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Wait = (%q, %v), want context.DeadlineExceeded", got, err)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			w, err := waiting.Await(tenantA, "turn-3")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := w.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("Wait took %s past a 100ms deadline", d)
			}
		})
		t.Run("bad key", func(t *testing.T) {
			if _, err := waiting.Await(tenantA, "a.b"); err == nil {
				t.Fatal("Await with a dotted key succeeded")
			}
		})
	})
}

// A wait holds a buffer for the one result it receives, not nats.go's default of
// 65,536 messages (half a MiB allocated for every spilled turn, which under a burst
// took most of the process's CPU).
func TestAwaitAllocatesLittle(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		q := open(t, config(t, b), tenantA)
		const n = 100
		cycle := func(i int) {
			key := "small-" + strconv.Itoa(i)
			w, err := q.Await(tenantA, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Reply(tenantA, key, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := w.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		cycle(-1) // warm up
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range n {
			cycle(i)
		}
		runtime.ReadMemStats(&after)
		// Everything the process allocated meanwhile counts, the embedded server's too.
		if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 64<<10 {
			t.Errorf("%d bytes allocated per wait, want under 64 KiB", per)
		}
	})
}
