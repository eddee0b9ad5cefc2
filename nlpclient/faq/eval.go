package faq

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/fengda-ai/fengda/nlpclient"
)

// EvalQuery is one labelled question. An empty Gold (null in JSON) marks a question the
// knowledge base does not cover: the right reply is SourceClarify.
type EvalQuery struct {
	Query string `json:"query"`
	Gold  string `json:"gold"`
	Kind  string `json:"kind"`
}

// EvalFollowup is a two-turn exchange: First (answered by FirstGold), then Then, whose
// answer is Gold.
type EvalFollowup struct {
	First     string `json:"first"`
	FirstGold string `json:"first_gold"`
	Then      string `json:"then"`
	Gold      string `json:"gold"`
}

// EvalSet is the content of an evaluation file; a file holds queries, follow-ups or both.
type EvalSet struct {
	Tenant    string         `json:"tenant"`
	Language  string         `json:"language"`
	Version   int            `json:"version"`
	Queries   []EvalQuery    `json:"queries"`
	Followups []EvalFollowup `json:"followups"`
}

// LoadEvalSet reads an evaluation file.
func LoadEvalSet(path string) (*EvalSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load eval set: %w", err)
	}
	var s EvalSet
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("load eval set %s: %w", path, err)
	}
	return &s, nil
}

// KindReport is the outcome for one kind of query.
type KindReport struct {
	N int `json:"n"`
	// Top1 is the share whose best-ranked entry is the gold one (for out-of-scope
	// queries: the share rejected).
	Top1 float64 `json:"top1"`
	// Answered is the share answered confidently from the gold entry (for out-of-scope
	// queries: the share rejected).
	Answered float64 `json:"answered"`
}

// EvalMiss is one query the engine got wrong, for reading.
type EvalMiss struct {
	Kind       string           `json:"kind"`
	Query      string           `json:"query"`
	Gold       string           `json:"gold"`
	Got        string           `json:"got"` // best-ranked entry, "" if none
	Source     nlpclient.Source `json:"source"`
	Confidence float64          `json:"confidence"`
}

// EvalReport summarises an engine's answers to an evaluation set. Shares are in [0, 1].
type EvalReport struct {
	InScope    int `json:"in_scope"`
	OutOfScope int `json:"out_of_scope"`
	// Top1 is the share of in-scope queries whose best-ranked entry is the gold one,
	// confident or not; Top3 the share with the gold entry among the best three.
	Top1 float64 `json:"top1"`
	Top3 float64 `json:"top3"`
	// Answered is the share of in-scope queries answered (SourceFAQ) from the gold entry;
	// WrongAnswers the share answered from another entry, the costly mistake.
	Answered     float64 `json:"answered"`
	WrongAnswers float64 `json:"wrong_answers"`
	// Rejection is the share of out-of-scope queries answered with SourceClarify.
	Rejection float64 `json:"rejection"`
	// FollowUps counts follow-up pairs; FollowUpTop1 and FollowUpAnswered are measured on
	// the second turn, with the engine's own reply to the first as history.
	FollowUps        int     `json:"follow_ups"`
	FollowUpTop1     float64 `json:"follow_up_top1"`
	FollowUpAnswered float64 `json:"follow_up_answered"`
	// ByKind reports each query kind, out-of-scope included.
	ByKind map[string]KindReport `json:"by_kind"`
	// P50 and P99 are the time per Answer call.
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	// Misses lists the queries whose best-ranked entry is wrong, or which were answered
	// though out of scope.
	Misses []EvalMiss `json:"misses,omitempty"`
}

// Evaluate answers every query and follow-up with f and reports how it did.
func Evaluate(f *FAQ, queries []EvalQuery, followups []EvalFollowup) EvalReport {
	ctx := context.Background()
	rep := EvalReport{ByKind: map[string]KindReport{}}
	var times []time.Duration
	answer := func(req nlpclient.Request) (nlpclient.Answer, result) {
		start := time.Now()
		a, _ := f.Answer(ctx, req)
		times = append(times, time.Since(start))
		return a, f.resolve(req)
	}
	type tally struct{ n, top1, answered int }
	kinds := map[string]*tally{}
	var top1, top3, answered, wrong, rejected int
	for _, q := range queries {
		a, r := answer(nlpclient.Request{Message: q.Query})
		k := kinds[q.Kind]
		if k == nil {
			k = &tally{}
			kinds[q.Kind] = k
		}
		k.n++
		got := ""
		if len(r.cands) > 0 {
			got = f.kb.Entries[r.cands[0].ent].ID
		}
		miss := EvalMiss{Kind: q.Kind, Query: q.Query, Gold: q.Gold, Got: got, Source: a.Source, Confidence: a.Confidence}
		if q.Gold == "" {
			rep.OutOfScope++
			if a.Source == nlpclient.SourceClarify {
				rejected++
				k.top1++
				k.answered++
			} else {
				rep.Misses = append(rep.Misses, miss)
			}
			continue
		}
		rep.InScope++
		for i, c := range r.cands {
			if i < 3 && f.kb.Entries[c.ent].ID == q.Gold {
				top3++
			}
		}
		if got == q.Gold {
			top1++
			k.top1++
		} else {
			rep.Misses = append(rep.Misses, miss)
		}
		if a.Source == nlpclient.SourceFAQ {
			if a.Citations[0].ID == q.Gold {
				answered++
				k.answered++
			} else {
				wrong++
			}
		}
	}
	var fuTop1, fuAnswered int
	for _, fu := range followups {
		first, _ := answer(nlpclient.Request{Message: fu.First})
		hist := []nlpclient.Exchange{{User: fu.First, Assistant: first.Text, Citations: first.Citations}}
		a, r := answer(nlpclient.Request{Message: fu.Then, History: hist})
		rep.FollowUps++
		got := ""
		if len(r.cands) > 0 {
			got = f.kb.Entries[r.cands[0].ent].ID
		}
		if got == fu.Gold {
			fuTop1++
		} else {
			rep.Misses = append(rep.Misses, EvalMiss{Kind: "follow-up", Query: fu.First + " → " + fu.Then,
				Gold: fu.Gold, Got: got, Source: a.Source, Confidence: a.Confidence})
		}
		if a.Source == nlpclient.SourceFAQ && a.Citations[0].ID == fu.Gold {
			fuAnswered++
		}
	}
	share := func(n, d int) float64 {
		if d == 0 {
			return 0
		}
		return float64(n) / float64(d)
	}
	rep.Top1 = share(top1, rep.InScope)
	rep.Top3 = share(top3, rep.InScope)
	rep.Answered = share(answered, rep.InScope)
	rep.WrongAnswers = share(wrong, rep.InScope)
	rep.Rejection = share(rejected, rep.OutOfScope)
	rep.FollowUpTop1 = share(fuTop1, rep.FollowUps)
	rep.FollowUpAnswered = share(fuAnswered, rep.FollowUps)
	for name, k := range kinds {
		rep.ByKind[name] = KindReport{N: k.n, Top1: share(k.top1, k.n), Answered: share(k.answered, k.n)}
	}
	slices.Sort(times)
	rep.P50 = percentile(times, 0.50)
	rep.P99 = percentile(times, 0.99)
	return rep
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted)-1) + 0.5)
	return sorted[min(i, len(sorted)-1)]
}

// Kinds returns the report's query kinds in a stable order.
func (r EvalReport) Kinds() []string {
	ks := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
