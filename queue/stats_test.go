package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/queue/queuetest"
	"github.com/prometheus/client_golang/prometheus"
)

// Stats and the collector report each tenant's backlog.
func TestStats(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		q := open(t, config(t, b), tenantA, tenantB)
		for i := range 3 {
			publish(t, q, tenantA, fmt.Sprintf("turn-%d", i))
		}
		time.Sleep(50 * time.Millisecond)
		stats, err := q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 || stats[0].Tenant != tenantA || stats[1].Tenant != tenantB {
			t.Fatalf("Stats = %+v, want %s then %s", stats, tenantA, tenantB)
		}
		a, bb := stats[0], stats[1]
		if a.Pending != 3 || a.AckPending != 0 || a.Redelivered != 0 || a.OldestAge < 40*time.Millisecond || a.OldestAge > 10*time.Second {
			t.Errorf("tenant A stats = %+v, want 3 pending, none in flight, oldest ≥ 40ms", a)
		}
		if bb.Pending != 0 || bb.OldestAge != 0 {
			t.Errorf("tenant B stats = %+v, want nothing pending", bb)
		}

		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(q.Collector())
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				got[f.GetName()+"{"+m.GetLabel()[0].GetValue()+"}"] = m.GetGauge().GetValue()
			}
		}
		for key, want := range map[string]float64{
			"fengda_queue_pending{bank-a}":     3,
			"fengda_queue_pending{shop-b}":     0,
			"fengda_queue_ack_pending{bank-a}": 0,
			"fengda_queue_redelivered{bank-a}": 0,
		} {
			if v, ok := got[key]; !ok || v != want {
				t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
			}
		}
		if v := got["fengda_queue_oldest_age_seconds{bank-a}"]; v <= 0 {
			t.Errorf("fengda_queue_oldest_age_seconds{bank-a} = %v, want > 0", v)
		}
		if len(families) != 4 {
			t.Errorf("gathered %d metric families, want 4", len(families))
		}
	})
}
