package queue

import (
	"context"
	"errors"
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
