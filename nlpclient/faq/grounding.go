package faq

import (
	"math"

	"github.com/fengda-ai/fengda/nlpclient"
)

// References returns the entries that best match req (its message, and its history as
// Answer weighs it), best first, at most k of them and only those with a positive score,
// and the confidence of the best match, rounded as Answer rounds it. A search keeps five
// candidates, so k above five gives five at most.
func (f *FAQ) References(req nlpclient.Request, k int) ([]nlpclient.Reference, float64) {
	r := f.resolve(req)
	var refs []nlpclient.Reference
	for _, c := range r.cands {
		if len(refs) >= k {
			break
		}
		if c.score <= 0 {
			continue
		}
		e := f.kb.Entries[c.ent]
		refs = append(refs, nlpclient.Reference{ID: e.ID, Question: e.Question, Answer: e.Answer})
	}
	return refs, math.Round(r.conf*1000) / 1000
}
