package session

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/fengda-ai/fengda/internal/allocbudget"
)

// The allocation budgets of the session store's hot path (see package allocbudget).
func TestAllocationBudgets(t *testing.T) {
	allocbudget.Start(t)
	ctx := context.Background()
	turn := codecBenchTurn()
	data, err := json.Marshal(turn)
	if err != nil {
		t.Fatal(err)
	}
	reply := string(data)
	mem := newBenchMemoryStore(t)
	ref := testRef("acme", "u1")
	turns := make([]Turn, 200) // more than AllocsPerRun's calls: each is a new turn
	for i := range turns {
		turns[i] = benchTurn(i)
		turns[i].ClientMsgID = strconv.Itoa(i)
	}
	n := 0
	for _, b := range []struct {
		name   string // and the benchmark that measures it
		budget float64
		run    func()
	}{
		{"stored turn encoded (BenchmarkTurnCodec/encode/codec)", 1, func() {
			if _, err := encodeTurn(&turn); err != nil {
				t.Fatal(err)
			}
		}},
		// go-json-experiment copies each string out of the reply (the hand decoder
		// before it shared the reply's memory, 1): 6.
		{"stored turn decoded (BenchmarkTurnCodec/decode/codec)", 6, func() {
			var got Turn
			if err := decodeTurnString(reply, &got); err != nil {
				t.Fatal(err)
			}
		}},
		{"memory store, turn appended (BenchmarkMemoryStoreAppend)", 2, func() {
			if _, err := mem.Append(ctx, ref, turns[n], 0); err != nil {
				t.Fatal(err)
			}
			n++
		}},
		{"memory store, the newest turn read and a client message id looked for (LoadRecent)", 3, func() {
			if _, err := mem.LoadRecent(ctx, ref, 1, "", "m-new"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		allocbudget.Check(t, b.name, testing.AllocsPerRun(100, b.run), b.budget)
	}
}
