package nlpclient

import (
	"os"
	"strings"
	"testing"
)

// TestDebugQuery prints how the engine reads one query when NLP_DEBUG is "kb|query".
func TestDebugQuery(t *testing.T) {
	arg := os.Getenv("NLP_DEBUG")
	if arg == "" {
		t.Skip("set NLP_DEBUG=kb|query to trace one query")
	}
	name, q, _ := strings.Cut(arg, "|")
	f := newTestFAQ(t, name)
	qs := f.query([]string{q}, []float64{1})
	for _, x := range qs {
		text := "?"
		if x.id >= 0 {
			text = f.ix.text[x.id]
		}
		t.Logf("term kind=%d w=%.2f id=%d text=%q idf=%.2f unseen=%v", x.kind, x.w, x.id, text, f.ix.baseIDF(x.id), x.unseen)
	}
	r := f.resolve(Request{Message: q})
	t.Logf("features %+v conf %.3f directive %v", r.feat, r.conf, r.directive)
	for _, c := range r.cands {
		t.Logf("cand %-28s %.3f %q", f.kb.Entries[c.ent].ID, c.score, f.kb.Entries[c.ent].Question)
	}
}
