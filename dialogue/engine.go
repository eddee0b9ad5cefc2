package dialogue

import (
	"context"

	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// Engine answers turns with a bounded pool of workers.
type Engine struct{}

// Submit answers t and returns the stored reply. It returns ErrOverloaded at once when the
// backlog is full, ErrNotFound for a foreign or unknown session, ErrUnavailable when the
// store is down, and ctx.Err() when ctx ends first.
func (e *Engine) Submit(ctx context.Context, t Turn) (Reply, error) { panic("unimplemented") }

// Stream answers t as a stream of events: one EventMeta, EventDelta pieces, then EventDone
// or EventError; the channel is closed after the last. An error returned directly (the
// turn was not accepted: ErrOverloaded, ErrInvalid, ErrDraining) means no channel.
func (e *Engine) Stream(ctx context.Context, t Turn) (<-chan Event, error) {
	panic("unimplemented")
}

// History returns the caller's session, oldest turn first, or ErrNotFound.
func (e *Engine) History(ctx context.Context, ref session.Ref) ([]session.Turn, error) {
	panic("unimplemented")
}

// DeleteSession erases the caller's session, or returns ErrNotFound.
func (e *Engine) DeleteSession(ctx context.Context, ref session.Ref) error {
	panic("unimplemented")
}

// Ready reports whether the engine can take turns: the store answers and it is not draining.
func (e *Engine) Ready(ctx context.Context) error { panic("unimplemented") }

var _ = tenant.ID("")
