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
