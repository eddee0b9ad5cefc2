// Package faq owns the built-in FAQ engine: BM25 over an inverted index of a tenant's
// knowledge base, Chinese and English, with its tokenizer, synonyms, typo correction,
// follow-up handling and confidence model, and the evaluation that measures it.
//
// It imports only nlpclient and its text folding; it knows nothing of models.
package faq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fengda-ai/fengda/nlpclient"
)

// DefaultMinConfidence is the confidence below which FAQ answers with suggestions
// instead of an entry. With the shipped weights it rejects at least 90% of the
// out-of-scope questions of both evaluation sets while answering wrongly no more than
// about 9% of the in-scope ones (go run ./nlpclient/faq/tune current prints the sweep).
const DefaultMinConfidence = 0.6

// topK is how many candidates a search keeps.
const topK = 5

// FAQOptions configures an FAQ engine.
type FAQOptions struct {
	// MinConfidence is the confidence needed to answer from an entry; below it the engine
	// suggests questions instead. Zero means DefaultMinConfidence.
	MinConfidence float64 `yaml:"min_confidence"`
	// Weights replaces the ranking and confidence weights; nil means
	// DefaultWeights(kb.Language). A tuning aid: the shipped engine never sets it.
	Weights *Weights `yaml:"-"`
}

// FAQ answers questions from one tenant's knowledge base with BM25 over an inverted
// index of the entries' phrasings. It is immutable once built and safe for concurrent use.
type FAQ struct {
	kb      *nlpclient.KB
	tok     *tokenizer
	ix      *index
	byID    map[string]int
	foreign *foreignMatcher
	minConf float64
	w       *Weights
	// entTags holds each entry's tags as ids: equal ids, equal tags.
	entTags [][]int32
}

// NewFAQ builds the index of a validated knowledge base.
func NewFAQ(kb *nlpclient.KB, opts FAQOptions) (*FAQ, error) {
	if kb == nil {
		return nil, errors.New("new faq: nil knowledge base")
	}
	if err := kb.Validate(); err != nil {
		return nil, fmt.Errorf("new faq: %w", err)
	}
	if opts.MinConfidence < 0 || opts.MinConfidence > 1 {
		return nil, fmt.Errorf("new faq: min confidence %v outside [0, 1]", opts.MinConfidence)
	}
	if opts.MinConfidence == 0 {
		opts.MinConfidence = DefaultMinConfidence
	}
	w := DefaultWeights(kb.Language)
	if opts.Weights != nil {
		w = *opts.Weights
	}
	f := &FAQ{
		kb:      kb,
		tok:     newTokenizer(append(append([][]string(nil), kb.Synonyms...), builtinSynonyms[kb.Language]...)),
		byID:    make(map[string]int, len(kb.Entries)),
		minConf: opts.MinConfidence,
		w:       &w,
	}
	tagID := map[string]int32{}
	f.entTags = make([][]int32, len(kb.Entries))
	for i, e := range kb.Entries {
		f.byID[e.ID] = i
		for _, t := range e.Tags {
			id, ok := tagID[t]
			if !ok {
				id = int32(len(tagID))
				tagID[t] = id
			}
			f.entTags[i] = append(f.entTags[i], id)
		}
	}
	f.ix = buildIndex(f.tok, kb.Entries, f.w)
	f.foreign = newForeignMatcher(kb.Language, f.tok, f.ix)
	return f, nil
}

// Len returns the number of entries.
func (f *FAQ) Len() int { return len(f.kb.Entries) }

// Entry returns the entry with the given id.
func (f *FAQ) Entry(id string) (nlpclient.Entry, bool) {
	i, ok := f.byID[id]
	if !ok {
		return nlpclient.Entry{}, false
	}
	return f.kb.Entries[i], true
}

// KB returns the knowledge base answered from; the caller must not modify it.
func (f *FAQ) KB() *nlpclient.KB { return f.kb }

// Language returns the knowledge base's language, zh or en.
func (f *FAQ) Language() string { return f.kb.Language }

// HistoryTurns returns 1: a follow-up is read against the previous turn only.
func (f *FAQ) HistoryTurns() int { return 1 }

// Answer answers one message. It returns an entry's answer when confident, otherwise up
// to three suggested questions (SourceClarify). It returns the context's error if ctx
// is done, and no other error.
func (f *FAQ) Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error) {
	if err := ctx.Err(); err != nil {
		return nlpclient.Answer{}, err
	}
	r := f.resolve(req)
	return f.compose(r), nil
}

