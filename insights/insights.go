// Package insights owns what Fengda learns from its own conversations: a record of every
// answered turn (its source, confidence, top cited entry and redacted question), the
// customers' ratings of answers, and the causes of handoffs, kept per tenant for a
// bounded time and count. It writes off the turn's hot path: Recorder.Record never
// blocks, and a goroutine batches the records to the store.
//
// It must not know about HTTP or the dialogue engine; it holds no message text that has
// not gone through logging.Redact.
package insights

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// Errors of the store and the recorder.
var (
	// ErrNotFound: no turn of that id is recorded for the caller (another user's, another
	// tenant's, or none).
	ErrNotFound = errors.New("insights: turn not found")
	// ErrInvalid: a rating that is not up or down, or a comment too long.
	ErrInvalid = errors.New("insights: invalid feedback")
	// ErrUnavailable: the store cannot be reached.
	ErrUnavailable = errors.New("insights: store unavailable")
)

// Kind says what a record is.
type Kind string

// The kinds of record.
const (
	KindTurn     Kind = "turn"     // an answered turn; a handoff turn carries its Cause
	KindFeedback Kind = "feedback" // a customer's rating of a turn; the newest replaces the others
)

// Ratings of a turn.
const (
	RatingUp   = "up"
	RatingDown = "down"
)

// MaxCommentChars is the longest feedback comment, in characters.
const MaxCommentChars = 1000

// Event is one record. It is a plain value, sent on the recorder's channel as it is.
type Event struct {
	Kind    Kind      `json:"kind"`
	Tenant  tenant.ID `json:"tenant"`
	TurnID  string    `json:"turn_id"`
	Session string    `json:"session,omitempty"`
	User    string    `json:"user"`
	// Source is faq, llm, clarify, fallback or handoff (turns).
	Source     string  `json:"source,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	// Entry is the id of the top cited knowledge-base entry, if any (turns).
	Entry string `json:"entry,omitempty"`
	// Question is the customer's message, redacted (turns).
	Question string `json:"question,omitempty"`
	// Cause is the handoff's cause (asked, button, unresolved) on a handoff turn.
	Cause   string    `json:"cause,omitempty"`
	Rating  string    `json:"rating,omitempty"`  // feedback
	Comment string    `json:"comment,omitempty"` // feedback, redacted
	At      time.Time `json:"at"`
}

// Store keeps the records of every tenant, each tenant's apart.
type Store interface {
	// Append stores events, of any tenants; a feedback replaces the earlier feedback
	// on the same turn. It returns ErrUnavailable.
	Append(ctx context.Context, events []Event) error
	// Turn returns the record of turn turnID of tenant t, or ErrNotFound.
	Turn(ctx context.Context, t tenant.ID, turnID string) (Event, error)
	// List returns t's records at or after since, oldest first, of the given kinds (all
	// without any). It returns ErrUnavailable.
	List(ctx context.Context, t tenant.ID, since time.Time, kinds ...Kind) ([]Event, error)
}

// Config is the root configuration's insights section.
type Config struct {
	// Retention is how long a record is kept. Default 720h (30 days).
	Retention time.Duration `yaml:"retention"`
	// MaxRecordsPerTenant bounds a tenant's records; past it the oldest go. Default 200000.
	MaxRecordsPerTenant int `yaml:"max_records_per_tenant"`
}

// Defaults.
const (
	DefaultRetention           = 720 * time.Hour
	DefaultMaxRecordsPerTenant = 200000
)

// Defaults fills the zero fields of c.
func (c *Config) Defaults() {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.MaxRecordsPerTenant == 0 {
		c.MaxRecordsPerTenant = DefaultMaxRecordsPerTenant
	}
}

// Validate returns an error naming the first field, by its YAML key, that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Retention < time.Second:
		return fmt.Errorf("insights.retention: %s is shorter than 1s", c.Retention)
	case c.MaxRecordsPerTenant < 1:
		return fmt.Errorf("insights.max_records_per_tenant: %d is not positive", c.MaxRecordsPerTenant)
	}
	return nil
}

// wanted reports whether k is among kinds (every kind when there are none).
func wanted(k Kind, kinds []Kind) bool {
	if len(kinds) == 0 {
		return true
	}
	for _, w := range kinds {
		if w == k {
			return true
		}
	}
	return false
}
