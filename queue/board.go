package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Board is a small set of records that every replica sharing the queue's server sees
// within milliseconds: a JetStream key-value bucket, kept for a fixed age, that each
// replica watches into memory. Revocations travel on one. Records are opaque bytes under
// keys of letters, digits, '-', '_', '=' and '.'.
type Board struct {
	kv  jetstream.KeyValue
	q   *Queue
	log *zap.Logger
}

// boardStartTimeout bounds the wait for a board's existing records when watching starts.
const boardStartTimeout = 10 * time.Second

// Board creates or updates the board called name: the bucket <stream>_<name>, whose
// records expire maxAge after they were last written, with the queue's replicas.
func (q *Queue) Board(ctx context.Context, name string, maxAge time.Duration) (*Board, error) {
	if !validName(name) {
		return nil, fmt.Errorf("queue: board name %q: letters, digits, '-' and '_' only", name)
	}
	name = q.cfg.Stream + "_" + name
	if maxAge <= 0 {
		return nil, fmt.Errorf("queue: board %s: max age must be positive", name)
	}
	kv, err := q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "Fengda: records every replica keeps in memory",
		History:     1,
		TTL:         maxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    q.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: board %s: %w", name, err)
	}
	return &Board{kv: kv, q: q, log: q.log.With(zap.String("board", name))}, nil
}

// Put writes a record; every replica watching the board sees it.
func (b *Board) Put(ctx context.Context, key string, value []byte) error {
	if b.q.isClosed() {
		return ErrClosed
	}
	if !b.q.nc.IsConnected() {
		return ErrDisconnected
	}
	if _, err := b.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("queue: board put: %w", err)
	}
	return nil
}

// Watch calls apply with every record on the board, then with every record written
// afterwards, from one goroutine, until ctx ends or the queue is closed. It returns once
// the records already on the board have been applied, so that a replica starting up
// enforces them before it serves. apply must not block for long.
func (b *Board) Watch(ctx context.Context, apply func(key string, value []byte)) error {
	wctx, cancel := context.WithCancel(ctx)
	w, err := b.kv.WatchAll(wctx, jetstream.IgnoreDeletes())
	if err != nil {
		cancel()
		return fmt.Errorf("queue: board watch: %w", err)
	}
	stop := func() {
		_ = w.Stop()
		cancel()
	}
	// The existing records, up to the nil entry that marks their end.
	timeout := time.NewTimer(boardStartTimeout)
	defer timeout.Stop()
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				stop()
				return errors.New("queue: board watch ended while loading")
			case e == nil:
				loaded = true
			default:
				apply(e.Key(), e.Value())
			}
		case <-timeout.C:
			stop()
			return fmt.Errorf("queue: board: existing records not loaded within %s", boardStartTimeout)
		case <-ctx.Done():
			stop()
			return ctx.Err()
		}
	}
	go func() {
		defer stop()
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					apply(e.Key(), e.Value())
				}
			case <-wctx.Done():
				return
			case <-b.q.done:
				return
			}
		}
	}()
	return nil
}

// JetStream returns the queue's JetStream handle and the replicas setting of its
// streams, for a package that keeps its own buckets on the queue's server (the
// knowledge bases). Buckets made with it should carry the stream's name as a prefix
// (Stream), so that deployments sharing a server keep apart. The handle stops working
// once the queue is drained.
func (q *Queue) JetStream() (js jetstream.JetStream, replicas int) { return q.js, q.cfg.Replicas }

// Stream returns the name of the queue's stream (queue.stream).
func (q *Queue) Stream() string { return q.cfg.Stream }

// Subject returns the queue's subject prefix (queue.subject).
func (q *Queue) Subject() string { return q.cfg.Subject }
