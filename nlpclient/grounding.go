package nlpclient

import "math"

// Reference is a knowledge-base entry given to a model as reference material.
type Reference struct {
	ID, Question, Answer string
}

// References returns the entries that best match req (its message, and its history as
// Answer weighs it), best first, at most k of them and only those with a positive score.
// A search keeps five candidates, so k above five gives five at most.
func (f *FAQ) References(req Request, k int) []Reference {
	refs, _ := f.references(req, k)
	return refs
}

// references returns References and the confidence of the best match, rounded as
// Answer rounds it.
func (f *FAQ) references(req Request, k int) ([]Reference, float64) {
	r := f.resolve(req)
	var refs []Reference
	for _, c := range r.cands {
		if len(refs) >= k {
			break
		}
		if c.score <= 0 {
			continue
		}
		e := f.kb.Entries[c.ent]
		refs = append(refs, Reference{ID: e.ID, Question: e.Question, Answer: e.Answer})
	}
	return refs, math.Round(r.conf*1000) / 1000
}
