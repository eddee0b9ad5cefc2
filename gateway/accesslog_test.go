package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/dialogue"
)

// A tenant over its limit gets one access line of 429 a second, which says how many
// were left out; the metrics count every one, and other statuses are all logged.
func TestAccessLogThinsRefusals(t *testing.T) {
	log, logs := observedLogger()
	s, _ := newTestServer(t, testConfig(), nil, log)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	chat := func() int {
		return do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenSlow), body: `{"message":"hi"}`}).Code
	}
	statuses := map[int]int{}
	for range 22 { // slow: 1 request a second, burst 2
		statuses[chat()]++
	}
	if statuses[http.StatusOK] != 2 || statuses[http.StatusTooManyRequests] != 20 {
		t.Fatalf("statuses %v, want 2× 200 and 20× 429", statuses)
	}
	lines := func(status int64) int {
		n := 0
		for _, e := range logs.FilterMessage("request").All() {
			if e.ContextMap()["status"] == status {
				n++
			}
		}
		return n
	}
	if got := lines(200); got != 2 {
		t.Errorf("%d access lines of 200, want 2", got)
	}
	if got := lines(429); got != 1 {
		t.Errorf("%d access lines of 429 within one second, want 1", got)
	}

	now = now.Add(1500 * time.Millisecond)
	chat() // 200: a token refilled
	if got := chat(); got != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", got)
	}
	all := logs.FilterMessage("request").FilterField(zap.Int("status", 429)).All()
	if len(all) != 2 {
		t.Fatalf("%d access lines of 429 after another second, want 2", len(all))
	}
	if got := all[1].ContextMap()["refusals_not_logged"]; got != int64(19) {
		t.Errorf("refusals_not_logged = %v, want 19", got)
	}
	body := do(t, s.Handler(), request{method: "GET", path: "/metrics"}).Body.String()
	if want := `fengda_http_requests_total{code="429",route="/v1/chat",tenant="slow"} 21`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %s: every 429 is counted", want)
	}
}

// The access line of a 5xx says why, so that an operator reading it need not guess;
// a 4xx's line carries no error.
func TestAccessLineCarriesCauseOf5xx(t *testing.T) {
	log, logs := observedLogger()
	d := &fakeDialogue{submit: func(context.Context, dialogue.Turn) (dialogue.Reply, error) {
		return dialogue.Reply{}, fmt.Errorf("store turn: %w: redis append: i/o timeout", dialogue.ErrUnavailable)
	}}
	s, _ := newTestServer(t, testConfig(), d, log)
	if code := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"hi"}`}).Code; code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", code)
	}
	if code := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":`}).Code; code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", code)
	}
	lines := logs.FilterMessage("request").All()
	if len(lines) != 2 {
		t.Fatalf("%d access lines, want 2", len(lines))
	}
	if got, _ := lines[0].ContextMap()["error"].(string); !strings.Contains(got, "redis append: i/o timeout") {
		t.Errorf("503 line error = %q, want the cause", got)
	}
	if got, ok := lines[1].ContextMap()["error"]; ok {
		t.Errorf("400 line has error %q, want none", got)
	}
}
