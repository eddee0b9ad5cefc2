// Package faq owns the built-in FAQ engine: BM25 over an inverted index of a tenant's
// knowledge base, Chinese and English, with its tokenizer, synonyms, typo correction,
// follow-up handling and confidence model, and the evaluation that measures it. Its
// weights are constants (weights.go); nlpclient/faq/tune fits them.
//
// It imports only nlpclient and its text folding; it knows nothing of models.
package faq

import (
	"context"
	"errors"
	"fmt"

	"github.com/fengda-ai/fengda/nlpclient"
)

// DefaultMinConfidence is the confidence below which FAQ answers with suggestions
// instead of an entry. With the shipped weights it rejects at least 90% of the
// out-of-scope questions of both evaluation sets while answering wrongly no more than
// about 9% of the in-scope ones (go run ./nlpclient/faq/tune current prints the sweep).
const DefaultMinConfidence = 0.6

// Options configures an FAQ engine.
type Options struct {
	// MinConfidence is the confidence needed to answer from an entry; below it the engine
	// suggests questions instead. Zero means DefaultMinConfidence.
	MinConfidence float64 `yaml:"min_confidence"`
	// Weights replaces the ranking and confidence weights; nil means
	// DefaultWeights(kb.Language). A tuning aid: the shipped engine never sets it.
	Weights *Weights `yaml:"-"`
}

// FAQ answers questions from one tenant's knowledge base with BM25 over an inverted
// index of the entries' phrasings. It is immutable once built and safe for concurrent use.
type FAQ struct {
	kb      *nlpclient.KB
	tok     *tokenizer
	ix      *index
	byID    map[string]int
	foreign *foreignMatcher
	minConf float64
	w       *Weights
	// entTags holds each entry's tags as ids: equal ids, equal tags.
	entTags [][]int32
}

// New builds the index of a validated knowledge base.
func New(kb *nlpclient.KB, opts Options) (*FAQ, error) {
	if kb == nil {
		return nil, errors.New("new faq: nil knowledge base")
	}
	if err := kb.Validate(); err != nil {
		return nil, fmt.Errorf("new faq: %w", err)
	}
	if opts.MinConfidence < 0 || opts.MinConfidence > 1 {
		return nil, fmt.Errorf("new faq: min confidence %v outside [0, 1]", opts.MinConfidence)
	}
	if opts.MinConfidence == 0 {
		opts.MinConfidence = DefaultMinConfidence
	}
	w := DefaultWeights(kb.Language)
	if opts.Weights != nil {
		w = *opts.Weights
	}
	f := &FAQ{
		kb:      kb,
		tok:     newTokenizer(append(append([][]string(nil), kb.Synonyms...), builtinSynonyms[kb.Language]...)),
		byID:    make(map[string]int, len(kb.Entries)),
		minConf: opts.MinConfidence,
		w:       &w,
	}
	tagID := map[string]int32{}
	f.entTags = make([][]int32, len(kb.Entries))
	for i, e := range kb.Entries {
		f.byID[e.ID] = i
		for _, t := range e.Tags {
			id, ok := tagID[t]
			if !ok {
				id = int32(len(tagID))
				tagID[t] = id
			}
			f.entTags[i] = append(f.entTags[i], id)
		}
	}
	f.ix = buildIndex(f.tok, kb.Entries, f.w)
	f.foreign = newForeignMatcher(kb.Language, f.tok, f.ix)
	return f, nil
}

// Len returns the number of entries.
func (f *FAQ) Len() int { return len(f.kb.Entries) }

// Entry returns the entry with the given id.
func (f *FAQ) Entry(id string) (nlpclient.Entry, bool) {
	i, ok := f.byID[id]
	if !ok {
		return nlpclient.Entry{}, false
	}
	return f.kb.Entries[i], true
}

// KB returns the knowledge base answered from; the caller must not modify it.
func (f *FAQ) KB() *nlpclient.KB { return f.kb }

// Language returns the knowledge base's language, zh or en.
func (f *FAQ) Language() string { return f.kb.Language }

// HistoryTurns returns 1: a follow-up is read against the previous turn only.
func (f *FAQ) HistoryTurns() int { return 1 }

// Answer answers one message. It returns an entry's answer when confident, otherwise up
// to three suggested questions (SourceClarify). It returns the context's error if ctx
// is done, and no other error.
func (f *FAQ) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nlpclient.Answer{}, err
	}
	r := f.resolve(req)
	return f.compose(r), nil
}
