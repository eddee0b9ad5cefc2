// Package allocbudget holds, in tests, what each step of a turn may allocate: a budget
// is what the step allocates now, so that a change adding allocations to the hot path
// fails its package's test. A change worth more allocations raises the budget in the
// same commit, with the figure of the benchmark named beside it.
package allocbudget

import (
	"runtime/debug"
	"testing"
)

// Start skips t under the race detector, whose sync.Pool drops what it is given at
// random (.ci/run checks the budgets again without it), and turns the garbage collector
// off until t ends, as it would empty the pools at any moment.
func Start(t testing.TB) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector; .ci/run checks them without it")
	}
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// Check fails t when got, the allocations of one call (testing.AllocsPerRun), or their
// average over calls that differ, is over budget.
func Check(t testing.TB, name string, got, budget float64) {
	t.Helper()
	if got > budget {
		t.Errorf("%s: %.2f allocations, budget %g", name, got, budget)
		return
	}
	t.Logf("%s: %.2f allocations, budget %g", name, got, budget)
}
