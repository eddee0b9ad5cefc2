package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/tenant"
)

// collectTimeout bounds the server round trips of one metrics scrape.
const collectTimeout = 2 * time.Second

// TenantStats is one tenant's backlog, for autoscaling.
type TenantStats struct {
	Tenant tenant.ID
	// Pending counts messages not yet delivered to any replica.
	Pending uint64
	// AckPending counts messages delivered and not yet acknowledged, on all replicas.
	AckPending int
	// Redelivered counts unacknowledged messages delivered more than once.
	Redelivered int
	// OldestAge is the age of the oldest message not yet delivered: how long work
	// waits before a replica takes it. 0 with nothing pending.
	OldestAge time.Duration
}

// Stats returns every consumed tenant's backlog, in the order given to Open. It costs
// one or two server round trips per tenant.
func (q *Queue) Stats(ctx context.Context) ([]TenantStats, error) {
	if q.isClosed() {
		return nil, ErrClosed
	}
	out := make([]TenantStats, 0, len(q.tenants))
	for _, t := range q.tenants {
		ci, err := q.consumers[t].Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("queue: stats for tenant %s: %w", t, closedError(err))
		}
		s := TenantStats{Tenant: t, Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered}
		if ci.NumPending > 0 {
			// A work queue keeps only unacknowledged messages, and the consumer has
			// delivered everything up to Delivered.Stream: the next message on the
			// tenant's subject after it is the oldest one waiting.
			m, err := q.stream.GetMsg(ctx, ci.Delivered.Stream+1, jetstream.WithGetMsgSubject(q.subject(t)))
			switch {
			case err == nil:
				s.OldestAge = max(time.Since(m.Time), 0)
			case !errors.Is(err, jetstream.ErrMsgNotFound):
				return nil, fmt.Errorf("queue: stats for tenant %s: oldest message: %w", t, closedError(err))
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// Collector returns a Prometheus collector of the tenants' backlogs, read from the
// server at each scrape: fengda_queue_pending, fengda_queue_oldest_age_seconds,
// fengda_queue_ack_pending and fengda_queue_redelivered, gauges labelled by tenant. A
// scrape that cannot reach the server logs a warning and reports none of them.
func (q *Queue) Collector() prometheus.Collector {
	labels := []string{"tenant"}
	return &collector{
		q:           q,
		pending:     prometheus.NewDesc("fengda_queue_pending", "Queued messages not yet delivered to a replica.", labels, nil),
		oldestAge:   prometheus.NewDesc("fengda_queue_oldest_age_seconds", "Age of the oldest queued message not yet delivered.", labels, nil),
		ackPending:  prometheus.NewDesc("fengda_queue_ack_pending", "Messages delivered and not yet acknowledged, all replicas.", labels, nil),
		redelivered: prometheus.NewDesc("fengda_queue_redelivered", "Unacknowledged messages delivered more than once.", labels, nil),
	}
}

type collector struct {
	q                                           *Queue
	pending, oldestAge, ackPending, redelivered *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldestAge
	ch <- c.ackPending
	ch <- c.redelivered
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), collectTimeout)
	defer cancel()
	stats, err := c.q.Stats(ctx)
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			c.q.log.Warn("queue: stats for metrics", zap.Error(err))
		}
		return
	}
	for _, s := range stats {
		t := string(s.Tenant)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending), t)
		ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, s.OldestAge.Seconds(), t)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(s.AckPending), t)
		ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(s.Redelivered), t)
	}
}
