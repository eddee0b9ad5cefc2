package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/tenant"
)

const (
	// pullWait is how long one pull request waits on the server for a message before
	// it is renewed. Longer means fewer idle requests; stopping does not wait for it.
	pullWait = 20 * time.Second
	// pullHeartbeat is how often the server confirms an idle pull request is alive;
	// two missed ones make the iterator send a new request.
	pullHeartbeat = 5 * time.Second
	// minNextWait and maxNextWait bound one wait of the Messages iterator. The
	// iterator decides whether to send the next pull request only when Next is entered
	// or a message arrives, and skips it while its previous request is still being
	// sent; when the reply beats that bookkeeping (a fast or in-process server) no
	// request is outstanding and Next would sit until two heartbeats are missed. So
	// the first wait after a message is short, and each timeout re-enters Next, which
	// sends the request if none is outstanding; the waits then double up to
	// maxNextWait. A wake-up is local and sends nothing by itself. maxNextWait must
	// exceed 2×pullHeartbeat: the iterator watches heartbeats within one Next call.
	minNextWait = 10 * time.Millisecond
	maxNextWait = 3 * pullHeartbeat
	// drainWait bounds how long stopping waits for a pull to drain.
	drainWait = 5 * time.Second
	// handBackDelay is the delay of a Nak that hands back a message not started.
	handBackDelay = time.Millisecond
	// retryPause is the pause before pulling again after pulling stopped on an error.
	retryPause = time.Second
	// ackTimeout bounds a synchronous ack.
	ackTimeout = 5 * time.Second
	// maxNakDelay caps the delay before a failed message is delivered again.
	maxNakDelay = 30 * time.Second
)

// RequestIDHeader is the header holding the id of the request that published a
// message, if any: the queue's log lines about the message carry it as request_id, as
// the publisher's own lines do.
const RequestIDHeader = "Fengda-Request-Id"

// Msg is one delivered message.
type Msg struct {
	Tenant tenant.ID
	// ID is the Nats-Msg-Id it was published with.
	ID   string
	Data []byte
	// Header holds the extra headers given to Publish.
	Header map[string]string
	// Delivered counts deliveries: more than 1 means an earlier delivery may have done
	// the work without its ack reaching the server.
	Delivered uint64

	raw jetstream.Msg
}

// InProgress tells the server the message is still being worked, restarting its
// AckWait. A handler that can outlast AckWait calls it periodically.
func (m Msg) InProgress() error {
	if m.raw == nil {
		return errors.New("queue: message was not delivered by a queue")
	}
	return m.raw.InProgress()
}

// Handler works one message. Returning nil acknowledges it: return only once the work
// is stored. An error Naks it: it is delivered again later, after a delay that grows
// with Delivered. ctx is Consume's context.
type Handler func(ctx context.Context, m Msg) error

// delivery is a message fetched from tenant index i's consumer.
type delivery struct {
	i   int
	msg jetstream.Msg
}

