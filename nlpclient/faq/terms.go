package faq

import "math"

// qterm is one distinct query term.
type qterm struct {
	id     int32 // -1 when the knowledge base has never seen it
	w      float64
	kind   tokenKind
	unseen bool
}

// termSet builds the weighted terms of a query from texts; a term in several texts
// keeps its highest weight. A term is found by its text: a term the index knows by its
// id (slot), one it does not among unknown, which is a list while short.
type termSet struct {
	qs      []qterm
	slot    []int32 // term id -> index in qs + 1, for terms added under their own text
	slotted []int32 // the ids with a slot, to clear
	unknown []unknownTerm
	byText  map[string]int32 // unknown, once it is long
}

// unknownTerm is a query term added under a text the index does not know: unseen, or
// corrected to a known word.
type unknownTerm struct {
	text string
	at   int32 // index in termSet.qs
}

// maxUnknownList is how many unknown texts termSet finds by a linear scan.
const maxUnknownList = 16

func (ts *termSet) reset() {
	for _, id := range ts.slotted {
		ts.slot[id] = 0
	}
	clear(ts.unknown)
	ts.qs, ts.slotted, ts.unknown = ts.qs[:0], ts.slotted[:0], ts.unknown[:0]
	if len(ts.byText) > 0 {
		clear(ts.byText)
	}
}

func (ts *termSet) findUnknown(text string) (int32, bool) {
	if len(ts.unknown) > maxUnknownList {
		i, ok := ts.byText[text]
		return i, ok
	}
	for _, u := range ts.unknown {
		if u.text == text {
			return u.at, true
		}
	}
	return 0, false
}

func (ts *termSet) addUnknown(text string, at int32) {
	ts.unknown = append(ts.unknown, unknownTerm{text, at})
	switch n := len(ts.unknown); {
	case n == maxUnknownList+1:
		if ts.byText == nil {
			ts.byText = make(map[string]int32)
		}
		for _, u := range ts.unknown {
			ts.byText[u.text] = u.at
		}
	case n > maxUnknownList+1:
		ts.byText[text] = at
	}
}

// add adds the terms of one text's tokens at the given weight. It builds what this
// plain loop, which finds terms in a map pos by their text, builds (TestTermSet):
//
//	w := weight * ix.w.kindWeight(t.kind, t.text)
//	if i, ok := pos[t.text]; ok { qs[i].w = math.Max(qs[i].w, w); continue }
//	q := qterm{id: -1, w: w, kind: t.kind}
//	if id, ok := terms[t.text]; ok { q.id = id } else if t.kind == kindWord {
//		if id := correct(t.text); id >= 0 {
//			if j, ok := pos[text[id]]; ok { qs[j].w = math.Max(qs[j].w, w*correctedWeight); continue }
//			q.id, q.w = id, w*correctedWeight
//		}
//	}
//	q.unseen = q.id < 0; pos[t.text] = len(qs); qs = append(qs, q)
//
// A known text is in pos only under its own id, and an unknown one only as unknown:
// the two never share a text. A token's kind follows from its text (a word has no CJK
// rune, a unigram one, a bigram two), so ix.kw[id] is that kindWeight.
func (ts *termSet) add(ix *index, toks []token, weight float64) {
	for _, t := range toks {
		if id, ok := ix.terms[t.text]; ok {
			w := weight * ix.kw[id]
			if i := ts.slot[id]; i > 0 {
				ts.qs[i-1].w = math.Max(ts.qs[i-1].w, w)
				continue
			}
			ts.slot[id] = int32(len(ts.qs)) + 1
			ts.slotted = append(ts.slotted, id)
			ts.qs = append(ts.qs, qterm{id: id, w: w, kind: t.kind})
			continue
		}
		w := weight * ix.w.kindWeight(t.kind, t.text)
		if i, ok := ts.findUnknown(t.text); ok {
			ts.qs[i].w = math.Max(ts.qs[i].w, w)
			continue
		}
		q := qterm{id: -1, w: w, kind: t.kind}
		if t.kind == kindWord {
			if id := ix.correct(t.text); id >= 0 {
				if j := ts.slot[id]; j > 0 {
					ts.qs[j-1].w = math.Max(ts.qs[j-1].w, w*correctedWeight)
					continue
				}
				q.id, q.w = id, w*correctedWeight
			}
		}
		if q.id < 0 {
			q.unseen = true
		}
		ts.addUnknown(t.text, int32(len(ts.qs)))
		ts.qs = append(ts.qs, q)
	}
}
