// Package queue owns NATS JetStream spillover: an embedded in-process server (no port,
// a file store that survives restarts) or an external server or cluster; publishing
// with dedupe by Nats-Msg-Id into one work-queue stream, a subject per tenant, with caps
// that refuse new messages (ErrFull) rather than drop queued ones; durable pull
// consumers, one per tenant, worked round-robin so one tenant's burst cannot starve
// another, and acknowledged only after the handler has stored its work; result delivery
// over core NATS back to the request waiting on whichever replica published; drain on
// shutdown; and lag metrics for autoscaling.
//
// It knows nothing of what a turn means beyond bytes and headers, and imports no Fengda
// package but tenant.
//
// Delivery is at least once. A message whose handler did the work but whose ack was lost
// (a crash, a dropped connection, a handler that outlived AckWait) is delivered again
// with Msg.Delivered > 1: handlers store their work idempotently, by message ID.
//
// Durability: JetStream acknowledges a publish once it is written, not once it is on
// disk. By default the file store syncs every two minutes, so a power loss (a process
// crash is fine) can lose turns acknowledged in that window; Jepsen (NATS 2.12.1, 2025)
// also lost acknowledged writes to file corruption. The bank profile is replicas 3 on
// a cluster with sync_interval: always on every server (sync_always for the embedded
// one), at the cost of an fsync per write; even then a simultaneous power loss of a
// majority or a corrupted disk can lose acknowledged turns. The queue only carries
// turns in flight; the session store remains their record.
package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/tenant"
)

// ErrFull is returned by Publish when the stream refused a message because it or the
// tenant's share of it is at its cap. Callers answer 429 queue_full with Retry-After.
var ErrFull = errors.New("queue full")

// ErrClosed is returned once the queue is drained or its connection is closed.
var ErrClosed = errors.New("queue closed")

// ErrDisconnected is returned by Publish at once while the connection to the server is
// down (it reconnects by itself), rather than after the publish's deadline.
var ErrDisconnected = errors.New("queue disconnected")

const (
	// startTimeout bounds how long the embedded server may take to accept connections.
	startTimeout = 10 * time.Second
	// closeFlushTimeout bounds the final flush of buffered publishes and acks.
	closeFlushTimeout = 2 * time.Second
	// cancelGrace is how long Drain, past its deadline, still waits for handlers whose
	// context it cancelled.
	cancelGrace = time.Second
	// reconnectWait is the pause between reconnect attempts to an external server.
	reconnectWait = time.Second
)

// Queue is a connection to the spillover stream. Its methods are safe for concurrent
// use.
type Queue struct {
	cfg     Config
	log     *zap.Logger
	tenants []tenant.ID // consumed tenants, in round-robin order

	srv       *server.Server // embedded mode only
	nc        *nats.Conn
	js        jetstream.JetStream
	stream    jetstream.Stream
	consumers map[tenant.ID]jetstream.Consumer

	mu        sync.Mutex
	draining  bool
	closed    bool
	consuming bool
	// Set while Consume runs: stopPull stops fetching, stopWork cancels the handlers'
	// context, consumeDone is closed when Consume has returned.
	stopPull    context.CancelFunc
	stopWork    context.CancelFunc
	consumeDone chan struct{}

	done     chan struct{} // closed by shutdown: board watchers stop
	doneOnce sync.Once
}

// Open starts the embedded server or connects to the external one, then creates or
// updates the stream and one durable consumer per tenant in tenants. It applies
// Defaults and Validate to cfg. Open starts no consumer goroutines: Consume does.
func Open(ctx context.Context, cfg Config, tenants []tenant.ID, log *zap.Logger) (*Queue, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("queue.mode: off, nothing to open")
	}
	if len(tenants) == 0 {
		return nil, errors.New("queue: no tenants to consume")
	}
	if log == nil {
		log = zap.NewNop()
	}
	q := &Queue{
		cfg:       cfg,
		log:       log,
		consumers: make(map[tenant.ID]jetstream.Consumer, len(tenants)),
		done:      make(chan struct{}),
	}
	for _, t := range tenants {
		if !slices.Contains(q.tenants, t) {
			q.tenants = append(q.tenants, t)
		}
	}
	if err := q.open(ctx); err != nil {
		q.shutdown()
		return nil, err
	}
	return q, nil
}

