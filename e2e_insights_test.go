package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fengda-ai/fengda/insights"
	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/tenant"
)

// feedbackWalk: a bank customer chats and rates the answer down, then changes it to up
// (204 each); another user of the bank and a user of the shop rating that turn get 404,
// as does a rating of an unknown turn; a bad rating is 400. It returns the turn id.
func feedbackWalk(t *testing.T, base string) string {
	t.Helper()
	bank := client{t, base, tokenFor(t, base, bankAPIKey, "u1")}
	var r chatReply
	if resp := bank.do("POST", "/v1/chat", map[string]string{"message": "我的信用卡丢了，卡号6222021234567890123怎么办"}, &r); resp.StatusCode != http.StatusOK || r.TurnID == "" {
		t.Fatalf("chat: %d %+v", resp.StatusCode, r)
	}
	path := "/v1/turns/" + r.TurnID + "/feedback"
	// At once: the rating waits for the turn's record to be written.
	if resp := bank.do("POST", path, map[string]string{"rating": "down", "comment": "not my question"}, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the customer's rating: %d, want 204", resp.StatusCode)
	}
	if resp := bank.do("POST", path, map[string]string{"rating": "up"}, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("the customer's second rating: %d, want 204", resp.StatusCode)
	}
	other := client{t, base, tokenFor(t, base, bankAPIKey, "u2")}
	shop := client{t, base, tokenFor(t, base, shopAPIKey, "u1")}
	for name, c := range map[string]client{"another bank user": other, "a shop user": shop} {
		var e errorReply
		if resp := c.do("POST", path, map[string]string{"rating": "down"}, &e); resp.StatusCode != http.StatusNotFound || e.Error.Code != "not_found" {
			t.Errorf("%s rating the turn: %d %q, want 404 not_found", name, resp.StatusCode, e.Error.Code)
		}
	}
	if resp := bank.do("POST", "/v1/turns/turn-unknown-0001/feedback", map[string]string{"rating": "down"}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("rating an unknown turn: %d, want 404", resp.StatusCode)
	}
	if resp := bank.do("POST", path, map[string]string{"rating": "5 stars"}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad rating: %d, want 400", resp.StatusCode)
	}
	return r.TurnID
}

func TestInsightsFeedback(t *testing.T) {
	feedbackWalk(t, testServer(t, nil))
}

func TestInsightsFeedbackQueueOff(t *testing.T) {
	feedbackWalk(t, testServer(t, map[string]string{"FENGDA_QUEUE_MODE": "off"}))
}

// TestInsightsRecordsExternal runs the walk on the machine's NATS server and reads the
// records the program wrote through the insights package (no route shows them yet):
// the turn with its source and redacted question, and the customer's newest rating;
// the shop's stream holds nothing of it.
func TestInsightsRecordsExternal(t *testing.T) {
	place := queuetest.Backends[1].Place(t)
	nc, err := nats.Connect(place.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := insights.NewJetStreamStore(js, place.Stream, place.Subject+"_insights", 1, insights.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, id := range []tenant.ID{bankID, shopID} {
			_ = js.DeleteStream(ctx, store.StreamName(id))
		}
	})
	p := startProgram(t, place.Env(), nil, nil)
	turnID := feedbackWalk(t, p.base)

	ctx := context.Background()
	turns, err := store.List(ctx, bankID, time.Now().Add(-time.Minute), insights.KindTurn)
	if err != nil || len(turns) != 1 {
		t.Fatalf("the bank's turns = %+v, %v; want one", turns, err)
	}
	got := turns[0]
	if got.TurnID != turnID || got.User != "u1" || got.Source == "" || got.Session == "" {
		t.Errorf("turn record %+v", got)
	}
	if strings.Contains(got.Question, "6222021234567890123") || !strings.Contains(got.Question, "信用卡") {
		t.Errorf("recorded question %q: want the card number redacted, the rest kept", got.Question)
	}
	fbs, err := store.List(ctx, bankID, time.Time{}, insights.KindFeedback)
	if err != nil || len(fbs) != 1 || fbs[0].Rating != insights.RatingUp || fbs[0].TurnID != turnID {
		t.Errorf("the bank's ratings = %+v, %v; want the newest, up", fbs, err)
	}
	if shop, err := store.List(ctx, shopID, time.Time{}); err != nil || len(shop) != 0 {
		t.Errorf("the shop's records = %+v, %v; want none", shop, err)
	}
}
