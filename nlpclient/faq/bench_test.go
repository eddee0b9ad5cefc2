package faq

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/nlpclient"
)

func BenchmarkFAQAnswer(b *testing.B) {
	benchAnswer(b, newTestFAQ(b, "bank-zh"))
}

// benchAnswer measures f answering the bank's dev queries in turn.
// answerer is what benchAnswer asks: an engine, or the Swap serving one.
type answerer interface {
	Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error)
}

func benchAnswer(b *testing.B, f answerer) {
	qs := loadEvalSet(b, "bank-zh-queries").Queries
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := f.Answer(ctx, nlpclient.Request{Message: qs[i%len(qs)].Query}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFAQAnswerShop measures the shop answering its dev queries in turn.
func BenchmarkFAQAnswerShop(b *testing.B) {
	f := newTestFAQ(b, "shop-en")
	qs := loadEvalSet(b, "shop-en-queries").Queries
	reqs := make([]nlpclient.Request, len(qs))
	for i, q := range qs {
		reqs[i] = nlpclient.Request{Message: q.Query}
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
	const references = 3 // the model client's default
	for _, name := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(b, name)
		var alone []nlpclient.Request
		for _, q := range loadEvalSet(b, name+"-queries").Queries {
			alone = append(alone, nlpclient.Request{Message: q.Query})
		}
		for _, c := range []struct {
			name string
			reqs []nlpclient.Request
		}{{"alone", alone}, {"followup", followUpRequests(b, f, name)}} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if refs, _ := f.References(c.reqs[i%len(c.reqs)], references); len(refs) > references {
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
func followUpRequests(b testing.TB, f *FAQ, name string) []nlpclient.Request {
	b.Helper()
	_, fus := loadSets(b, "eval-synth", name)
	reqs := make([]nlpclient.Request, len(fus))
	for i, fu := range fus {
		first, err := f.Answer(context.Background(), nlpclient.Request{Message: fu.First})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i] = nlpclient.Request{Message: fu.Then, History: []nlpclient.Exchange{{User: fu.First, Assistant: first.Text, Citations: first.Citations}}}
	}
	return reqs
}

// benchRequests measures f answering reqs in turn.
func benchRequests(b *testing.B, f *FAQ, reqs []nlpclient.Request) {
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
func syntheticKB(b *testing.B, n int) *nlpclient.KB {
	b.Helper()
	base, err := nlpclient.LoadKB("../../kb/bank-zh.yaml")
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
	kb := &nlpclient.KB{Tenant: "synthetic", Language: nlpclient.LangZH, Version: 1}
	for i := range n {
		e := base.Entries[i%len(base.Entries)]
		kb.Entries = append(kb.Entries, nlpclient.Entry{
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
			if _, err := New(kb, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answer", func(b *testing.B) {
		f, err := New(kb, Options{})
		if err != nil {
			b.Fatal(err)
		}
		benchAnswer(b, f)
	})
}

// BenchmarkSwapUnderLoad is the cost of an answer while the knowledge base is being
// replaced: "steady" answers from a 5,000-entry engine; "replacing" does the same while
// another goroutine rebuilds a 5,000-entry engine and swaps it in, as a live edit does:
// once a second, or back to back (the worst case, one core building all the time). Each
// swap's build time is reported as swap-ms. B/op and allocs/op count the builder's
// allocations too; ns/op is the answer's.
func BenchmarkSwapUnderLoad(b *testing.B) {
	kb := syntheticKB(b, 5000)
	f, err := New(kb, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		every time.Duration // between swaps; 0: back to back; -1: none
	}{{"steady", -1}, {"replacing/every-1s", time.Second}, {"replacing/back-to-back", 0}} {
		b.Run(c.name, func(b *testing.B) {
			s := NewSwap(f)
			stop := make(chan struct{})
			done := make(chan struct{})
			var swaps int
			var building time.Duration
			go func() {
				defer close(done)
				if c.every < 0 {
					return
				}
				for {
					select {
					case <-stop:
						return
					case <-time.After(c.every):
					}
					start := time.Now()
					g, err := New(kb, Options{})
					if err != nil {
						b.Error(err)
						return
					}
					s.Replace(g)
					building += time.Since(start)
					swaps++
				}
			}()
			benchAnswer(b, s)
			close(stop)
			<-done
			if swaps > 0 {
				b.ReportMetric(float64(building.Milliseconds())/float64(swaps), "swap-ms")
			}
		})
	}
}
