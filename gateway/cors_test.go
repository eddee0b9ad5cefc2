package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/ratelimit"
)

// eventsHandoff is a desk that serves only a session's events: one handoff event,
// recording the id the client resumed after.
type eventsHandoff struct {
	Handoff // the other methods are not called: a nil interface, which panics if they are
	after   chan int64
}

func (h *eventsHandoff) SessionEvents(ctx context.Context, ref handoff.Ref, after int64) (<-chan handoff.Event, error) {
	h.after <- after
	ch := make(chan handoff.Event, 1)
	ch <- handoff.Event{ID: after + 1, Name: "handoff", Data: []byte(`{"status":"waiting","position":1}`)}
	close(ch)
	return ch, nil
}

// TestCORSEventsStream: the widget on a page of another origin resumes a session's
// events stream with Last-Event-ID, a header it may only send once a preflight allows it.
func TestCORSEventsStream(t *testing.T) {
	desk := &eventsHandoff{after: make(chan int64, 1)}
	deps := testDeps(t, &fakeDialogue{}, &fakeTenants{}, ratelimit.Config{}, nil, nil)
	deps.Handoff = desk
	s, err := New(demoConfig(), deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	const path = "/v1/sessions/abcdefgh/events"

	res := do(t, s.Handler(), request{method: "OPTIONS", path: path, header: map[string]string{
		"Origin": originBank, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization,last-event-id",
	}}).Result()
	var allowed []string
	for _, h := range strings.Split(res.Header.Get("Access-Control-Allow-Headers"), ",") {
		allowed = append(allowed, strings.ToLower(strings.TrimSpace(h)))
	}
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != originBank ||
		!slices.Contains(allowed, "last-event-id") || !slices.Contains(allowed, "authorization") {
		t.Errorf("preflight of %s with Last-Event-ID: %d, ACAO %q, Allow-Headers %q; want 204 allowing the bank's origin, Authorization and Last-Event-ID",
			path, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"), res.Header.Get("Access-Control-Allow-Headers"))
	}

	h := bearer(tokenBank)
	h["Origin"] = originBank
	h["Accept"] = "text/event-stream"
	h["Last-Event-ID"] = "41"
	w := do(t, s.Handler(), request{method: "GET", path: path, header: h})
	if w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != originBank ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET %s from the bank's origin: %d, ACAO %q, type %q; want an event stream the page may read",
			path, w.Code, w.Header().Get("Access-Control-Allow-Origin"), w.Header().Get("Content-Type"))
	}
	select {
	case after := <-desk.after:
		if after != 41 {
			t.Errorf("the stream resumed after %d, want 41 (the Last-Event-ID sent)", after)
		}
	default:
		t.Error("the desk was not asked for the session's events")
	}
	if body := w.Body.String(); !strings.Contains(body, "id: 42\nevent: handoff\n") {
		t.Errorf("stream body %q, want the event after 41", body)
	}
}
