// Command tune fits and sweeps the FAQ engine's weights on the knowledge bases and
// evaluation sets, and prints the figures and the constants it suggests. It changes
// nothing: the weights are constants of package faq (weights.go), edited by hand.
//
// Run it from the module's root:
//
//	go run ./nlpclient/faq/tune fit         # refit the confidence weights
//	go run ./nlpclient/faq/tune current     # the shipped confidence weights' sweep
//	go run ./nlpclient/faq/tune sweep k1    # top-1 as one ranking weight varies
//
// The self-check asks each knowledge base about itself: every phrasing of an entry
// with more than one, of an index without that phrasing (in scope), every phrasing of
// an index without its entry, and the generic out-of-scope questions (out of scope).
// The confidence weights are fitted on it and on eval-synth; eval-dev is held out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/faq"
)

func main() {
	switch err := run(os.Args[1:], os.Stdout, os.Stderr); {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "tune:", err)
		os.Exit(1)
	}
}

// errUsage is returned for arguments that name no command; the usage was printed.
var errUsage = errors.New("usage")

// sweeps name the ranking weights sweep can vary.
var sweeps = map[string]func(*faq.Weights) *float64{
	"answer":  func(w *faq.Weights) *float64 { return &w.Answer },
	"unigram": func(w *faq.Weights) *float64 { return &w.Unigram },
	"second":  func(w *faq.Weights) *float64 { return &w.SecondPhrasing },
	"k1":      func(w *faq.Weights) *float64 { return &w.K1 },
	"b":       func(w *faq.Weights) *float64 { return &w.B },
	"history": func(w *faq.Weights) *float64 { return &w.History },
	"tag":     func(w *faq.Weights) *float64 { return &w.TagBoost },
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	t := tuner{out: stdout}
	fs.StringVar(&t.kbDir, "kb", "kb", "directory of the knowledge bases")
	fs.StringVar(&t.testdata, "testdata", "nlpclient/faq/testdata", "directory of the evaluation sets and selfcheck-out.json")
	kbs := fs.String("kbs", "bank-zh,shop-en", "knowledge bases, by file name without .yaml")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tune [flags] fit | current | sweep %s\n\n", strings.Join(slices.Sorted(maps.Keys(sweeps)), "|"))
		fmt.Fprintln(stderr, "fit refits the confidence weights and sweeps the threshold with them; current sweeps")
		fmt.Fprintln(stderr, "the shipped ones; sweep prints top-1 accuracy as one ranking weight varies.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := strings.Split(*kbs, ",")
	switch cmd := fs.Arg(0); {
	case cmd == "fit" && fs.NArg() == 1, cmd == "current" && fs.NArg() == 1:
		return t.fit(names, cmd == "current")
	case cmd == "sweep" && fs.NArg() == 2 && sweeps[fs.Arg(1)] != nil:
		return t.sweep(names, fs.Arg(1))
	}
	fs.Usage()
	return errUsage
}

// tuner holds where the data is.
type tuner struct {
	kbDir, testdata string
	out             io.Writer
}

// evalSets are the sets reported on: eval-synth trains the confidence weights with the
// self-check, eval-dev is held out from the fit.
var evalSets = []string{"eval-synth", "eval-dev"}

// thresholds are the confidence thresholds fit and current report.
var thresholds = []float64{0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9}

// sample is one question with what the engine made of it.
type sample struct {
	kind    string // loo-phrasing (in scope), loo-entry, generic-out, query-in, query-out
	correct bool   // the best-ranked entry is the right one
	x       faq.Explanation
}

func (t *tuner) loadKB(name string) (*nlpclient.KB, error) {
	return nlpclient.LoadKB(filepath.Join(t.kbDir, name+".yaml"))
}

// loadSets returns the queries and follow-ups of an evaluation set for a knowledge base;
// a set without follow-ups returns none.
func (t *tuner) loadSets(dir, kb string) (*faq.EvalSet, []faq.EvalFollowup, error) {
	qs, err := faq.LoadEvalSet(filepath.Join(t.testdata, dir, kb+"-queries.json"))
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(t.testdata, dir, kb+"-followups.json")
	if _, err := os.Stat(path); err != nil {
		return qs, nil, nil
	}
	fus, err := faq.LoadEvalSet(path)
	if err != nil {
		return nil, nil, err
	}
	return qs, fus.Followups, nil
}

// selfCheck asks a knowledge base about itself (see the command's comment) with
// weights w.
func (t *tuner) selfCheck(kb *nlpclient.KB, w faq.Weights) ([]sample, error) {
	data, err := os.ReadFile(filepath.Join(t.testdata, "selfcheck-out.json"))
	if err != nil {
		return nil, err
	}
	var generic map[string][]string
	if err := json.Unmarshal(data, &generic); err != nil {
		return nil, fmt.Errorf("selfcheck-out.json: %w", err)
	}
	var out []sample
	add := func(f *faq.FAQ, kind, q, gold string) {
		x := f.Explain(nlpclient.Request{Message: q})
		out = append(out, sample{kind: kind, correct: gold != "" && len(x.Ranked) > 0 && x.Ranked[0] == gold, x: x})
	}
	build := func(kb *nlpclient.KB) (*faq.FAQ, error) { return faq.New(kb, faq.Options{Weights: &w}) }
	for i, e := range kb.Entries {
		phr := append([]string{e.Question}, e.Alternates...)
		without := *kb
		without.Entries = append(append([]nlpclient.Entry(nil), kb.Entries[:i]...), kb.Entries[i+1:]...)
		fw, err := build(&without)
		if err != nil {
			return nil, err
		}
		for j, q := range phr {
			add(fw, "loo-entry", q, "")
			if len(phr) < 2 {
				continue
			}
			rest := append(append([]string(nil), phr[:j]...), phr[j+1:]...)
			one := *kb
			one.Entries = append([]nlpclient.Entry(nil), kb.Entries...)
			ee := e
			ee.Question, ee.Alternates = rest[0], rest[1:]
			one.Entries[i] = ee
			fo, err := build(&one)
			if err != nil {
				return nil, err
			}
			add(fo, "loo-phrasing", q, e.ID)
		}
	}
	f, err := build(kb)
	if err != nil {
		return nil, err
	}
	for _, q := range generic[kb.Language] {
		add(f, "generic-out", q, "")
	}
	return out, nil
}

// querySamples turns an evaluation set into samples: each query, and each follow-up
// asked after its first turn.
func querySamples(f *faq.FAQ, set *faq.EvalSet, fus []faq.EvalFollowup) []sample {
	var out []sample
	for _, q := range set.Queries {
		x := f.Explain(nlpclient.Request{Message: q.Query})
		s := sample{kind: "query-out", x: x}
		if q.Gold != "" {
			s.kind, s.correct = "query-in", len(x.Ranked) > 0 && x.Ranked[0] == q.Gold
		}
		out = append(out, s)
	}
	for _, fu := range fus {
		first, _ := f.Answer(context.Background(), nlpclient.Request{Message: fu.First})
		hist := []nlpclient.Exchange{{User: fu.First, Assistant: first.Text, Citations: first.Citations}}
		x := f.Explain(nlpclient.Request{Message: fu.Then, History: hist})
		out = append(out, sample{kind: "query-in", correct: len(x.Ranked) > 0 && x.Ranked[0] == fu.Gold, x: x})
	}
	return out
}

// figures are the self-check's shares at a confidence threshold.
type figures struct {
	top1, answered, wrong, looReject, otherReject float64
}

// figuresAt returns the figures of samples at threshold th; the rejection of other
// questions counts every sample neither leave-one-out kind.
func figuresAt(samples []sample, conf func(sample) float64, th float64) figures {
	var in, top1, ans, wrong, loo, looRej, other, otherRej int
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
			other++
			if !yes {
				otherRej++
			}
		}
	}
	sh := func(n, d int) float64 { return float64(n) / float64(max(d, 1)) }
	return figures{sh(top1, in), sh(ans, in), sh(wrong, in), sh(looRej, loo), sh(otherRej, other)}
}

