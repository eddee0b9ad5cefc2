// Package gateway owns the HTTP edge of Fengda: the chi routes (routes.go lists the whole
// API), request ids, panic recovery, header and body limits, JWT authentication, the
// per-tenant rate limit, JSON and SSE encoding, the single table that maps errors to
// statuses (errors.go), the health, readiness and metrics endpoints, and the web page.
//
// It must not talk to Redis, NATS or an answer model directly: every turn goes through
// the dialogue engine, every identity through the tenant registry.
package gateway

import (
	"context"
	"time"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/tenant"
)

// Dialogue is the conversation engine as the gateway uses it (*dialogue.Engine).
type Dialogue interface {
	// Submit answers one turn. It returns dialogue.ErrOverloaded, ErrNotFound,
	// ErrUnavailable, ErrInvalid, ErrDraining, or ctx.Err().
	Submit(ctx context.Context, t dialogue.Turn) (dialogue.Reply, error)
	// Stream answers one turn as events: one EventMeta, EventDelta pieces, then EventDone
	// or EventError; the channel is closed after the last. A direct error (the same as
	// Submit's) means no channel.
	Stream(ctx context.Context, t dialogue.Turn) (<-chan dialogue.Event, error)
	// History returns the caller's session, oldest turn first, or dialogue.ErrNotFound.
	History(ctx context.Context, ref dialogue.Ref) ([]dialogue.HistoryTurn, error)
	// QueuedTurn returns the caller's queued turn: its reply once answered, a Reply with
	// Queued set while it waits, or dialogue.ErrNotFound.
	QueuedTurn(ctx context.Context, t tenant.ID, user, turnID string) (dialogue.Reply, error)
	// DeleteSession erases the caller's session, or returns dialogue.ErrNotFound.
	DeleteSession(ctx context.Context, ref dialogue.Ref) error
	// Ready returns nil when the engine can take turns.
	Ready(ctx context.Context) error
}

// Tenants is the tenant registry as the gateway uses it (*tenant.Registry).
type Tenants interface {
	// Verify checks a bearer token; every failure wraps tenant.ErrUnauthenticated.
	Verify(token string, now time.Time) (tenant.Principal, error)
	// Mint signs a user token for tenant id.
	Mint(id tenant.ID, user string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error)
	// MintRole signs a token of role (tenant.RoleUser, RoleAgent or RoleAdmin) and
	// display name for tenant id. It returns tenant.ErrUnknown, tenant.ErrNoSigningKey,
	// or tenant.ErrInvalidClaim for a bad user, role or name.
	MintRole(id tenant.ID, user, role, name string, ttl time.Duration, now time.Time) (token string, expires time.Time, err error)
	// ByAPIKey returns the tenant owning key, or tenant.ErrUnknown.
	ByAPIKey(key string) (*tenant.Tenant, error)
	// Get returns the tenant with the given id, or tenant.ErrUnknown.
	Get(id tenant.ID) (*tenant.Tenant, error)
	// Tenants returns every tenant, ordered by id.
	Tenants() []*tenant.Tenant
	// Revoke refuses a token, or a user's tokens issued until now, on every replica.
	// tenant.ErrInvalidRevocation is a malformed one; another error means it is in
	// force here but not yet shared.
	Revoke(ctx context.Context, rv tenant.Revocation, now time.Time) error
}
