package faq

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
)

// goldenFile holds, for every request of TestAnswersGolden, a digest of what the FAQ
// engine answered and how it ranked. FAQ_GOLDEN=write rewrites it from the engine as
// it is.
const goldenFile = "testdata/answers-golden.txt"

// TestAnswersGolden asks both knowledge bases every evaluation query, follow-up,
// injection and phrasing, alone and after the input before it, and compares each
// answer and each ranking (candidates, scores, features, confidence, all at full
// precision) with the golden file: a change meant to make the engine cheaper must not
// change a single figure. A change meant to rank differently rewrites the file.
func TestAnswersGolden(t *testing.T) {
	// got holds, per request, its kb, input number, history length and a digest of
	// details: the answer and the ranking behind it.
	var got, details []string
	for _, kb := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(t, kb)
		var inputs []string
		for _, dir := range []string{"eval-dev", "eval-synth"} {
			paths, _ := filepath.Glob(filepath.Join("testdata", dir, kb+"-*.json"))
			for _, p := range paths {
				s, err := LoadEvalSet(p)
				if err != nil {
					t.Fatal(err)
				}
				for _, q := range s.Queries {
					inputs = append(inputs, q.Query)
				}
				for _, fu := range s.Followups {
					inputs = append(inputs, fu.First, fu.Then)
				}
			}
		}
		data, err := os.ReadFile(filepath.Join("..", "testdata", "injections-"+kb[len(kb)-2:]+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				inputs = append(inputs, line)
			}
		}
		for _, e := range f.kb.Entries {
			inputs = append(inputs, e.Question)
			inputs = append(inputs, e.Alternates...)
		}
		var prev *nlpclient.Exchange
		for i, in := range inputs {
			for _, req := range []nlpclient.Request{{Message: in}, {Message: in, History: historyOf(prev)}} {
				r := f.resolve(req)
				a, err := f.Answer(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				detail := fmt.Sprintf("%s %v %v %v %v %v %v %v",
					a.Source, a.Confidence, ids(a.Citations), ids(a.Suggestions), r.feat, r.conf, r.cands, r.directive)
				sum := sha256.Sum256([]byte(detail))
				got = append(got, fmt.Sprintf("%s %d h%d %x", kb, i, len(req.History), sum[:8]))
				details = append(details, detail)
			}
			a, _ := f.Answer(context.Background(), nlpclient.Request{Message: in})
			prev = &nlpclient.Exchange{User: in, Assistant: a.Text, Citations: a.Citations}
		}
	}
	if os.Getenv("FAQ_GOLDEN") == "write" {
		if err := os.WriteFile(goldenFile, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	file, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	i, diffs := 0, 0
	for ; sc.Scan(); i++ {
		if i < len(got) && sc.Text() != got[i] && diffs < 5 {
			t.Errorf("line %d: got %s, want %s; now: %s", i+1, got[i], sc.Text(), details[i])
		}
		if i >= len(got) || sc.Text() != got[i] {
			diffs++
		}
	}
	if i != len(got) || diffs > 0 {
		t.Errorf("%d of %d lines differ; the file has %d lines (FAQ_GOLDEN=write rewrites it)", diffs, len(got), i)
	}
}

func historyOf(prev *nlpclient.Exchange) []nlpclient.Exchange {
	if prev == nil {
		return nil
	}
	return []nlpclient.Exchange{*prev}
}

func ids(cs []nlpclient.Citation) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}
