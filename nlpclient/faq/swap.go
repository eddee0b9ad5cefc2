package faq

import (
	"context"
	"sync/atomic"

	"github.com/fengda-ai/fengda/nlpclient"
)

// Swap serves a FAQ engine that can be replaced while it answers, for reloading a
// knowledge base without a restart. A replacement is atomic: every Answer uses either the
// old engine or the new one, never a mix.
type Swap struct {
	p atomic.Pointer[FAQ]
}

// NewSwap returns a Swap serving f.
func NewSwap(f *FAQ) *Swap {
	s := &Swap{}
	s.p.Store(f)
	return s
}

// Answer answers with the engine being served now.
func (s *Swap) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	return s.p.Load().Answer(ctx, req)
}

// Replace serves f from now on.
func (s *Swap) Replace(f *FAQ) { s.p.Store(f) }

// HistoryTurns returns what the FAQ engine reads of a request's history.
func (s *Swap) HistoryTurns() int { return s.Current().HistoryTurns() }

// Current returns the engine being served now.
func (s *Swap) Current() *FAQ { return s.p.Load() }
