package openai

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLLMLogsCarryRequestID: the line logged when the upstream fails carries the
// request id of the request and the tenant of the logger it was given, and not
// the user's message.
func TestLLMLogsCarryRequestID(t *testing.T) {
	v := newVendor(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		writeStatus(w, http.StatusBadRequest, "bad request")
	})
	core, logs := observer.New(zapcore.DebugLevel)
	l, err := NewLLM(Config{BaseURL: v.srv.URL, Model: "m", MaxRetries: -1}, LLMDeps{
		Client: v.srv.Client(),
		FAQ:    served(newTestFAQ(t, "bank-zh")),
		Log:    zap.New(core).With(zap.String("tenant", "bank-a")),
	})
	if err != nil {
		t.Fatal(err)
	}
	const msg = "my secret question 13812345678"
	ctx := context.Background()
	if _, err := l.Answer(ctx, nlpclient.Request{Message: msg, RequestID: "req-42"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Stream(ctx, nlpclient.Request{Message: msg, RequestID: "req-42"}, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	lines := logs.FilterMessage("model upstream failed, answering without it").All()
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2: %v", len(lines), logs.All())
	}
	for _, line := range lines {
		f := line.ContextMap()
		if f["request_id"] != "req-42" || f["tenant"] != "bank-a" {
			t.Errorf("line %v: want request_id req-42 and tenant bank-a", f)
		}
		for k, val := range f {
			if s, ok := val.(string); ok && strings.Contains(s, "secret question") {
				t.Errorf("field %s holds the message: %q", k, s)
			}
		}
	}
}
