package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/fengda-ai/fengda/tenant"
)

// A queued turn's result travels back over core NATS, not the stream: the request
// that waits for it subscribes to a reply subject of its own, and whichever replica
// works the turn publishes the result there. If nobody waits any more the result is
// simply dropped; the worker has stored it anyway.

// replySubject is where the result of key for tenant t is published. It sits outside
// the stream's subjects and carries the tenant, so a result never reaches another
// tenant's waiter.
func (q *Queue) replySubject(t tenant.ID, key string) string {
	return "_" + q.cfg.Subject + ".reply." + string(t) + "." + key
}

// awaitQueueLen is the buffer of a Waiter's subscription: it receives one message.
const awaitQueueLen = 2

// Waiter receives the first result published for one key.
type Waiter struct {
	sub  *nats.Subscription
	once sync.Once
}

// Await subscribes to the result of key for tenant t. Call it before publishing the
// message whose result it waits for, on the same Queue, so the subscription is in
// place before any replica can reply. key must be one subject token: no dots, spaces
// or wildcards. It returns ErrClosed after Drain.
func (q *Queue) Await(t tenant.ID, key string) (*Waiter, error) {
	if !validToken(key) {
		return nil, fmt.Errorf("queue: await: key %q is not a subject token", key)
	}
	if q.isClosed() {
		return nil, ErrClosed
	}
	sub, err := q.nc.SubscribeSync(q.replySubject(t, key))
	if err != nil {
		return nil, fmt.Errorf("queue: await: %w", closedError(err))
	}
	// The server drops the interest by itself after the first result.
	if err := sub.AutoUnsubscribe(1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("queue: await: %w", closedError(err))
	}
	return &Waiter{sub: sub}, nil
}

// Wait returns the first result, or ctx's error when ctx ends first, or ErrClosed if
// the queue closes meanwhile. It unsubscribes; a Waiter waits once.
func (w *Waiter) Wait(ctx context.Context) ([]byte, error) {
	defer w.Close()
	m, err := w.sub.NextMsgWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("queue: wait: %w", closedError(err))
	}
	return m.Data, nil
}

// Close stops waiting. It is safe to call more than once and after Wait.
func (w *Waiter) Close() {
	w.once.Do(func() { _ = w.sub.Unsubscribe() })
}

// Reply publishes data as the result of key for tenant t, to whoever awaits it.
func (q *Queue) Reply(t tenant.ID, key string, data []byte) error {
	if !validToken(key) {
		return fmt.Errorf("queue: reply: key %q is not a subject token", key)
	}
	if q.isClosed() {
		return ErrClosed
	}
	if err := q.nc.Publish(q.replySubject(t, key), data); err != nil {
		return fmt.Errorf("queue: reply: %w", closedError(err))
	}
	return nil
}

// closedError maps the client's errors for a closed connection or subscription to
// ErrClosed.
func closedError(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		return ErrClosed
	}
	return err
}
