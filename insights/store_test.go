package insights

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/fengda-ai/fengda/tenant"
)

// The contract of a Store, run against the memory store and the JetStream store on the
// embedded and the machine's server.

const (
	tenantA tenant.ID = "bank-a"
	tenantB tenant.ID = "shop-b"
)

type backend struct {
	name string
	open func(t *testing.T, cfg Config) Store
}

func backends() []backend {
	out := []backend{{name: "memory", open: func(t *testing.T, cfg Config) Store {
		s, err := NewMemoryStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}}}
	for _, b := range queuetest.Backends {
		out = append(out, backend{name: "jetstream-" + b.Name, open: func(t *testing.T, cfg Config) Store {
			t.Helper()
			place := b.Place(t)
			c := queue.Config{Mode: place.Mode, DataDir: place.DataDir, URL: place.URL, Stream: place.Stream, Subject: place.Subject}
			c.Defaults()
			q, err := queue.Open(context.Background(), c, []tenant.ID{tenantA, tenantB}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = q.Drain(context.Background()) })
			js, replicas := q.JetStream()
			s, err := NewJetStreamStore(js, q.Stream(), c.Subject+"_insights", replicas, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if b.External {
				// The shared server keeps streams: delete this test's.
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					for _, id := range []tenant.ID{tenantA, tenantB} {
						if err := js.DeleteStream(ctx, s.StreamName(id)); err != nil {
							t.Logf("delete stream %s: %v", s.StreamName(id), err)
						}
					}
				})
			}
			return s
		}})
	}
	return out
}

func turn(t tenant.ID, id, user string, at time.Time) Event {
	return Event{Kind: KindTurn, Tenant: t, TurnID: id, Session: "sess-" + id, User: user, Source: "faq", Confidence: 0.9, Entry: "e1", Question: "q " + id, At: at}
}

func ids(es []Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Kind) + ":" + e.TurnID + ":" + e.Rating
	}
	return out
}

func same(got, want []string) bool { return fmt.Sprint(got) == fmt.Sprint(want) }

func TestStoreContract(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			t.Run("record, list by time and kind, feedback replaces", func(t *testing.T) {
				s := b.open(t, Config{})
				now := time.Now().UTC()
				if err := s.Append(ctx, []Event{turn(tenantA, "turn-0001", "u1", now), turn(tenantA, "turn-0002", "u2", now)}); err != nil {
					t.Fatal(err)
				}
				fb := Event{Kind: KindFeedback, Tenant: tenantA, TurnID: "turn-0001", User: "u1", Rating: RatingUp, At: now}
				if err := s.Append(ctx, []Event{fb}); err != nil {
					t.Fatal(err)
				}
				fb.Rating = RatingDown
				if err := s.Append(ctx, []Event{fb}); err != nil {
					t.Fatal(err)
				}
				all, err := s.List(ctx, tenantA, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				if got, want := ids(all), []string{"turn:turn-0001:", "turn:turn-0002:", "feedback:turn-0001:down"}; !same(got, want) {
					t.Errorf("List all = %v, want %v", got, want)
				}
				fbs, _ := s.List(ctx, tenantA, time.Time{}, KindFeedback)
				if got, want := ids(fbs), []string{"feedback:turn-0001:down"}; !same(got, want) {
					t.Errorf("List feedback = %v, want %v", got, want)
				}
				turns, _ := s.List(ctx, tenantA, time.Time{}, KindTurn)
				if len(turns) != 2 || turns[0].Question != "q turn-0001" || turns[0].Entry != "e1" || turns[0].Source != "faq" {
					t.Errorf("List turns = %+v", turns)
				}
				later, _ := s.List(ctx, tenantA, time.Now().Add(time.Hour))
				if len(later) != 0 {
					t.Errorf("List since an hour ahead = %v, want none", ids(later))
				}
			})
			t.Run("owner lookup", func(t *testing.T) {
				s := b.open(t, Config{})
				if err := s.Append(ctx, []Event{turn(tenantA, "turn-0003", "u1", time.Now().UTC())}); err != nil {
					t.Fatal(err)
				}
				got, err := s.Turn(ctx, tenantA, "turn-0003")
				if err != nil || got.User != "u1" || got.Session != "sess-turn-0003" {
					t.Errorf("Turn = %+v, %v", got, err)
				}
				if _, err := s.Turn(ctx, tenantA, "turn-none0"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Turn unknown: %v, want ErrNotFound", err)
				}
			})
			t.Run("tenant isolation", func(t *testing.T) {
				s := b.open(t, Config{})
				if err := s.Append(ctx, []Event{turn(tenantA, "turn-0004", "u1", time.Now().UTC())}); err != nil {
					t.Fatal(err)
				}
				if got, err := s.List(ctx, tenantB, time.Time{}); err != nil || len(got) != 0 {
					t.Errorf("B's List = %v, %v; want none", ids(got), err)
				}
				if _, err := s.Turn(ctx, tenantB, "turn-0004"); !errors.Is(err, ErrNotFound) {
					t.Errorf("B's Turn of A's turn: %v, want ErrNotFound", err)
				}
				r, _ := NewRecorder(s, nil, nil)
				if err := r.Feedback(ctx, tenantB, "u1", "turn-0004", RatingDown, ""); !errors.Is(err, ErrNotFound) {
					t.Errorf("B's feedback on A's turn: %v, want ErrNotFound", err)
				}
				if err := r.Feedback(ctx, tenantA, "u2", "turn-0004", RatingDown, ""); !errors.Is(err, ErrNotFound) {
					t.Errorf("another user's feedback: %v, want ErrNotFound", err)
				}
				if err := r.Feedback(ctx, tenantA, "u1", "turn-0004", RatingDown, "wrong"); err != nil {
					t.Errorf("the owner's feedback: %v", err)
				}
			})
			t.Run("bound", func(t *testing.T) {
				s := b.open(t, Config{MaxRecordsPerTenant: 3})
				now := time.Now().UTC()
				for i := range 5 {
					if err := s.Append(ctx, []Event{turn(tenantA, fmt.Sprintf("turn-b%04d", i), "u1", now)}); err != nil {
						t.Fatal(err)
					}
				}
				got, _ := s.List(ctx, tenantA, time.Time{})
				if want := []string{"turn:turn-b0002:", "turn:turn-b0003:", "turn:turn-b0004:"}; !same(ids(got), want) {
					t.Errorf("List = %v, want the newest 3 %v", ids(got), want)
				}
			})
			t.Run("retention", func(t *testing.T) {
				s := b.open(t, Config{Retention: time.Second})
				if err := s.Append(ctx, []Event{turn(tenantA, "turn-r0001", "u1", time.Now().UTC())}); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for {
					got, err := s.List(ctx, tenantA, time.Time{})
					if err != nil {
						t.Fatal(err)
					}
					if len(got) == 0 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after 5s the records of a 1s retention are still there: %v", ids(got))
					}
					time.Sleep(200 * time.Millisecond)
				}
				if _, err := s.Turn(ctx, tenantA, "turn-r0001"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Turn past retention: %v, want ErrNotFound", err)
				}
			})
		})
	}
}