// fit fits the confidence weights of each knowledge base's language (or, with current,
// keeps the shipped ones) and prints them with a threshold sweep.
func (t *tuner) fit(names []string, current bool) error {
	for _, name := range names {
		kb, err := t.loadKB(name)
		if err != nil {
			return err
		}
		def := faq.DefaultWeights(kb.Language)
		samples, err := t.selfCheck(kb, def)
		if err != nil {
			return err
		}
		f, err := faq.New(kb, faq.Options{})
		if err != nil {
			return err
		}
		qs, fus, err := t.loadSets("eval-synth", name)
		if err != nil {
			return err
		}
		samples = append(samples, querySamples(f, qs, fus)...)
		w := def
		if !current {
			w.Confidence = fitWeights(samples, def.Confidence)
		}
		fn := faq.FeatureNames()
		fmt.Fprintf(t.out, "%s weights (%s): {%s}\n", kb.Language, strings.Join(fn[:], ", "), joinWeights(w.Confidence))
		for _, th := range thresholds {
			g := figuresAt(samples, func(s sample) float64 { return s.x.ConfidenceWith(&w.Confidence) }, th)
			line := fmt.Sprintf("%s th %.2f: self ans %.2f rej %.2f/%.2f |", name, th, g.answered, g.looReject, g.otherReject)
			for _, set := range evalSets {
				f, err := faq.New(kb, faq.Options{MinConfidence: th, Weights: &w})
				if err != nil {
					return err
				}
				qs, fus, err := t.loadSets(set, name)
				if err != nil {
					return err
				}
				r := faq.Evaluate(f, qs.Queries, fus)
				line += fmt.Sprintf(" %s ans %.2f wr %.2f rej %.2f", strings.TrimPrefix(set, "eval-"), r.Answered, r.WrongAnswers, r.Rejection)
				if r.FollowUps > 0 {
					line += fmt.Sprintf(" fu %.2f", r.FollowUpAnswered)
				}
			}
			fmt.Fprintln(t.out, line)
		}
		if !current {
			fmt.Fprintf(t.out, "suggested, in faq.DefaultWeights for %s:\n\tw.Confidence = [NumFeatures]float64{%s}\n", kb.Language, joinWeights(w.Confidence))
		}
	}
	return nil
}

