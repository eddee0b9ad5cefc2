package openai

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/internal/allocbudget"
)

// The allocation budgets of the model client's hot path (see package allocbudget).
func TestAllocationBudgets(t *testing.T) {
	allocbudget.Start(t)
	ctx := context.Background()
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
		{"model request with references (BenchmarkPrepare)", 9, func() float64 {
			faq := prepared.faq()
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
