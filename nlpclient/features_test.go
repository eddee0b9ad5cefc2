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
	fmt.Fprintln(fh, "kb,kind,correct,score,coverage,margin,unseen,conf")
	for _, name := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(t, name)
		for _, q := range loadEvalSet(t, name+"-queries").Queries {
			r := f.resolve(Request{Message: q.Query})
			correct := 0
			if q.Gold != "" && len(r.cands) > 0 && f.kb.Entries[r.cands[0].ent].ID == q.Gold {
				correct = 1
			}
			fmt.Fprintf(fh, "%s,%s,%d,%.4f,%.4f,%.4f,%.4f,%.4f\n", name, q.Kind, correct,
				r.feat.Score, r.feat.Coverage, r.feat.Margin, r.feat.Unseen, r.conf)
		}
	}
}