// qterm is one distinct query term.
type qterm struct {
	id     int32 // -1 when the knowledge base has never seen it
	w      float64
	kind   tokenKind
	unseen bool
}

// features describe how well the best entry matches a query.
type features struct {
	Score    float64 // best score / the query's own best possible score
	Coverage float64 // IDF-weighted share of the query matched by the best entry
	Margin   float64 // (best - second) / best
	Unseen   float64 // IDF-weighted share of the query the knowledge base never saw
	Recall   float64 // IDF-weighted share of the best entry's best phrasing the query has
	Missed   float64 // IDF-weighted share of the query's content the KB knows but the entry lacks
	Length   float64 // content terms of the query, saturating: long messages carry filler
	Gap      float64 // (best - second) / the query's own best possible score
	Foreign  float64 // 1 when the query names another company or product the KB never names
}

// vec returns the features in the order of FeatureNames.
func (ft features) vec() [NumFeatures]float64 {
	return [...]float64{1, ft.Score, ft.Coverage, ft.Margin, ft.Unseen, ft.Recall, ft.Missed, ft.Length, ft.Gap, ft.Foreign}
}

// candidate is a ranked entry.
type candidate struct {
	ent   int
	score float64
}

// result is a search outcome.
type result struct {
	cands []candidate
	feat  features
	conf  float64
	// directive: the message addresses the bot itself (isNormalizedDirective); never answered.
	directive bool
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
//	w := weight * kindWeight(t.kind, t.text)
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
// rune, a unigram one, a bigram two), so kw[id] is kindWeight(t.kind, t.text).
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

// followUp adjusts the scores of a follow-up's entries: the entries of the previous
// turn lose repeatPenalty, entries sharing a tag with them gain tagBoost.
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

// search ranks entries for the query terms. It appends the candidates to top, which
// has room for topK.
func (f *FAQ) search(s *scratch, qs []qterm, fu *followUp, foreign bool, top []candidate) result {
	ix := f.ix
	// Rare terms first: they find the candidates. A common term then adds its weight
	// only to the candidates, by lookup instead of walking its long posting list. When
	// every term is common, all are walked as usual. In a knowledge base of a few
	// hundred entries no term is common and this is plain BM25.
	order := s.order[:0]
	anyRare := false
	for i, q := range qs {
		if q.id >= 0 {
			order = append(order, i)
			anyRare = anyRare || int(ix.info[q.id].dfP) <= ix.commonP
		}
	}
	// Ties go to the lower term id, so scores are summed in one order on every run.
	order = ix.sortTerms(s, qs, order)
	s.order = order
	common := s.common[:0]
	for _, qi := range order {
		q := qs[qi]
		ti := &ix.info[q.id]
		if anyRare && int(ti.dfP) > ix.commonP {
			common = append(common, qi)
			continue
		}
		wp := float32(q.w * ti.idfP)
		for _, p := range ti.postP {
			if s.doc[p.doc] == 0 {
				s.docTouched = append(s.docTouched, p.doc)
			}
			s.doc[p.doc] += wp * p.w
		}
		if anyRare && int(ti.dfA) > ix.commonA {
			common = append(common, -qi-1) // answer side only
			continue
		}
		wa := float32(q.w * ti.idfA * f.w.Answer)
		for _, p := range ti.postA {
			if !s.entSeen[p.doc] {
				s.entSeen[p.doc] = true
				s.entTouched = append(s.entTouched, p.doc)
			}
			s.ans[p.doc] += wa * p.w
		}
	}
	s.common = common
	if len(common) > 0 {
		s.docTouched = pruneTouched(s.docTouched, s.doc, maxCandidates)
		for _, qi := range common {
			if qi < 0 {
				continue
			}
			q := qs[qi]
			wp := float32(q.w * ix.info[q.id].idfP)
			for _, d := range s.docTouched {
				s.doc[d] += wp * weightIn(ix.docTerms[d], ix.docW[d], q.id)
			}
		}
	}
	for _, d := range s.docTouched {
		e := ix.docEnt[d]
		if !s.entSeen[e] {
			s.entSeen[e] = true
			s.entTouched = append(s.entTouched, e)
		}
		switch v := s.doc[d]; {
		case v > s.ent[e]:
			s.ent2[e], s.ent[e] = s.ent[e], v
		case v > s.ent2[e]:
			s.ent2[e] = v
		}
		s.doc[d] = 0
	}
	s.docTouched = s.docTouched[:0]
	if len(common) > 0 {
		s.entTouched = pruneBy(s.entTouched, func(e int32) float32 { return s.ent[e] + s.ans[e] }, maxCandidates/5,
			func(e int32) { s.ent[e], s.ent2[e], s.ans[e], s.entSeen[e] = 0, 0, 0, false })
	}
	for _, qi := range common {
		if qi < 0 {
			qi = -qi - 1
		}
		q := qs[qi]
		if int(ix.info[q.id].dfA) <= ix.commonA {
			continue // walked above
		}
		wa := float32(q.w * ix.info[q.id].idfA * f.w.Answer)
		for _, e := range s.entTouched {
			s.ans[e] += wa * weightIn(ix.entAns[e], ix.entAnsW[e], q.id)
		}
	}
	for _, e := range s.entTouched {
		sc := float64(s.ent[e]) + f.w.SecondPhrasing*float64(s.ent2[e]) + float64(s.ans[e])
		s.ent[e], s.ent2[e], s.ans[e], s.entSeen[e] = 0, 0, 0, false
		if fu != nil {
			sc *= f.followUpFactor(fu, int(e))
		}
		if c := (candidate{int(e), sc}); c.score > 0 && (len(top) < topK || better(c, top[topK-1])) {
			top = pushTop(top, c)
		}
	}
	s.entTouched = s.entTouched[:0]

	r := result{cands: top}
	r.feat = f.features(s, qs, top)
	if foreign {
		r.feat.Foreign = 1
	}
	r.conf = confidence(&f.w.Confidence, r.feat.vec())
	return r
}

// maxCandidates is how many phrasing documents, found by a query's rare terms, its
// common terms are added to.
const maxCandidates = 500

// pruneTouched keeps about the limit best-scoring documents of touched and clears the
// scores of the others. It finds the cut with a histogram of the scores, in linear time.
func pruneTouched(touched []int32, score []float32, limit int) []int32 {
	return pruneBy(touched, func(d int32) float32 { return score[d] }, limit, func(d int32) { score[d] = 0 })
}

// pruneBy keeps about the limit best of touched by score and calls drop for the others.
func pruneBy(touched []int32, score func(int32) float32, limit int, drop func(int32)) []int32 {
	if len(touched) <= limit {
		return touched
	}
	var top float32
	for _, d := range touched {
		top = max(top, score(d))
	}
	if top <= 0 {
		return touched
	}
	const buckets = 64
	var hist [buckets]int
	bucket := func(v float32) int { return min(buckets-1, int(v/top*buckets)) }
	for _, d := range touched {
		hist[bucket(score(d))]++
	}
	cut, n := buckets-1, 0
	for ; cut > 0; cut-- {
		if n += hist[cut]; n >= limit {
			break
		}
	}
	kept := touched[:0]
	for _, d := range touched {
		if bucket(score(d)) >= cut {
			kept = append(kept, d)
		} else {
			drop(d)
		}
	}
	return kept
}

// pushTop keeps the topK best candidates, best first; ties go to the earlier entry.
func pushTop(top []candidate, c candidate) []candidate {
	if c.score <= 0 {
		return top
	}
	if len(top) == topK && !better(c, top[topK-1]) {
		return top
	}
	i := 0
	for i < len(top) && !better(c, top[i]) {
		i++
	}
	if len(top) < topK {
		top = append(top, candidate{})
	}
	copy(top[i+1:], top[i:])
	top[i] = c
	return top
}

func better(a, b candidate) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.ent < b.ent
}

