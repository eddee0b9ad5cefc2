package faq

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
)

// newTestFAQ loads a knowledge base from ../kb and builds its engine.
func newTestFAQ(t testing.TB, name string) *FAQ {
	t.Helper()
	kb, err := nlpclient.LoadKB(filepath.Join("..", "..", "kb", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(kb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func loadEvalSet(t testing.TB, name string) *EvalSet {
	t.Helper()
	return loadEvalSetIn(t, "eval-dev", name)
}

// loadEvalSetIn loads testdata/<dir>/<name>.json.
func loadEvalSetIn(t testing.TB, dir, name string) *EvalSet {
	t.Helper()
	s, err := LoadEvalSet(filepath.Join("testdata", dir, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// loadSets returns the queries and follow-ups of testdata/dir for a knowledge base;
// a set without follow-ups returns none.
func loadSets(t testing.TB, dir, kb string) (*EvalSet, []EvalFollowup) {
	t.Helper()
	qs := loadEvalSetIn(t, dir, kb+"-queries")
	var fus []EvalFollowup
	if _, err := os.Stat(filepath.Join("testdata", dir, kb+"-followups.json")); err == nil {
		fus = loadEvalSetIn(t, dir, kb+"-followups").Followups
	}
	return qs, fus
}

// TestEvalDev measures the engine on the development sample (testdata/eval-dev) and on
// the larger written set (testdata/eval-synth), and fails when a figure drops below the
// floor recorded from the current method.
func TestEvalDev(t *testing.T) {
	tests := []struct {
		set, kb string
		// Floors, a little under the measured figures.
		top1, top3, answered, rejection, followUp, followUpAnswered float64
	}{
		{set: "eval-dev", kb: "bank-zh", top1: 0.86, top3: 0.95, answered: 0.68, rejection: 0.9, followUp: 0.75, followUpAnswered: 0.75},
		{set: "eval-dev", kb: "shop-en", top1: 0.75, top3: 0.86, answered: 0.57, rejection: 0.9},
		{set: "eval-synth", kb: "bank-zh", top1: 0.77, top3: 0.93, answered: 0.62, rejection: 0.9, followUp: 0.7, followUpAnswered: 0.66},
		{set: "eval-synth", kb: "shop-en", top1: 0.65, top3: 0.89, answered: 0.52, rejection: 0.9, followUp: 0.77, followUpAnswered: 0.62},
	}
	for _, tt := range tests {
		t.Run(tt.set+"/"+tt.kb, func(t *testing.T) {
			f := newTestFAQ(t, tt.kb)
			qs, fus := loadSets(t, tt.set, tt.kb)
			got := Evaluate(f, qs.Queries, fus)
			t.Logf("%s: top1 %.3f top3 %.3f answered %.3f wrong %.3f rejection %.3f (%d in scope, %d out)",
				tt.kb, got.Top1, got.Top3, got.Answered, got.WrongAnswers, got.Rejection, got.InScope, got.OutOfScope)
			if got.FollowUps > 0 {
				t.Logf("%s: follow-ups top1 %.3f answered %.3f (%d)", tt.kb, got.FollowUpTop1, got.FollowUpAnswered, got.FollowUps)
			}
			for _, k := range got.Kinds() {
				kr := got.ByKind[k]
				t.Logf("%s: kind %-13s n=%2d top1 %.3f answered %.3f", tt.kb, k, kr.N, kr.Top1, kr.Answered)
			}
			t.Logf("%s: p50 %v p99 %v", tt.kb, got.P50, got.P99)
			for _, m := range got.Misses {
				t.Logf("miss %-12s gold=%-24s got=%-24s %s %.2f %q", m.Kind, m.Gold, m.Got, m.Source, m.Confidence, m.Query)
			}
			if got.Top1 < tt.top1 {
				t.Errorf("top1 = %.3f, want >= %.3f", got.Top1, tt.top1)
			}
			if got.Top3 < tt.top3 {
				t.Errorf("top3 = %.3f, want >= %.3f", got.Top3, tt.top3)
			}
			if got.Answered < tt.answered {
				t.Errorf("answered = %.3f, want >= %.3f", got.Answered, tt.answered)
			}
			if got.Rejection < tt.rejection {
				t.Errorf("rejection = %.3f, want >= %.3f", got.Rejection, tt.rejection)
			}
			if got.FollowUpTop1 < tt.followUp {
				t.Errorf("follow-up top1 = %.3f, want >= %.3f", got.FollowUpTop1, tt.followUp)
			}
			if got.FollowUpAnswered < tt.followUpAnswered {
				t.Errorf("follow-up answered = %.3f, want >= %.3f", got.FollowUpAnswered, tt.followUpAnswered)
			}
		})
	}
}
