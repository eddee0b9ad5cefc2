package queue

import (
	"errors"

	"github.com/nats-io/nats.go"
)

// Live is the queue's connection used for core NATS subjects, outside the spillover
// stream: live events that every replica's subscribers see at most once
// (handoff.Bus). Its subjects are under _<queue.subject>.live., so deployments that
// share a NATS cluster with subjects of their own do not see each other's events, and
// the stream (<queue.subject>.*) does not keep them.
type Live struct {
	nc     *nats.Conn
	prefix string
}

// Live returns the queue's connection for live events.
func (q *Queue) Live() *Live { return &Live{nc: q.nc, prefix: "_" + q.cfg.Subject + ".live."} }

// Publish sends data on subject, below the live prefix.
func (q *Live) Publish(subject string, data []byte) error {
	if q.nc == nil {
		return errors.New("queue: not connected")
	}
	return q.nc.Publish(q.prefix+subject, data)
}

// Subscribe calls fn with every message published on subject (below the live prefix) until
// unsubscribe is called. fn runs on the subscription's own goroutine and must not
// block.
func (q *Live) Subscribe(subject string, fn func(data []byte)) (unsubscribe func(), err error) {
	if q.nc == nil {
		return nil, errors.New("queue: not connected")
	}
	sub, err := q.nc.Subscribe(q.prefix+subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, err
	}
	// A slow consumer's messages are dropped, never buffered without bound: the
	// streams read what they missed back from the session store.
	_ = sub.SetPendingLimits(4096, 8<<20)
	return func() { _ = sub.Unsubscribe() }, nil
}
