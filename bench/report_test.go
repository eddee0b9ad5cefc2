package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// A check made of rounds holds their median, keeps each round's figure in order, and
// prints and encodes them, so a reader sees how far one run's rounds spread.
func TestCheckRoundsKeepsEachRound(t *testing.T) {
	rep := newReport("x", "setup", 3)
	for _, r := range []struct{ base, fengda float64 }{{100, 30}, {100, 40}, {50, 10}} {
		rep.add("base", Run{RPS: r.base})
		rep.add("fengda", Run{RPS: r.fengda})
	}
	rep.finish()
	rep.checkRounds("throughput fengda / base", rep.ratios("fengda", "base", rps), true, 0.3, "×")

	c := rep.Checks[0]
	if c.Value != 0.3 || !c.Holds {
		t.Errorf("value %v holds %v, want the median of the rounds' ratios 0.3, holding", c.Value, c.Holds)
	}
	if want := []float64{0.3, 0.4, 0.2}; len(c.Rounds) != 3 || c.Rounds[0] != want[0] || c.Rounds[1] != want[1] || c.Rounds[2] != want[2] {
		t.Errorf("rounds %v, want %v", c.Rounds, want)
	}
	if got := rep.ratio("fengda", "base", rps); got != c.Value {
		t.Errorf("ratio %v, want the check's value %v", got, c.Value)
	}
	if got := rep.diffs("fengda", "base", rps); len(got) != 3 || got[0] != -70 || got[2] != -40 {
		t.Errorf("diffs %v, want [-70 -60 -40]", got)
	}

	var out bytes.Buffer
	rep.print(&out)
	if !strings.Contains(out.String(), "(rounds: 0.300, 0.400, 0.200)") {
		t.Errorf("printed report does not show the rounds:\n%s", out.String())
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(`"rounds":[0.3,0.4,0.2]`)) {
		t.Errorf("JSON does not carry the rounds: %s", raw)
	}
}
