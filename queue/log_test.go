package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/tenant"
)

// TestWorkLogsCarryRequestID: the queue's lines about a message carry its tenant and
// the request id it was published with, and the handler gets that header.
func TestWorkLogsCarryRequestID(t *testing.T) {
	cfg := config(t, queuetest.Backends[0])
	core, logs := observer.New(zapcore.WarnLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, []tenant.ID{"bank"}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Drain(context.Background()) })
	if _, err := q.Publish(ctx, "bank", "bank/s/1", []byte("turn"), map[string]string{RequestIDHeader: "req-7"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	stop := consume(t, q, 1, func(_ context.Context, m Msg) error {
		select {
		case got <- m.Header[RequestIDHeader]:
		default:
		}
		return errors.New("store down")
	})
	select {
	case id := <-got:
		if id != "req-7" {
			t.Errorf("the handler got request id %q, want req-7", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message was not delivered")
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.FilterMessage("queue: handler failed; the message will be delivered again").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no handler-failed line: %v", logs.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	line := logs.FilterMessage("queue: handler failed; the message will be delivered again").All()[0].ContextMap()
	if line["tenant"] != "bank" || line["request_id"] != "req-7" {
		t.Errorf("line %v: want tenant bank and request_id req-7", line)
	}
}
