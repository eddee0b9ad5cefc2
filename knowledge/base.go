// Package knowledge keeps each tenant's knowledge base as a live, versioned record that
// its admins edit through the API: every replica serves a change within seconds, without
// a restart, and it survives one. The YAML files under kb/ seed a tenant's base the
// first time only.
package knowledge

import (
	"errors"
	"time"

	"github.com/fengda-ai/fengda/nlpclient"
)

// Base is a tenant's whole knowledge base at one version: what the FAQ engine is built
// from. Entries keep the order they were given in.
type Base struct {
	Language string     `json:"language"` // nlpclient.LangZH or LangEN
	Synonyms [][]string `json:"synonyms,omitempty"`
	Entries  []Entry    `json:"entries"`
}

// Entry is one question and its answer, with when it last changed.
type Entry struct {
	ID         string    `json:"id"`
	Question   string    `json:"question"`
	Alternates []string  `json:"alternates"`
	Answer     string    `json:"answer"`
	Tags       []string  `json:"tags"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// KB is b as the FAQ engine takes it, for tenant t.
func (b *Base) KB(t string) *nlpclient.KB {
	kb := &nlpclient.KB{Tenant: t, Language: b.Language, Synonyms: b.Synonyms, Entries: make([]nlpclient.Entry, len(b.Entries))}
	for i, e := range b.Entries {
		kb.Entries[i] = nlpclient.Entry{ID: e.ID, Question: e.Question, Alternates: e.Alternates, Answer: e.Answer, Tags: e.Tags}
	}
	return kb
}

// Limits bound a tenant's base and its entries.
type Limits struct {
	MaxEntries       int // entries in a base
	MaxBytes         int // a base's size, as its JSON
	MaxIDChars       int // an entry id: 1 to this many of [A-Za-z0-9_-]
	MaxQuestionChars int // the question and each alternate, in characters
	MaxAlternates    int
	MaxAnswerChars   int
	MaxTags          int
	MaxTagChars      int
}

// DefaultLimits are the limits when the configuration sets none.
var DefaultLimits = Limits{
	MaxEntries:       10000,
	MaxBytes:         16 << 20,
	MaxIDChars:       64,
	MaxQuestionChars: 500,
	MaxAlternates:    50,
	MaxAnswerChars:   8000,
	MaxTags:          20,
	MaxTagChars:      50,
}

// FieldError is one problem of an imported file or a written entry: its line (1-based;
// 0 when it has none, as in JSON without positions or a single entry), the field at
// fault ("id", "question", …, or "" for the whole) and what is wrong, in words.
type FieldError struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// InvalidError is a base or entry refused whole, with every problem found.
type InvalidError struct {
	Errors []FieldError
}

func (e *InvalidError) Error() string {
	if len(e.Errors) == 0 {
		return "knowledge: invalid"
	}
	return "knowledge: invalid: " + e.Errors[0].Message
}

// Errors of the package, which the gateway maps to statuses once.
var (
	ErrNotFound    = errors.New("knowledge: not found")         // 404: no such entry or version
	ErrConflict    = errors.New("knowledge: conflict")          // 409: a concurrent write won, retries spent
	ErrTooLarge    = errors.New("knowledge: too large")         // 413: past Limits.MaxEntries or MaxBytes
	ErrUnsupported = errors.New("knowledge: unsupported type")  // 415: an import of another Content-Type
	ErrUnavailable = errors.New("knowledge: store unavailable") // 503: the store cannot answer
)