func (q *Queue) open(ctx context.Context) error {
	opts := []nats.Option{
		nats.Name("fengda"),
		// Only Await subscribes synchronously, for one result each. nats.go's
		// default channel for such a subscription holds 65,536 messages, half a
		// MiB allocated and cleared for every spilled turn.
		nats.SyncQueueLen(awaitQueueLen),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				q.log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			q.log.Info("nats reconnected", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ClosedHandler(func(*nats.Conn) { q.log.Debug("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			q.log.Warn("nats async error", fields...)
		}),
	}
	var err error
	switch q.cfg.Mode {
	case ModeEmbedded:
		if err := q.startServer(); err != nil {
			return err
		}
		opts = append(opts, nats.InProcessServer(q.srv))
		q.nc, err = nats.Connect("", opts...)
	case ModeExternal:
		if q.cfg.SyncAlways {
			q.log.Info("queue.sync_always applies to the embedded server; the external server's own sync_interval governs durability")
		}
		q.nc, err = nats.Connect(q.cfg.URL, opts...)
	}
	if err != nil {
		return fmt.Errorf("queue: connect: %w", err)
	}
	if q.js, err = jetstream.New(q.nc); err != nil {
		return fmt.Errorf("queue: jetstream: %w", err)
	}
	if err := q.ensureStream(ctx); err != nil {
		return err
	}
	for _, t := range q.tenants {
		if err := q.ensureConsumer(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// startServer runs the embedded JetStream server in this process, without a listener.
func (q *Queue) startServer() error {
	opts := &server.Options{
		ServerName: "fengda-embedded",
		DontListen: true,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   q.cfg.DataDir,
		SyncAlways: q.cfg.SyncAlways,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("queue: embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLogger{q.log.Named("nats")}, false, false, false)
	q.srv = srv
	srv.Start()
	if !srv.ReadyForConnections(startTimeout) {
		return fmt.Errorf("queue: embedded server not ready after %s", startTimeout)
	}
	if !srv.JetStreamEnabled() {
		return fmt.Errorf("queue.data_dir %s: JetStream did not start (see the nats log lines)", q.cfg.DataDir)
	}
	return nil
}

// ensureStream creates the stream or brings an existing one to the configuration.
func (q *Queue) ensureStream(ctx context.Context) error {
	sc := jetstream.StreamConfig{
		Name:                 q.cfg.Stream,
		Subjects:             []string{q.cfg.Subject + ".*"},
		Retention:            jetstream.WorkQueuePolicy,
		Storage:              jetstream.FileStorage,
		MaxMsgs:              q.cfg.MaxMsgs,
		MaxBytes:             q.cfg.MaxBytes,
		MaxMsgsPerSubject:    q.cfg.MaxMsgsPerTenant,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           q.cfg.Duplicates,
		Replicas:             q.cfg.Replicas,
	}
	stream, err := q.js.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return fmt.Errorf("queue: stream %s: %w", q.cfg.Stream, err)
	}
	if !stream.CachedInfo().Config.DiscardNewPerSubject {
		// A server older than 2.9 ignores discard_new_per_subject and would make room
		// for a tenant's new message by deleting its oldest queued one: a lost turn.
		// Without the per-tenant cap the stream-wide caps still refuse new messages.
		q.log.Warn("the NATS server cannot refuse per tenant; queue.max_msgs_per_tenant is not enforced",
			zap.String("server", q.nc.ConnectedServerVersion()))
		sc.MaxMsgsPerSubject = -1
		sc.DiscardNewPerSubject = false
		if stream, err = q.js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("queue: stream %s: %w", q.cfg.Stream, err)
		}
	}
	q.stream = stream
	return nil
}

// ensureConsumer creates or updates tenant t's durable pull consumer.
func (q *Queue) ensureConsumer(ctx context.Context, t tenant.ID) error {
	c, err := q.createConsumer(ctx, t)
	if err != nil {
		return err
	}
	q.consumers[t] = c
	return nil
}

// createConsumer creates or updates tenant t's durable pull consumer.
func (q *Queue) createConsumer(ctx context.Context, t tenant.ID) (jetstream.Consumer, error) {
	cc := jetstream.ConsumerConfig{
		Durable:       q.consumerName(t),
		FilterSubject: q.subject(t),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// No BackOff: it would silently replace AckWait with its first step.
		AckWait:       q.cfg.AckWait,
		MaxAckPending: q.cfg.MaxAckPending,
	}
	c, err := q.stream.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("queue: consumer %s: %w", cc.Durable, err)
	}
	return c, nil
}

func (q *Queue) subject(t tenant.ID) string      { return q.cfg.Subject + "." + string(t) }
func (q *Queue) consumerName(t tenant.ID) string { return q.cfg.Stream + "_" + string(t) }

// isClosed reports whether the queue has been drained.
func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Publish stores data on tenant t's subject with Nats-Msg-Id msgID and the extra
// headers hdr. A msgID already stored within the Duplicates window stores nothing new
// and returns dup true. It returns ErrFull when the stream or the tenant is at its cap
// (nothing queued is dropped to make room), ErrDisconnected while the server cannot be
// reached, and ErrClosed after Drain.
func (q *Queue) Publish(ctx context.Context, t tenant.ID, msgID string, data []byte, hdr map[string]string) (dup bool, err error) {
	if q.isClosed() {
		return false, ErrClosed
	}
	if _, ok := q.consumers[t]; !ok {
		return false, fmt.Errorf("queue: publish: tenant %s is not consumed by this queue", t)
	}
	if msgID == "" {
		return false, errors.New("queue: publish: empty message id")
	}
	if !q.nc.IsConnected() {
		return false, fmt.Errorf("queue: publish for tenant %s: %w", t, ErrDisconnected)
	}
	m := nats.NewMsg(q.subject(t))
	m.Data = data
	for k, v := range hdr {
		if isReservedHeader(k) {
			return false, fmt.Errorf("queue: publish: header %q is reserved", k)
		}
		m.Header.Set(k, v)
	}
	ack, err := q.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(q.cfg.Stream))
	if err != nil {
		return false, fmt.Errorf("queue: publish for tenant %s: %w", t, publishError(err))
	}
	return ack.Duplicate, nil
}

// isReservedHeader reports whether k is a header NATS itself interprets (Nats-Msg-Id,
// Nats-Expected-Stream, …): Publish refuses them and Msg.Header leaves them out.
func isReservedHeader(k string) bool { return strings.HasPrefix(strings.ToLower(k), "nats-") }

// publishError maps the server's refusals under DiscardNew to ErrFull and a closed
// connection to ErrClosed.
func publishError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// JSStreamStoreFailedF (10077) carries the store's reason: "maximum messages
		// exceeded", "maximum bytes exceeded", "maximum messages per subject exceeded".
		d := apiErr.Description
		if strings.Contains(d, "maximum messages") || strings.Contains(d, "maximum bytes") {
			return fmt.Errorf("%w: %s", ErrFull, d)
		}
	}
	if errors.Is(err, nats.ErrConnectionClosed) {
		return ErrClosed
	}
	return err
}

// Drain shuts the queue down gracefully: it stops pulling new messages, hands messages
// fetched but not yet started back to the stream (Nak, so another replica takes them at
// once), waits up to ctx for running handlers to finish and be acknowledged, then
// flushes and closes the connection and, in embedded mode, shuts the server down. If
// ctx ends first, the handlers' context is cancelled (a handler that returns within
// a second still hands its message back), the connection is closed anyway (messages
// still unacknowledged are delivered again after AckWait) and ctx's error is returned.
// A message the server sends at the very moment pulling stops can miss the drain; it
// too comes back after AckWait. Drain is idempotent.
func (q *Queue) Drain(ctx context.Context) error {
	q.mu.Lock()
	if q.closed || q.draining {
		q.mu.Unlock()
		return nil
	}
	q.draining = true
	stopPull, stopWork, done := q.stopPull, q.stopWork, q.consumeDone
	q.mu.Unlock()

	var err error
	if done != nil {
		stopPull()
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("queue: drain: %w", ctx.Err())
			// Handlers that honour their context return at once and hand their
			// message back; give them a moment to, rather than leave it to AckWait.
			stopWork()
			select {
			case <-done:
			case <-time.After(cancelGrace):
			}
		}
	}
	q.shutdown()
	return err
}

// shutdown flushes and closes the connection and stops the embedded server.
func (q *Queue) shutdown() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.doneOnce.Do(func() { close(q.done) })
	if q.nc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeFlushTimeout)
		if err := q.nc.FlushWithContext(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			q.log.Warn("queue: final flush", zap.Error(err))
		}
		cancel()
		q.nc.Close()
	}
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
}

// serverLogger sends the embedded server's log lines to zap. Its notices (a banner of
// start-up details) go to debug.
type serverLogger struct{ log *zap.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
