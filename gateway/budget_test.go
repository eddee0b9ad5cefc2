package gateway

import (
	"testing"

	"github.com/fengda-ai/fengda/internal/allocbudget"
)

// The allocation budget of the gateway's own part of a JSON chat turn, as
// BenchmarkChatHandler measures it, with its test recorder and request body (see
// package allocbudget).
func TestAllocationBudget(t *testing.T) {
	allocbudget.Start(t)
	// 34 since go-json-experiment writes the reply and reads the request (30 before, by
	// hand): the reply's citation lists, the request's pointers and a buffer's header.
	allocbudget.Check(t, "chat handler (BenchmarkChatHandler)", testing.AllocsPerRun(100, chatTurn(t)), 34)
}
