package nlpclient

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/internal/allocbudget"
)

// The allocation budgets of the answer engines' hot path (see package allocbudget).
// A budget is an average per call where the calls differ (the FAQ's, over every query
// of its evaluation set).
func TestAllocationBudgets(t *testing.T) {
	allocbudget.Start(t)
	ctx := context.Background()
	perRequest := func(f *FAQ, reqs []Request) func() float64 {
		return func() float64 {
			n := testing.AllocsPerRun(5, func() {
				for _, r := range reqs {
					if _, err := f.Answer(ctx, r); err != nil {
						t.Fatal(err)
					}
				}
			})
			return n / float64(len(reqs))
		}
	}
	alone := func(name string) []Request {
		var reqs []Request
		for _, q := range loadEvalSet(t, name+"-queries").Queries {
			reqs = append(reqs, Request{Message: q.Query})
		}
		return reqs
	}
	bank, shop := newTestFAQ(t, "bank-zh"), newTestFAQ(t, "shop-en")

	answer := &http.Client{Transport: cannedTransport{"application/json", benchAnswerBody}}
	stream := &http.Client{Transport: cannedTransport{"text/event-stream", benchStreamBody}}
	llmAnswer := benchLLM(t, "http://model.test/v1", answer, "")
	llmStream := benchLLM(t, "http://model.test/v1", stream, "")
	want := strings.Repeat(benchToken, benchTokens)
	prepared := benchLLM(t, "http://model.test/v1", http.DefaultClient, benchPrompt)

	for _, b := range []struct {
		name   string // and the benchmark that measures it
		budget float64
		allocs func() float64
	}{
		{"FAQ answer, bank (BenchmarkFAQAnswer)", 2.5, perRequest(bank, alone("bank-zh"))},
		{"FAQ answer, shop (BenchmarkFAQAnswerShop)", 3.5, perRequest(shop, alone("shop-en"))},
		{"FAQ follow-up, bank (BenchmarkFAQFollowUp)", 3, perRequest(bank, followUpRequests(t, bank, "bank-zh"))},
		{"FAQ follow-up, shop (BenchmarkFAQFollowUp)", 4, perRequest(shop, followUpRequests(t, shop, "shop-en"))},
		{"model request with references (BenchmarkPrepare)", 9, func() float64 {
			faq := prepared.faq.Current()
			return testing.AllocsPerRun(50, func() {
				if _, err := prepared.prepare(faq, benchRequest, true); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{"model answer read (BenchmarkParseAnswer)", 1, func() float64 {
			return testing.AllocsPerRun(50, func() {
				if _, err := parseAnswer(benchAnswerBody); err != nil {
					t.Fatal(err)
				}
			})
		}},
		{"model call, JSON, without the network (BenchmarkLLMCanned/answer)", 59, func() float64 {
			return testing.AllocsPerRun(50, func() {
				if a, err := llmAnswer.Answer(ctx, benchRequest); err != nil || a.Text != want {
					t.Fatal(a, err)
				}
			})
		}},
		{"model call, stream, without the network (BenchmarkLLMCanned/stream)", 82, func() float64 {
			return testing.AllocsPerRun(50, func() {
				if a, err := llmStream.Stream(ctx, benchRequest, func(string) error { return nil }); err != nil || a.Text != want {
					t.Fatal(a, err)
				}
			})
		}},
	} {
		allocbudget.Check(t, b.name, b.allocs(), b.budget)
	}
}
