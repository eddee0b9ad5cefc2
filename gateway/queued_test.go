package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/tenant"
)

// A turn whose wait for the queue ran out is 202 with its turn id.
func TestChatCreateQueued(t *testing.T) {
	d := &fakeDialogue{submit: func(context.Context, dialogue.Turn) (dialogue.Reply, error) {
		return dialogue.Reply{Queued: true, SessionID: "sess-0001", TurnID: "turn-0001"}, nil
	}}
	s, _ := newTestServer(t, testConfig(), d, nil)
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"hi"}`})
	if w.Code != 202 {
		t.Fatalf("status = %d, want 202; body %s", w.Code, w.Body)
	}
	if got, want := strings.TrimSpace(w.Body.String()), `{"status":"queued","session_id":"sess-0001","turn_id":"turn-0001"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
}

// GET /v1/turns/{turn_id} asks for the caller's own turn (tenant and user from the
// token): 200 with the reply once answered, 202 while queued, 404 otherwise.
func TestTurnGet(t *testing.T) {
	queuedTurns := func(_ context.Context, tn tenant.ID, user, id string) (dialogue.Reply, error) {
		switch {
		case tn != "acme" || user != "u1":
			return dialogue.Reply{}, dialogue.ErrNotFound
		case id == "turn-0001":
			return fixedReply, nil
		case id == "turn-0002":
			return dialogue.Reply{Queued: true, SessionID: "sess-0001", TurnID: id}, nil
		case id == "turn-down":
			return dialogue.Reply{}, dialogue.ErrUnavailable
		}
		return dialogue.Reply{}, dialogue.ErrNotFound
	}
	tests := []struct {
		name, path, token string
		wantStatus        int
		wantBody          string
	}{
		{name: "answered", path: "/v1/turns/turn-0001", token: tokenAcme, wantStatus: 200,
			wantBody: `{"session_id":"sess-0001","turn_id":"turn-0001","answer":"Opening hours are 9 to 5.","source":"faq","confidence":0.92,` +
				`"citations":[{"id":"faq-7","question":"When are you open?"}],"suggestions":[],"latency_ms":1.5}`},
		{name: "pending", path: "/v1/turns/turn-0002", token: tokenAcme, wantStatus: 202,
			wantBody: `{"status":"queued","session_id":"sess-0001","turn_id":"turn-0002"}`},
		{name: "another tenant's turn", path: "/v1/turns/turn-0001", token: tokenBank, wantStatus: 404},
		{name: "unknown turn", path: "/v1/turns/turn-9999", token: tokenAcme, wantStatus: 404},
		{name: "store down", path: "/v1/turns/turn-down", token: tokenAcme, wantStatus: 503},
		{name: "no token", path: "/v1/turns/turn-0001", wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, testConfig(), &fakeDialogue{queued: queuedTurns}, nil)
			var header map[string]string
			if tt.token != "" {
				header = bearer(tt.token)
			}
			w := do(t, s.Handler(), request{method: "GET", path: tt.path, header: header})
			if w.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if tt.wantBody != "" {
				if got := strings.TrimSpace(w.Body.String()); got != tt.wantBody {
					t.Errorf("body =\n%s\nwant\n%s", got, tt.wantBody)
				}
			}
		})
	}
}

// A queued streamed turn outlives the turn deadline and ends with a queued event when
// the engine's wait runs out.
func TestChatStreamQueued(t *testing.T) {
	meta := metaEvent()
	meta.Queued = true
	queued := dialogue.Event{Kind: dialogue.EventQueued, SessionID: meta.SessionID, TurnID: meta.TurnID}
	// As the engine does for a queued turn, the events outlive ctx's deadline.
	d := &fakeDialogue{stream: func(ctx context.Context, t dialogue.Turn) (<-chan dialogue.Event, error) {
		ch := make(chan dialogue.Event, 2)
		ch <- meta
		go func() {
			defer close(ch)
			time.Sleep(120 * time.Millisecond)
			ch <- queued
		}()
		return ch, nil
	}}
	s, _ := newTestServer(t, testConfig(func(c *Config) { c.RequestTimeout = 50 * time.Millisecond }), d, nil)
	srv := newHTTPServer(t, s)
	resp := postStream(t, t.Context(), srv.Client(), srv.URL)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	got := readEvents(t, resp.Body)
	want := []sseEvent{
		{"meta", `{"session_id":"sess-0001","turn_id":"turn-0001"}`},
		{"queued", `{"status":"queued","session_id":"sess-0001","turn_id":"turn-0001"}`},
	}
	if diff := cmp.Diff(got, want, cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
}
