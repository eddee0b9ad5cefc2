package faq

import (
	"context"
	"testing"

	"github.com/fengda-ai/fengda/internal/allocbudget"
	"github.com/fengda-ai/fengda/nlpclient"
)

// The allocation budgets of the FAQ engine's hot path (see package allocbudget). A
// budget is an average per call, over every query of the knowledge base's evaluation set.
func TestAllocationBudgets(t *testing.T) {
	allocbudget.Start(t)
	ctx := context.Background()
	perRequest := func(f *FAQ, reqs []nlpclient.Request) func() float64 {
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
	alone := func(name string) []nlpclient.Request {
		var reqs []nlpclient.Request
		for _, q := range loadEvalSet(t, name+"-queries").Queries {
			reqs = append(reqs, nlpclient.Request{Message: q.Query})
		}
		return reqs
	}
	bank, shop := newTestFAQ(t, "bank-zh"), newTestFAQ(t, "shop-en")

	for _, b := range []struct {
		name   string // and the benchmark that measures it
		budget float64
		allocs func() float64
	}{
		{"FAQ answer, bank (BenchmarkFAQAnswer)", 2.5, perRequest(bank, alone("bank-zh"))},
		{"FAQ answer, shop (BenchmarkFAQAnswerShop)", 3.5, perRequest(shop, alone("shop-en"))},
		{"FAQ follow-up, bank (BenchmarkFAQFollowUp)", 3, perRequest(bank, followUpRequests(t, bank, "bank-zh"))},
		{"FAQ follow-up, shop (BenchmarkFAQFollowUp)", 4, perRequest(shop, followUpRequests(t, shop, "shop-en"))},
	} {
		allocbudget.Check(t, b.name, b.allocs(), b.budget)
	}
}
