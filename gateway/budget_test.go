package gateway

import (
	"runtime/debug"
	"testing"

	"github.com/fengda-ai/fengda/internal/race"
)

// The allocation budget of the gateway's own part of a JSON chat turn, as
// BenchmarkChatHandler measures it (with its test recorder and request body): held so
// that a change adding allocations fails here; raise it with the benchmark's figure if
// the change is worth it.
func TestAllocationBudget(t *testing.T) {
	if race.Enabled {
		t.Skip("allocation counts differ under the race detector; .ci/run checks them without it")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const budget = 30
	got := testing.AllocsPerRun(100, chatTurn(t))
	if got > budget {
		t.Errorf("chat handler (BenchmarkChatHandler): %.2f allocations, budget %d", got, budget)
	}
	t.Logf("chat handler (BenchmarkChatHandler): %.2f allocations, budget %d", got, budget)
}