func (f *FAQ) features(s *scratch, qs []qterm, top []candidate) features {
	var ft features
	if len(top) == 0 {
		return ft
	}
	ix := f.ix
	var self, covered, unseenMass, contentMass, missedMass float64
	nContent := 0
	best := top[0].ent
	// where marks the terms of the best entry: 1 in a phrasing, 2 only in the answer.
	where := s.where
	for _, id := range ix.entPhr[best] {
		where[id] = 1
	}
	for _, id := range ix.entAns[best] {
		if where[id] == 0 {
			where[id] = 2
		}
	}
	for _, q := range qs {
		m := q.w * ix.baseIDF(q.id)
		self += m
		content := q.kind != kindBigram
		if content {
			nContent++
			contentMass += m
			if q.unseen {
				unseenMass += m
			}
		}
		if q.id < 0 {
			continue
		}
		switch where[q.id] {
		case 1:
			covered += m
		case 2:
			covered += m / 2
		default:
			if content {
				missedMass += m
			}
		}
	}
	for _, id := range ix.entPhr[best] {
		where[id] = 0
	}
	for _, id := range ix.entAns[best] {
		where[id] = 0
	}
	ft.Length = math.Min(1, float64(nContent)/20)
	if self <= 0 {
		return ft
	}
	ft.Score = math.Min(1, top[0].score/self)
	ft.Coverage = covered / self
	if contentMass > 0 {
		ft.Unseen = unseenMass / contentMass
		ft.Missed = missedMass / contentMass
	}
	// Recall reads the match from the phrasing's side: a long message that tells a story
	// around a question still contains most of the phrasing, an off-topic one does not.
	inQuery := s.inQuery
	for _, q := range qs {
		if q.id >= 0 {
			if inQuery[q.id] == 0 {
				s.inQueryIDs = append(s.inQueryIDs, q.id)
			}
			inQuery[q.id] = max(inQuery[q.id], q.w/ix.kw[q.id])
		}
	}
	for _, d := range ix.entDocs[best] {
		var have float64
		for _, id := range ix.docTerms[d] {
			// A term not in the query adds nothing (m·0 = +0). Reading q once, for the
			// test too, also keeps the product in registers, where a compiler that
			// fuses multiply and add (GOAMD64=v3) fuses this sum.
			if q := inQuery[id]; q != 0 {
				have += ix.recallW[id] * q
			}
		}
		if all := ix.docAll[d]; all > 0 {
			ft.Recall = max(ft.Recall, have/all)
		}
	}
	for _, id := range s.inQueryIDs {
		inQuery[id] = 0
	}
	s.inQueryIDs = s.inQueryIDs[:0]
	ft.Margin = 1
	second := 0.0
	if len(top) > 1 {
		second = top[1].score
		ft.Margin = (top[0].score - second) / top[0].score
	}
	ft.Gap = math.Min(1, (top[0].score-second)/self)
	return ft
}

