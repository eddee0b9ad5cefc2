package nlpclient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func BenchmarkFAQAnswer(b *testing.B) {
	benchAnswer(b, newTestFAQ(b, "bank-zh"))
}

// benchAnswer measures f answering the bank's dev queries in turn.
func benchAnswer(b *testing.B, f *FAQ) {
	qs := loadEvalSet(b, "bank-zh-queries").Queries
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := f.Answer(ctx, Request{Message: qs[i%len(qs)].Query}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFAQAnswerShop measures the shop answering its dev queries in turn.
func BenchmarkFAQAnswerShop(b *testing.B) {
	f := newTestFAQ(b, "shop-en")
	qs := loadEvalSet(b, "shop-en-queries").Queries
	reqs := make([]Request, len(qs))
	for i, q := range qs {
		reqs[i] = Request{Message: q.Query}
	}
	benchRequests(b, f, reqs)
}

// BenchmarkFAQFollowUp measures second turns: each written follow-up asked with its
// first question, and the answer to it, as history.
func BenchmarkFAQFollowUp(b *testing.B) {
	for _, name := range []string{"bank-zh", "shop-en"} {
		b.Run(name, func(b *testing.B) {
			f := newTestFAQ(b, name)
			benchRequests(b, f, followUpRequests(b, f, name))
		})
	}
}

// BenchmarkFAQReferences measures the references a model's prompt is built with, for
// first questions and for follow-ups.
func BenchmarkFAQReferences(b *testing.B) {
	for _, name := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(b, name)
		var alone []Request
		for _, q := range loadEvalSet(b, name+"-queries").Queries {
			alone = append(alone, Request{Message: q.Query})
		}
		for _, c := range []struct {
			name string
			reqs []Request
		}{{"alone", alone}, {"followup", followUpRequests(b, f, name)}} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if refs, _ := f.references(c.reqs[i%len(c.reqs)], defaultReferences); len(refs) > defaultReferences {
						b.Fatal("too many references")
					}
					i++
				}
			})
		}
	}
}

// followUpRequests returns the written follow-ups of a knowledge base (testdata/eval-synth),
// each with its first question and the engine's answer to it as history.
func followUpRequests(b testing.TB, f *FAQ, name string) []Request {
	b.Helper()
	_, fus := loadSets(b, "eval-synth", name)
	reqs := make([]Request, len(fus))
	for i, fu := range fus {
		first, err := f.Answer(context.Background(), Request{Message: fu.First})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = Request{Message: fu.Then, History: []Exchange{{User: fu.First, Assistant: first.Text, Citations: first.Citations}}}
	}
	return reqs
}

// benchRequests measures f answering reqs in turn.
func benchRequests(b *testing.B, f *FAQ, reqs []Request) {
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := f.Answer(ctx, reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// syntheticKB makes a Chinese knowledge base of n entries by recombining the bank's
// phrasings, so term statistics stay realistic.
func syntheticKB(b *testing.B, n int) *KB {
	b.Helper()
	base, err := LoadKB("../kb/bank-zh.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var phr []string
	for _, e := range base.Entries {
		phr = append(phr, e.Question)
		phr = append(phr, e.Alternates...)
	}
	pick := func() string { return phr[rng.IntN(len(phr))] }
	kb := &KB{Tenant: "synthetic", Language: LangZH, Version: 1}
	for i := range n {
		e := base.Entries[i%len(base.Entries)]
		kb.Entries = append(kb.Entries, Entry{
			ID:         fmt.Sprintf("e%05d", i),
			Question:   pick() + strings.Repeat("附", i%3),
			Alternates: []string{pick(), pick(), pick()},
			Answer:     e.Answer,
			Tags:       e.Tags,
		})
	}
	return kb
}

func BenchmarkFAQ10k(b *testing.B) {
	kb := syntheticKB(b, 10000)
	b.Run("load", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := NewFAQ(kb, FAQOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answer", func(b *testing.B) {
		f, err := NewFAQ(kb, FAQOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchAnswer(b, f)
	})
}