func joinWeights(w [faq.NumFeatures]float64) string {
	parts := make([]string, len(w))
	for i, v := range w {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(parts, ", ")
}

// fitWeights fits confidence weights by logistic regression on samples: a right best
// entry is the positive class. The classes weigh equally, and the written queries (the
// kind of question a tenant really gets) four times a self-check phrasing. The foreign
// weight is kept from start: too few samples name another company to fit it.
func fitWeights(samples []sample, start [faq.NumFeatures]float64) [faq.NumFeatures]float64 {
	var w [faq.NumFeatures]float64
	fn := faq.FeatureNames()
	fi := slices.Index(fn[:], "foreign")
	w[fi] = start[fi]
	var nPos, nNeg float64
	for _, s := range samples {
		if s.correct {
			nPos++
		} else {
			nNeg++
		}
	}
	const queryWeight, lr, l2, iters = 4.0, 0.5, 1e-3, 20000
	for range iters {
		var grad [faq.NumFeatures]float64
		for _, s := range samples {
			x := s.x.Features
			p := s.x.ConfidenceWith(&w)
			y, cw := 0.0, 0.5/nNeg
			if s.correct {
				y, cw = 1, 0.5/nPos
			}
			if s.kind != "loo-phrasing" && s.kind != "loo-entry" {
				cw *= queryWeight
			}
			for i := range x {
				grad[i] += cw * (p - y) * x[i]
			}
		}
		for i := range w {
			if i != fi {
				w[i] -= lr * (grad[i] + l2*w[i])
			}
		}
	}
	return w
}

// sweepValues are the values sweep tries.
var sweepValues = []float64{0, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2}

// sweep prints ranking quality (self-check and evaluation top-1) as one ranking weight
// varies, and the value with the best mean top-1 on the self-checks and eval-synth.
func (t *tuner) sweep(names []string, name string) error {
	best, bestMean := math.NaN(), -1.0
	for _, v := range sweepValues {
		line := fmt.Sprintf("%s=%.2f", name, v)
		var sum float64
		var n int
		for _, kbName := range names {
			kb, err := t.loadKB(kbName)
			if err != nil {
				return err
			}
			w := faq.DefaultWeights(kb.Language)
			*sweeps[name](&w) = v
			samples, err := t.selfCheck(kb, w)
			if err != nil {
				return err
			}
			loo := figuresAt(samples, func(sample) float64 { return 0 }, 1).top1 // top-1 at any threshold
			line += fmt.Sprintf("  %s loo %.3f", kbName, loo)
			sum, n = sum+loo, n+1
			f, err := faq.New(kb, faq.Options{Weights: &w})
			if err != nil {
				return err
			}
			for _, set := range evalSets {
				qs, fus, err := t.loadSets(set, kbName)
				if err != nil {
					return err
				}
				r := faq.Evaluate(f, qs.Queries, fus)
				line += fmt.Sprintf(" %s %.3f fu %.2f", strings.TrimPrefix(set, "eval-"), r.Top1, r.FollowUpTop1)
				if set != "eval-dev" { // held out
					sum, n = sum+r.Top1, n+1
				}
			}
		}
		fmt.Fprintln(t.out, line)
		if mean := sum / float64(n); mean > bestMean {
			best, bestMean = v, mean
		}
	}
	shipped := faq.DefaultWeights("") // the ranking weights are the same in every language
	fmt.Fprintf(t.out, "suggested: %s=%.2f (mean top-1 %.3f on the self-checks and eval-synth); shipped: %.2f\n",
		name, best, bestMean, *sweeps[name](&shipped))
	return nil
}