// Consume works the tenants' messages with h, with at most capacity handlers running
// on this replica, until ctx ends or Drain is called; then it returns nil once its
// handlers have returned and been acknowledged. It returns ErrClosed if the connection
// closes under it.
//
// Each tenant has a goroutine that pulls one message at a time from its durable
// consumer and holds it until a handler slot is free; free slots go to the tenants
// holding a message in round-robin order, so a tenant's backlog cannot starve another
// tenant. At most one message per tenant waits for a slot on this replica (its AckWait
// is kept from running out while it waits).
//
// Cancelling ctx also cancels the handlers' context. To let in-flight work finish on
// shutdown, call Drain instead.
func (q *Queue) Consume(ctx context.Context, capacity int, h Handler) error {
	if capacity < 1 {
		return fmt.Errorf("queue: consume: capacity %d, want at least 1", capacity)
	}
	pullCtx, stopPull := context.WithCancel(ctx)
	defer stopPull()
	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	done := make(chan struct{})
	defer close(done)

	q.mu.Lock()
	switch {
	case q.closed || q.draining:
		q.mu.Unlock()
		return ErrClosed
	case q.consuming:
		q.mu.Unlock()
		return errors.New("queue: consume: already consuming")
	}
	q.consuming = true
	q.stopPull, q.stopWork, q.consumeDone = stopPull, stopWork, done
	q.mu.Unlock()

	n := len(q.tenants)
	// arrivals carries fetched messages to the dispatcher below; each fetcher then
	// waits on its resume channel (buffer 1, so the dispatcher never blocks on it)
	// before pulling again. fatal carries a fetcher's unrecoverable error (buffer n:
	// every fetcher can report without blocking).
	arrivals := make(chan delivery)
	resume := make([]chan struct{}, n)
	fatal := make(chan error, n)
	var fetchers sync.WaitGroup
	for i, t := range q.tenants {
		resume[i] = make(chan struct{}, 1)
		fetchers.Add(1)
		go func() {
			defer fetchers.Done()
			if err := q.fetchLoop(pullCtx, i, q.consumers[t], arrivals, resume[i]); err != nil {
				fatal <- err
			}
		}()
	}

	// finished has a slot per handler so a handler never blocks telling it is done.
	finished := make(chan struct{}, capacity)
	var handlers sync.WaitGroup
	held := make([]jetstream.Msg, n)
	next, running := 0, 0
	// Held messages wait for a slot; keep their AckWait from running out meanwhile.
	keepAlive := time.NewTicker(q.cfg.AckWait / 2)
	defer keepAlive.Stop()

	var err error
loop:
	for {
		for running < capacity {
			i := pickNext(held, next)
			if i < 0 {
				break
			}
			m := held[i]
			held[i] = nil
			next = (i + 1) % n
			running++
			resume[i] <- struct{}{}
			handlers.Add(1)
			go func() {
				defer handlers.Done()
				q.work(workCtx, q.tenants[i], m, h)
				finished <- struct{}{}
			}()
		}
		select {
		case d := <-arrivals:
			held[d.i] = d.msg
		case <-finished:
			running--
		case <-keepAlive.C:
			for _, m := range held {
				if m != nil {
					_ = m.InProgress()
				}
			}
		case err = <-fatal:
			break loop
		case <-pullCtx.Done():
			break loop
		}
	}
	stopPull()
	fetchers.Wait()
	for _, m := range held {
		if m != nil {
			q.nak(m) // not started here: any replica may take it now
		}
	}
	handlers.Wait()
	return err
}

// pickNext returns the first index from start on, wrapping around, whose tenant holds
// a message, or -1.
func pickNext(held []jetstream.Msg, start int) int {
	for k := range held {
		i := (start + k) % len(held)
		if held[i] != nil {
			return i
		}
	}
	return -1
}

// fetchLoop pulls tenant index i's messages one at a time, sending each to arrivals
// and waiting on resume before the next pull, until ctx ends. It returns ErrClosed if
// the connection closes.
//
// It pulls through a Messages iterator of one message: the iterator asks the server
// for the next message only when Next is called, renews expired pull requests, and on
// Drain unsubscribes so that a message already on its way is still received (and
// handed back here) instead of being lost until AckWait.
func (q *Queue) fetchLoop(ctx context.Context, i int, c jetstream.Consumer, arrivals chan<- delivery, resume <-chan struct{}) error {
	t := q.tenants[i]
	log := q.log.With(zap.String("tenant", string(t)))
	for ctx.Err() == nil {
		err := q.pullMessages(ctx, i, c, arrivals, resume)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrConnectionClosed):
			return ErrClosed
		}
		// The iterator ended on its own: the consumer was deleted or the server
		// refused the pull. Recreate the consumer and pull again.
		log.Error("queue: pulling stopped; recreating the consumer", zap.Error(err))
		select {
		case <-time.After(retryPause):
		case <-ctx.Done():
			return nil
		}
		if nc, err := q.createConsumer(ctx, t); err != nil {
			log.Error("queue: recreate consumer", zap.Error(err))
		} else {
			c = nc
		}
	}
	return nil
}

