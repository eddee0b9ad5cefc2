package faq

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
)

// checkSample is one question of the self-check, with what the engine made of it.
type checkSample struct {
	kb, kind string
	in       bool // the knowledge base answers it
	correct  bool // the best-ranked entry is the right one
	feat     features
	conf     float64
}

// genericOut are questions no tenant of either language answers, by language:
// chit-chat, other companies' products and instructions to the bot. They are written
// for the self-check and are not the development queries.
var genericOut = func() map[string][]string {
	data, err := os.ReadFile(filepath.Join("testdata", "selfcheck-out.json"))
	if err != nil {
		panic(err)
	}
	var out map[string][]string
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err)
	}
	return out
}()

// selfCheck asks each knowledge base about itself. In scope: every phrasing of an entry
// with more than one, asked of an index without that phrasing (gold: its entry). Out of
// scope: every phrasing asked of an index without its whole entry, and genericOut. It
// uses none of the development queries, so figures on it are held out from them.
func selfCheck(t testing.TB, names ...string) []checkSample {
	t.Helper()
	var out []checkSample
	for _, name := range names {
		f := newTestFAQ(t, name)
		kb := f.kb
		add := func(g *FAQ, kind, q string, gold int) {
			r := g.resolve(nlpclient.Request{Message: q})
			s := checkSample{kb: name, kind: kind, in: gold >= 0, feat: r.feat, conf: r.conf}
			s.correct = gold >= 0 && len(r.cands) > 0 && r.cands[0].ent == gold
			out = append(out, s)
		}
		for i, e := range kb.Entries {
			phr := append([]string{e.Question}, e.Alternates...)
			without := *kb
			without.Entries = append(append([]nlpclient.Entry(nil), kb.Entries[:i]...), kb.Entries[i+1:]...)
			fw, err := New(&without, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for j, q := range phr {
				add(fw, "loo-entry", q, -1)
				if len(phr) < 2 {
					continue
				}
				rest := append(append([]string(nil), phr[:j]...), phr[j+1:]...)
				one := *kb
				one.Entries = append([]nlpclient.Entry(nil), kb.Entries...)
				ee := e
				ee.Question, ee.Alternates = rest[0], rest[1:]
				one.Entries[i] = ee
				fo, err := New(&one, Options{})
				if err != nil {
					t.Fatal(err)
				}
				add(fo, "loo-phrasing", q, i)
			}
		}
		for _, q := range genericOut[kb.Language] {
			add(f, "generic-out", q, -1)
		}
	}
	return out
}

// checkFigures are the self-check's shares at a confidence threshold.
type checkFigures struct {
	top1, answered, wrong, looReject, genericReject float64
}

func figuresAt(samples []checkSample, conf func(checkSample) float64, th float64) checkFigures {
	var in, top1, ans, wrong, loo, looRej, gen, genRej int
	for _, s := range samples {
		yes := conf(s) >= th
		switch s.kind {
		case "loo-phrasing":
			in++
			if s.correct {
				top1++
			}
			if yes && s.correct {
				ans++
			} else if yes {
				wrong++
			}
		case "loo-entry":
			loo++
			if !yes {
				looRej++
			}
		default:
			gen++
			if !yes {
				genRej++
			}
		}
	}
	sh := func(n, d int) float64 { return float64(n) / float64(max(d, 1)) }
	return checkFigures{sh(top1, in), sh(ans, in), sh(wrong, in), sh(looRej, loo), sh(genRej, gen)}
}

// TestSelfCheck reports the engine on the self-check and fails when a figure drops below
// the floor recorded from the current method.
func TestSelfCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("the self-check builds an index per phrasing")
	}
	floors := map[string]checkFigures{
		"bank-zh": {top1: 0.49, answered: 0.31, looReject: 0.7, genericReject: 0.95},
		"shop-en": {top1: 0.47, answered: 0.29, looReject: 0.74, genericReject: 0.9},
	}
	for _, name := range []string{"bank-zh", "shop-en"} {
		samples := selfCheck(t, name)
		f := newTestFAQ(t, name)
		got := figuresAt(samples, func(s checkSample) float64 { return s.conf }, f.minConf)
		t.Logf("%s: top1 %.3f answered %.3f wrong %.3f rejection leave-entry-out %.3f generic %.3f",
			name, got.top1, got.answered, got.wrong, got.looReject, got.genericReject)
		want := floors[name]
		if got.top1 < want.top1 || got.answered < want.answered || got.looReject < want.looReject || got.genericReject < want.genericReject {
			t.Errorf("%s: self-check %+v below floors %+v", name, got, want)
		}
	}
}

// TestExplain checks that Explain reports what Answer decides from.
func TestExplain(t *testing.T) {
	for _, name := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(t, name)
		w := DefaultWeights(f.Language())
		qs, _ := loadSets(t, "eval-dev", name)
		for _, q := range qs.Queries {
			req := nlpclient.Request{Message: q.Query}
			x := f.Explain(req)
			a, err := f.Answer(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := math.Round(x.Confidence*1000) / 1000; got != a.Confidence {
				t.Errorf("%s %q: explained confidence %v, answered %v", name, q.Query, got, a.Confidence)
			}
			if a.Source == nlpclient.SourceFAQ && (len(x.Ranked) == 0 || x.Ranked[0] != a.Citations[0].ID) {
				t.Errorf("%s %q: ranked %v, answered from %s", name, q.Query, x.Ranked, a.Citations[0].ID)
			}
			if got := x.ConfidenceWith(&w.Confidence); x.Confidence != 0 && got != x.Confidence {
				t.Errorf("%s %q: confidence with the default weights %v, want %v", name, q.Query, got, x.Confidence)
			}
		}
	}
}

// TestWeightsOption checks that Options.Weights reaches the engine: the default
// weights given explicitly change nothing, other weights change the ranking.
func TestWeightsOption(t *testing.T) {
	f := newTestFAQ(t, "shop-en")
	same := DefaultWeights(f.Language())
	other := same
	other.Answer = 0
	g, err := New(f.KB(), Options{Weights: &same})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(f.KB(), Options{Weights: &other})
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := loadSets(t, "eval-dev", "shop-en")
	changed := 0
	for _, q := range qs.Queries {
		req := nlpclient.Request{Message: q.Query}
		want := f.Explain(req)
		if got := g.Explain(req); !reflect.DeepEqual(got, want) {
			t.Errorf("%q with the default weights given: %+v, want %+v", q.Query, got, want)
		}
		if got := h.Explain(req); !reflect.DeepEqual(got, want) {
			changed++
		}
	}
	if changed == 0 {
		t.Error("no query changed without the answer text's weight")
	}
}
