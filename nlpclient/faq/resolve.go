package faq

import (
	"slices"
	"strings"

	"github.com/fengda-ai/fengda/nlpclient"
)

// followUp adjusts the scores of a follow-up's entries: an entry of the previous turn
// loses the share repeatPenalty, one sharing a tag with them gains Weights.TagBoost.
type followUp struct {
	ents []int
	tags []int32
}

func (f *FAQ) followUpFactor(fu *followUp, ent int) float64 {
	m := 1.0
	if slices.Contains(fu.ents, ent) {
		m -= repeatPenalty
	}
	if f.sharesTag(ent, fu.tags) {
		m += f.w.TagBoost
	}
	return m
}

// sharesTag reports whether an entry has one of tags.
func (f *FAQ) sharesTag(ent int, tags []int32) bool {
	for _, t := range f.entTags[ent] {
		if slices.Contains(tags, t) {
			return true
		}
	}
	return false
}

// resolve searches for the message alone and, when it reads as a follow-up or is weak
// alone, again with the previous user turn mixed in.
func (f *FAQ) resolve(req nlpclient.Request) result {
	s := f.ix.pool.Get().(*scratch)
	defer f.ix.pool.Put(s)
	defer s.release()
	var norm string
	norm, s.msg = f.tok.analyse(s.msg[:0], req.Message, &s.synBuf)
	r := f.resolveTopic(s, req, norm)
	if isNormalizedDirective(f.kb.Language, norm) {
		r.directive, r.conf = true, 0
	}
	return r
}

// resolveTopic is resolve without the directive check, for a message whose normalised
// text is norm and whose tokens are in s.msg.
func (f *FAQ) resolveTopic(s *scratch, req nlpclient.Request, norm string) result {
	foreign := f.foreign.names(norm, &s.namesBuf)
	// The message's own search and the follow-up's share one allocation of candidates.
	cands := make([]candidate, 0, 2*topK)
	msgTerms := &s.terms[0]
	msgTerms.add(f.ix, s.msg, 1)
	alone := f.search(s, msgTerms.qs, nil, foreign, cands[:0:topK])
	if len(req.History) == 0 {
		return alone
	}
	prev := req.History[len(req.History)-1]
	anaphoric := f.looksLikeFollowUp(norm, s.msg)
	if !anaphoric && alone.conf >= f.minConf {
		return alone // a strong standalone question is not bent by history
	}
	_, s.prev = f.tok.analyse(s.prev[:0], prev.User, &s.synBuf)
	prevEnt := s.prevEnt[:0]
	for _, c := range prev.Citations {
		if i, ok := f.byID[c.ID]; ok && !slices.Contains(prevEnt, i) {
			prevEnt = append(prevEnt, i)
		}
	}
	if len(prevEnt) == 0 {
		// The previous turn was not answered from an entry (a clarify): its topic is
		// still the entry it ranked first, if that was plausible.
		prevTerms := &s.terms[1]
		prevTerms.add(f.ix, s.prev, 1)
		if p := f.search(s, prevTerms.qs, nil, false, s.top[:0]); len(p.cands) > 0 && p.feat.Coverage >= plausibleCoverage {
			prevEnt = append(prevEnt, p.cands[0].ent)
		}
	}
	s.prevEnt = prevEnt
	prevTags := s.prevTags[:0]
	for _, i := range prevEnt {
		for _, t := range f.entTags[i] {
			if !slices.Contains(prevTags, t) {
				prevTags = append(prevTags, t)
			}
		}
	}
	s.prevTags = prevTags
	fu := &followUp{ents: prevEnt, tags: prevTags}
	// The message's terms, then the previous turn's: what a query of both texts builds.
	msgTerms.add(f.ix, s.prev, f.w.History)
	both := f.search(s, msgTerms.qs, fu, foreign, cands[topK:topK:2*topK])
	if anaphoric && len(both.cands) > 0 && both.conf < f.minConf && both.conf >= f.minConf-followUpSlack {
		// The previous turn is evidence too: a follow-up whose best entry sits in the
		// topic just answered (shares a tag, is not the same entry) is answered at a
		// lower bar than a question out of the blue.
		e := both.cands[0].ent
		if !slices.Contains(prevEnt, e) && f.sharesTag(e, prevTags) {
			both.conf = f.minConf
		}
	}
	if anaphoric || both.conf > alone.conf {
		return both
	}
	return alone
}

// Markers that open a follow-up question ("那…", "要是…", "and for returns?").
var (
	zhFollowUp = []string{"那", "要是", "如果", "还有", "另外", "它", "这个", "那个", "这样", "然后", "还能", "还可以", "以后", "之后"}
	enFollowUp = []string{"and", "what about", "how about", "what if", "also", "then", "same", "it", "that", "those", "them", "this"}
)

// looksLikeFollowUp reports whether a message is short or opens like a follow-up. norm
// is its normalised text and toks its tokens.
func (f *FAQ) looksLikeFollowUp(norm string, toks []token) bool {
	m := strings.TrimSpace(norm)
	if len(m) != len(norm) {
		// The counts are the trimmed text's. When nothing was trimmed they are those of
		// the message's tokens: normalising a normalised text changes nothing (TestFold).
		toks = f.tok.tokenize(m)
	}
	cjk, words := 0, 0
	for _, t := range toks {
		switch t.kind {
		case kindUnigram:
			cjk++
		case kindWord:
			words++
		}
	}
	if cjk+2*words <= 4 {
		return true
	}
	for _, p := range zhFollowUp {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	for _, p := range enFollowUp {
		// p followed by a space, a comma or a question mark.
		if len(m) > len(p) && strings.HasPrefix(m, p) {
			if c := m[len(p)]; c == ' ' || c == ',' || c == '?' {
				return true
			}
		}
	}
	return false
}
