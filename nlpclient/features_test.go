package nlpclient

import (
	"fmt"
	"os"
	"testing"
)

// TestDumpFeatures writes the confidence features of the development sample as CSV
// when NLP_FEATURES names a file, for refitting the confidence weights.
func TestDumpFeatures(t *testing.T) {
	out := os.Getenv("NLP_FEATURES")
	if out == "" {
		t.Skip("set NLP_FEATURES=path to write the features")
	}
	fh, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fmt.Fprintln(fh, "kb,kind,correct,score,coverage,margin,unseen,recall,conf")
	for _, name := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(t, name)
		for _, q := range loadEvalSet(t, name+"-queries").Queries {
			r := f.resolve(Request{Message: q.Query})
			correct := 0
			if q.Gold != "" && len(r.cands) > 0 && f.kb.Entries[r.cands[0].ent].ID == q.Gold {
				correct = 1
			}
			fmt.Fprintf(fh, "%s,%s,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", name, q.Kind, correct,
				r.feat.Score, r.feat.Coverage, r.feat.Margin, r.feat.Unseen, r.feat.Recall, r.conf)
		}
		// Leave-one-out samples from the knowledge base itself: a phrasing asked of the
		// index without that phrasing (positive when it finds its entry), and of the index
		// without its whole entry (always a negative: the answer is not there).
		kb := f.kb
		for i, e := range kb.Entries {
			without := *kb
			without.Entries = append(append([]Entry(nil), kb.Entries[:i]...), kb.Entries[i+1:]...)
			fw, err := NewFAQ(&without, FAQOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for j, alt := range e.Alternates {
				r := fw.resolve(Request{Message: alt})
				fmt.Fprintf(fh, "%s,loo-out,0,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", name,
					r.feat.Score, r.feat.Coverage, r.feat.Margin, r.feat.Unseen, r.feat.Recall, r.conf)
				one := *kb
				one.Entries = append([]Entry(nil), kb.Entries...)
				ee := e
				ee.Alternates = append(append([]string(nil), e.Alternates[:j]...), e.Alternates[j+1:]...)
				one.Entries[i] = ee
				fo, err := NewFAQ(&one, FAQOptions{})
				if err != nil {
					t.Fatal(err)
				}
				r = fo.resolve(Request{Message: alt})
				correct := 0
				if len(r.cands) > 0 && r.cands[0].ent == i {
					correct = 1
				}
				fmt.Fprintf(fh, "%s,loo-in,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", name, correct,
					r.feat.Score, r.feat.Coverage, r.feat.Margin, r.feat.Unseen, r.feat.Recall, r.conf)
			}
		}
	}
}