// pullMessages runs one Messages iterator until ctx ends (then it drains the iterator,
// handing back what arrives, and returns nil) or the iterator ends by itself.
func (q *Queue) pullMessages(ctx context.Context, i int, c jetstream.Consumer, arrivals chan<- delivery, resume <-chan struct{}) error {
	it, err := c.Messages(jetstream.PullMaxMessages(1), jetstream.PullExpiry(pullWait), jetstream.PullHeartbeat(pullHeartbeat))
	if err != nil {
		return err
	}
	stopDrain := context.AfterFunc(ctx, it.Drain)
	defer stopDrain()
	var drainDeadline time.Time
	wait := minNextWait
	for {
		if ctx.Err() != nil && drainDeadline.IsZero() {
			// Drain here too, not only from AfterFunc's goroutine: Next must not
			// send another pull request once stopping has begun.
			it.Drain()
			drainDeadline = time.Now().Add(drainWait)
		}
		if !drainDeadline.IsZero() {
			wait = max(min(wait, time.Until(drainDeadline)), time.Millisecond)
		}
		m, err := it.Next(jetstream.NextMaxWait(wait))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			wait = min(2*wait, maxNextWait)
			if !drainDeadline.IsZero() && time.Now().After(drainDeadline) {
				it.Stop() // the drain cannot finish, e.g. while disconnected
				return nil
			}
			continue
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			// The pull request was lost (a reconnect, a server restart); the
			// iterator sends a new one on the next call.
			q.log.Debug("queue: pull request lost its heartbeat", zap.String("tenant", string(q.tenants[i])))
			continue
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, nats.ErrConnectionClosed) {
				return nats.ErrConnectionClosed
			}
			return err
		case err != nil:
			it.Stop()
			return err
		}
		wait = minNextWait
		if ctx.Err() != nil {
			q.nak(m) // arrived while draining
			continue
		}
		select {
		case arrivals <- delivery{i, m}:
		case <-ctx.Done():
			q.nak(m)
			continue
		}
		select {
		case <-resume:
		case <-ctx.Done(): // the dispatcher owns the message; drain the iterator
		}
	}
}

// nak hands a message that was not started back to the stream, for any replica to
// take at once. It sets a (tiny) delay because a Nak with a delay moves the message's
// stored delivery time back, which a restarted embedded server honours; a plain Nak
// only queues the message in memory, and after a restart it waits out AckWait. It
// waits for the server to confirm the Nak: hand-backs happen while draining, and an
// embedded server shut down right after an unconfirmed Nak can lose it.
func (q *Queue) nak(m jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	body := fmt.Appendf(nil, `-NAK {"delay": %d}`, handBackDelay.Nanoseconds())
	if reply := m.Reply(); reply != "" && q.nc != nil {
		if _, err := q.nc.RequestWithContext(ctx, reply, body); err == nil {
			return
		}
	}
	_ = m.NakWithDelay(handBackDelay)
}

// work runs h on m and acknowledges the outcome: an Ack the server confirms on
// success, a Nak otherwise (at once when the handlers' context is cancelled, so another
// replica or the restarted process takes it; after a growing delay when the handler
// failed).
func (q *Queue) work(ctx context.Context, t tenant.ID, raw jetstream.Msg, h Handler) {
	m := Msg{Tenant: t, Data: raw.Data(), raw: raw}
	if md, err := raw.Metadata(); err == nil {
		m.Delivered = md.NumDelivered
	}
	hdr := raw.Headers()
	m.ID = hdr.Get(nats.MsgIdHdr)
	for k, v := range hdr {
		if !isReservedHeader(k) && len(v) > 0 {
			if m.Header == nil {
				m.Header = make(map[string]string, len(hdr))
			}
			m.Header[k] = v[0]
		}
	}
	log := q.log.With(zap.String("tenant", string(t)), zap.String("request_id", m.Header[RequestIDHeader]),
		zap.String("msg_id", m.ID), zap.Uint64("delivered", m.Delivered))

	err := runHandler(ctx, h, m)
	if err == nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		defer cancel()
		if err := raw.DoubleAck(actx); err != nil {
			log.Warn("queue: ack failed; the message will be delivered again", zap.Error(err))
		}
		return
	}
	if ctx.Err() != nil {
		q.nak(raw)
		return
	}
	log.Warn("queue: handler failed; the message will be delivered again", zap.Error(err))
	if err := raw.NakWithDelay(nakDelay(m.Delivered)); err != nil {
		log.Debug("queue: nak", zap.Error(err))
	}
}

// runHandler calls h, turning a panic into an error so that one bad message costs a
// redelivery rather than the process.
func runHandler(ctx context.Context, h Handler, m Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("queue: handler panic: %v\n%s", r, debug.Stack())
		}
	}()
	return h(ctx, m)
}

// nakDelay is 1s, 2s, 4s… by delivery, capped at maxNakDelay.
func nakDelay(delivered uint64) time.Duration {
	d := time.Second
	for k := uint64(1); k < delivered && d < maxNakDelay; k++ {
		d *= 2
	}
	return min(d, maxNakDelay)
}
