package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/insights"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

var _ Feedback = (*insights.Recorder)(nil)

// feedbackServer is a test server whose feedback goes to a recorder on a memory store
// holding turn-0001 of acme's u1 and turn-0002 of bank's u2.
func feedbackServer(t *testing.T) (*Server, insights.Store) {
	t.Helper()
	store, err := insights.NewMemoryStore(insights.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := store.Append(context.Background(), []insights.Event{
		{Kind: insights.KindTurn, Tenant: "acme", TurnID: "turn-0001", Session: "sess-0001", User: "u1", Source: "faq", At: now},
		{Kind: insights.KindTurn, Tenant: "bank", TurnID: "turn-0002", Session: "sess-0002", User: "u2", Source: "faq", At: now},
	}); err != nil {
		t.Fatal(err)
	}
	rec, err := insights.NewRecorder(store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deps := testDeps(t, &fakeDialogue{}, &fakeTenants{}, ratelimit.Config{}, nil, nil)
	deps.Feedback = rec
	s, err := New(testConfig(), deps)
	if err != nil {
		t.Fatal(err)
	}
	return s, store
}

func TestFeedback(t *testing.T) {
	s, store := feedbackServer(t)
	cases := []struct {
		name, token, turn, body string
		status                  int
		code                    string
	}{
		{"the turn's user", tokenAcme, "turn-0001", `{"rating":"up"}`, http.StatusNoContent, ""},
		{"a second rating replaces the first", tokenAcme, "turn-0001", `{"rating":"down","comment":"wrong card"}`, http.StatusNoContent, ""},
		{"another user of the tenant", "minted.acme.u9", "turn-0001", `{"rating":"down"}`, http.StatusNotFound, "not_found"},
		{"another tenant's user", tokenBank, "turn-0001", `{"rating":"down"}`, http.StatusNotFound, "not_found"},
		{"an unknown turn", tokenAcme, "turn-none0", `{"rating":"down"}`, http.StatusNotFound, "not_found"},
		{"a bad rating", tokenAcme, "turn-0001", `{"rating":"meh"}`, http.StatusBadRequest, "invalid_request"},
		{"no rating", tokenAcme, "turn-0001", `{}`, http.StatusBadRequest, "invalid_request"},
		{"a comment too long", tokenAcme, "turn-0001", `{"rating":"up","comment":"` + strings.Repeat("字", 1001) + `"}`, http.StatusBadRequest, "invalid_request"},
		{"an unknown field", tokenAcme, "turn-0001", `{"rating":"up","stars":5}`, http.StatusBadRequest, "invalid_request"},
		{"an agent", tokenAcmeAgent, "turn-0001", `{"rating":"up"}`, http.StatusForbidden, "forbidden"},
		{"an admin", "minted-admin.acme.ops-1", "turn-0001", `{"rating":"up"}`, http.StatusForbidden, "forbidden"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := do(t, s.Handler(), request{method: "POST", path: "/v1/turns/" + c.turn + "/feedback", body: c.body, header: bearer(c.token)})
			if w.Code != c.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, c.status, w.Body)
			}
			if c.code != "" {
				if got := errorOf(t, w.Body.Bytes()).Code; got != c.code {
					t.Errorf("code = %q, want %q", got, c.code)
				}
			} else if w.Body.Len() != 0 {
				t.Errorf("body %q, want none", w.Body)
			}
		})
	}
	got, err := store.List(context.Background(), tenant.ID("acme"), time.Time{}, insights.KindFeedback)
	if err != nil || len(got) != 1 || got[0].Rating != insights.RatingDown || got[0].Comment != "wrong card" || got[0].User != "u1" {
		t.Errorf("acme's feedback = %+v, %v; want u1's one rating, down, with its comment", got, err)
	}
}

// Without a recorder the route does not exist.
func TestFeedbackOff(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/turns/turn-0001/feedback", body: `{"rating":"up"}`, header: bearer(tokenAcme)})
	if w.Code != http.StatusNotFound {
		t.Errorf("status = %d, want 404", w.Code)
	}
}