// confidence is the logistic model's confidence in features x weighed by w.
func confidence(w *[NumFeatures]float64, x [NumFeatures]float64) float64 {
	var z float64
	for i := range x {
		z += w[i] * x[i]
	}
	return 1 / (1 + math.Exp(-z))
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

// Replies in each language.
var replies = map[string]struct{ clarify, rephrase string }{
	nlpclient.LangZH: {
		clarify:  "抱歉,我没有完全理解您的问题。您是想问:",
		rephrase: "抱歉,我暂时无法回答这个问题。请换个说法再问一次,或联系人工客服。",
	},
	nlpclient.LangEN: {
		clarify:  "Sorry, I'm not sure I understood. Did you mean:",
		rephrase: "Sorry, I can't answer that yet. Please try rephrasing your question, or contact a member of our support team.",
	},
}

func (f *FAQ) compose(r result) nlpclient.Answer {
	conf := math.Round(r.conf*1000) / 1000
	if len(r.cands) > 0 && r.conf >= f.minConf {
		e := f.kb.Entries[r.cands[0].ent]
		return nlpclient.Answer{
			Text:       e.Answer,
			Source:     nlpclient.SourceFAQ,
			Confidence: conf,
			Citations:  []nlpclient.Citation{{ID: e.ID, Question: e.Question}},
		}
	}
	text := replies[f.kb.Language]
	a := nlpclient.Answer{Source: nlpclient.SourceClarify, Confidence: conf, Text: text.rephrase}
	if len(r.cands) == 0 || r.feat.Coverage < plausibleCoverage || r.directive {
		return a
	}
	n, size := 0, len(text.clarify)
	for i, c := range r.cands {
		if i == maxSuggestions || c.score < suggestRatio*r.cands[0].score {
			break
		}
		n++
		size += len("\n1. ") + len(f.kb.Entries[c.ent].Question)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(text.clarify)
	if n > 0 {
		a.Suggestions = make([]nlpclient.Citation, 0, n)
	}
	for i, c := range r.cands[:n] {
		e := f.kb.Entries[c.ent]
		a.Suggestions = append(a.Suggestions, nlpclient.Citation{ID: e.ID, Question: e.Question})
		b.WriteString("\n")
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". ")
		b.WriteString(e.Question)
	}
	a.Text = b.String()
	return a
}
