package nlpclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// DefaultMinConfidence is the confidence below which FAQ answers with suggestions
// instead of an entry. With the shipped weights it rejects at least 90% of the
// out-of-scope questions of both evaluation sets while answering wrongly no more than
// about 8% of the in-scope ones (TestFitConfidence prints the whole sweep).
const DefaultMinConfidence = 0.6

// Ranking weights. Variables only so that the development sweep can vary them.
var (
	// answerWeight scales the answer text's BM25 score: it helps recall, but a long answer
	// mentions many topics and would otherwise attract wrong matches.
	answerWeight = 0.5
	// historyWeight scales the previous user turn's terms in a follow-up query.
	historyWeight = 0.35
	// tagBoost favours, in a follow-up, entries sharing a tag with the previous answer.
	tagBoost = 0.15
	// repeatPenalty lowers the entry just answered: a follow-up rarely asks it again.
	repeatPenalty = 0.1
	// followUpSlack lowers the confidence a follow-up needs when its best entry shares a
	// tag with the entry answered before.
	followUpSlack = 0.15
	// correctedWeight is the weight of a word found by typo correction.
	correctedWeight = 0.8
	// suggestRatio: a suggestion must score at least this share of the best entry.
	suggestRatio = 0.35
	// maxSuggestions is how many questions a clarify answer offers.
	maxSuggestions = 3
	// plausibleCoverage: below this share of the query's weight matched, nothing is
	// suggested, only a request to rephrase.
	plausibleCoverage = 0.2
	// unigramWeight is a single CJK character's weight relative to a bigram or word.
	unigramWeight = 0.8
	// secondPhrasingWeight adds a share of an entry's second-best phrasing to its best:
	// an entry several of whose phrasings match is more likely the one meant.
	secondPhrasingWeight = 0.0
)

// topK is how many candidates a search keeps.
const topK = 5

// kindWeight is a query term's weight by kind: a single Chinese character says less than
// a word or a pair of characters; a number says little about the topic.
func kindWeight(k tokenKind, text string) float64 {
	switch k {
	case kindUnigram:
		return unigramWeight
	case kindWord:
		if isNumber(text) {
			return 0.3
		}
	}
	return 1
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Confidence model: a logistic function of features that are comparable across queries,
// weights in the order of features.vec, one set per language: Chinese n-grams and
// English words behave differently. They were fitted by logistic regression
// (TestFitConfidence with NLP_FIT=1) on each language's self-check (every phrasing asked
// of the index without it, and of the index without its entry, plus generic
// out-of-scope questions) and the written evaluation set (testdata/eval-synth); the
// development sample is held out from the fit. Foreign is set by hand, since too few
// questions name another company to fit it, and strongly: such a question is about that
// company.
var confWeights = map[string][]float64{
	LangZH: {-1.35, 0.88, -0.30, 3.03, -1.02, 0.04, -3.77, 3.70, 1.67, -3},
	LangEN: {-2.20, 0.44, 0.62, 0.73, -0.36, 1.28, -1.37, 4.29, 3.73, -3},
}

// FAQOptions configures an FAQ engine.
type FAQOptions struct {
	// MinConfidence is the confidence needed to answer from an entry; below it the engine
	// suggests questions instead. Zero means DefaultMinConfidence.
	MinConfidence float64 `yaml:"min_confidence"`
}

// FAQ answers questions from one tenant's knowledge base with BM25 over an inverted
// index of the entries' phrasings. It is immutable once built and safe for concurrent use.
type FAQ struct {
	kb      *KB
	tok     *tokenizer
	ix      *index
	byID    map[string]int
	foreign *foreignMatcher
	minConf float64
}

// NewFAQ builds the index of a validated knowledge base.
func NewFAQ(kb *KB, opts FAQOptions) (*FAQ, error) {
	if kb == nil {
		return nil, errors.New("new faq: nil knowledge base")
	}
	if err := kb.validate(); err != nil {
		return nil, fmt.Errorf("new faq: %w", err)
	}
	if opts.MinConfidence < 0 || opts.MinConfidence > 1 {
		return nil, fmt.Errorf("new faq: min confidence %v outside [0, 1]", opts.MinConfidence)
	}
	if opts.MinConfidence == 0 {
		opts.MinConfidence = DefaultMinConfidence
	}
	f := &FAQ{
		kb:      kb,
		tok:     newTokenizer(append(append([][]string(nil), kb.Synonyms...), builtinSynonyms[kb.Language]...)),
		byID:    make(map[string]int, len(kb.Entries)),
		minConf: opts.MinConfidence,
	}
	for i, e := range kb.Entries {
		f.byID[e.ID] = i
	}
	f.ix = buildIndex(f.tok, kb.Entries)
	f.foreign = newForeignMatcher(kb.Language, f.tok, f.ix)
	return f, nil
}

// Len returns the number of entries.
func (f *FAQ) Len() int { return len(f.kb.Entries) }

// Entry returns the entry with the given id.
func (f *FAQ) Entry(id string) (Entry, bool) {
	i, ok := f.byID[id]
	if !ok {
		return Entry{}, false
	}
	return f.kb.Entries[i], true
}

// Language returns the knowledge base's language, zh or en.
func (f *FAQ) Language() string { return f.kb.Language }

// HistoryTurns returns 1: a follow-up is read against the previous turn only.
func (f *FAQ) HistoryTurns() int { return 1 }

// Answer answers one message. It returns an entry's answer when confident, otherwise up
// to three suggested questions (SourceClarify). It returns the context's error if ctx
// is done, and no other error.
func (f *FAQ) Answer(ctx context.Context, req Request) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Answer{}, err
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

// featureNames name the elements of features.vec, for fitting and reports.
var featureNames = []string{"bias", "score", "coverage", "margin", "unseen", "recall", "missed", "length", "gap", "foreign"}

func (ft features) vec() []float64 {
	return []float64{1, ft.Score, ft.Coverage, ft.Margin, ft.Unseen, ft.Recall, ft.Missed, ft.Length, ft.Gap, ft.Foreign}
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
	// directive: the message addresses the bot itself (isDirective); never answered.
	directive bool
}

// query builds weighted query terms from texts; a term in several texts keeps its
// highest weight.
func (f *FAQ) query(texts []string, weights []float64) []qterm {
	var qs []qterm
	pos := map[string]int{}
	for ti, text := range texts {
		for _, t := range f.tok.tokenize(text) {
			w := weights[ti] * kindWeight(t.kind, t.text)
			if i, ok := pos[t.text]; ok {
				qs[i].w = math.Max(qs[i].w, w)
				continue
			}
			q := qterm{id: -1, w: w, kind: t.kind}
			if id, ok := f.ix.terms[t.text]; ok {
				q.id = id
			} else if t.kind == kindWord {
				if id := f.ix.correct(t.text); id >= 0 {
					if j, ok := pos[f.ix.text[id]]; ok {
						qs[j].w = math.Max(qs[j].w, w*correctedWeight)
						continue
					}
					q.id, q.w = id, w*correctedWeight
				}
			}
			if q.id < 0 {
				q.unseen = true
			}
			pos[t.text] = len(qs)
			qs = append(qs, q)
		}
	}
	return qs
}

// boost adjusts entry scores; nil means none.
type boost func(ent int) float64

// search ranks entries for the query terms.
func (f *FAQ) search(qs []qterm, adj boost, foreign bool) result {
	ix := f.ix
	s := ix.pool.Get().(*scratch)
	defer ix.pool.Put(s)
	// Rare terms first: they find the candidates. A common term then adds its weight
	// only to the candidates, by lookup instead of walking its long posting list. When
	// every term is common, all are walked as usual. In a knowledge base of a few
	// hundred entries no term is common and this is plain BM25.
	order := make([]int, 0, len(qs))
	anyRare := false
	for i, q := range qs {
		if q.id >= 0 {
			order = append(order, i)
			anyRare = anyRare || int(ix.info[q.id].dfP) <= ix.commonP
		}
	}
	// Ties go to the lower term id, so scores are summed in one order on every run.
	sort.Slice(order, func(a, b int) bool {
		ia, ib := qs[order[a]].id, qs[order[b]].id
		if da, db := ix.info[ia].dfP, ix.info[ib].dfP; da != db {
			return da < db
		}
		return ia < ib
	})
	var common []int
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
		wa := float32(q.w * ti.idfA * answerWeight)
		for _, p := range ti.postA {
			if !s.entSeen[p.doc] {
				s.entSeen[p.doc] = true
				s.entTouched = append(s.entTouched, p.doc)
			}
			s.ans[p.doc] += wa * p.w
		}
	}
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
		wa := float32(q.w * ix.info[q.id].idfA * answerWeight)
		for _, e := range s.entTouched {
			s.ans[e] += wa * weightIn(ix.entAns[e], ix.entAnsW[e], q.id)
		}
	}
	var top []candidate
	for _, e := range s.entTouched {
		sc := float64(s.ent[e]) + secondPhrasingWeight*float64(s.ent2[e]) + float64(s.ans[e])
		s.ent[e], s.ent2[e], s.ans[e], s.entSeen[e] = 0, 0, 0, false
		if adj != nil {
			sc *= adj(int(e))
		}
		top = pushTop(top, candidate{int(e), sc})
	}
	s.entTouched = s.entTouched[:0]

	r := result{cands: top}
	r.feat = f.features(qs, top)
	if foreign {
		r.feat.Foreign = 1
	}
	r.conf = confidence(confWeights[f.kb.Language], r.feat)
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
	i := sort.Search(len(top), func(i int) bool { return better(c, top[i]) })
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

func (f *FAQ) features(qs []qterm, top []candidate) features {
	var ft features
	if len(top) == 0 {
		return ft
	}
	ix := f.ix
	var self, covered, unseenMass, contentMass, missedMass float64
	nContent := 0
	best := top[0].ent
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
		switch {
		case contains(ix.entPhr[best], q.id):
			covered += m
		case contains(ix.entAns[best], q.id):
			covered += m / 2
		default:
			if content {
				missedMass += m
			}
		}
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
	inQuery := make(map[int32]float64, len(qs))
	for _, q := range qs {
		if q.id >= 0 {
			inQuery[q.id] = max(inQuery[q.id], q.w/kindWeight(q.kind, ix.text[q.id]))
		}
	}
	for _, d := range ix.entDocs[best] {
		var have, all float64
		for _, id := range ix.docTerms[d] {
			m := kindWeight(ix.info[id].kind, ix.text[id]) * ix.info[id].idfP
			all += m
			have += m * inQuery[id]
		}
		if all > 0 {
			ft.Recall = max(ft.Recall, have/all)
		}
	}
	ft.Margin = 1
	second := 0.0
	if len(top) > 1 {
		second = top[1].score
		ft.Margin = (top[0].score - second) / top[0].score
	}
	ft.Gap = math.Min(1, (top[0].score-second)/self)
	return ft
}

func confidence(w []float64, ft features) float64 {
	var z float64
	for i, x := range ft.vec() {
		z += w[i] * x
	}
	return 1 / (1 + math.Exp(-z))
}

// resolve searches for the message alone and, when it reads as a follow-up or is weak
// alone, again with the previous user turn mixed in.
func (f *FAQ) resolve(req Request) result {
	r := f.resolveTopic(req)
	if isDirective(f.kb.Language, req.Message) {
		r.directive, r.conf = true, 0
	}
	return r
}

// resolveTopic is resolve without the directive check.
func (f *FAQ) resolveTopic(req Request) result {
	foreign := f.foreign.names(req.Message)
	alone := f.search(f.query([]string{req.Message}, []float64{1}), nil, foreign)
	if len(req.History) == 0 {
		return alone
	}
	prev := req.History[len(req.History)-1]
	anaphoric := f.looksLikeFollowUp(req.Message)
	if !anaphoric && alone.conf >= f.minConf {
		return alone // a strong standalone question is not bent by history
	}
	prevTags := map[string]bool{}
	prevEnt := map[int]bool{}
	for _, c := range prev.Citations {
		if i, ok := f.byID[c.ID]; ok {
			prevEnt[i] = true
		}
	}
	if len(prevEnt) == 0 {
		// The previous turn was not answered from an entry (a clarify): its topic is
		// still the entry it ranked first, if that was plausible.
		if p := f.search(f.query([]string{prev.User}, []float64{1}), nil, false); len(p.cands) > 0 && p.feat.Coverage >= plausibleCoverage {
			prevEnt[p.cands[0].ent] = true
		}
	}
	for i := range prevEnt {
		for _, t := range f.kb.Entries[i].Tags {
			prevTags[t] = true
		}
	}
	adj := func(ent int) float64 {
		m := 1.0
		if prevEnt[ent] {
			m -= repeatPenalty
		}
		for _, t := range f.kb.Entries[ent].Tags {
			if prevTags[t] {
				m += tagBoost
				break
			}
		}
		return m
	}
	both := f.search(f.query([]string{req.Message, prev.User}, []float64{1, historyWeight}), adj, foreign)
	if anaphoric && len(both.cands) > 0 && both.conf < f.minConf && both.conf >= f.minConf-followUpSlack {
		// The previous turn is evidence too: a follow-up whose best entry sits in the
		// topic just answered (shares a tag, is not the same entry) is answered at a
		// lower bar than a question out of the blue.
		e := both.cands[0].ent
		if !prevEnt[e] && shareTag(f.kb.Entries[e].Tags, prevTags) {
			both.conf = f.minConf
		}
	}
	if anaphoric || both.conf > alone.conf {
		return both
	}
	return alone
}

func shareTag(tags []string, set map[string]bool) bool {
	for _, t := range tags {
		if set[t] {
			return true
		}
	}
	return false
}

// Markers that open a follow-up question ("那…", "要是…", "and for returns?").
var (
	zhFollowUp = []string{"那", "要是", "如果", "还有", "另外", "它", "这个", "那个", "这样", "然后", "还能", "还可以", "以后", "之后"}
	enFollowUp = []string{"and", "what about", "how about", "what if", "also", "then", "same", "it", "that", "those", "them", "this"}
)

// looksLikeFollowUp reports whether a message is short or opens like a follow-up.
func (f *FAQ) looksLikeFollowUp(msg string) bool {
	m := strings.TrimSpace(normalize(msg))
	cjk, words := 0, 0
	for _, t := range f.tok.tokenize(m) {
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
		if strings.HasPrefix(m, p+" ") || strings.HasPrefix(m, p+",") || strings.HasPrefix(m, p+"?") {
			return true
		}
	}
	return false
}

// Replies in each language.
var replies = map[string]struct{ clarify, rephrase string }{
	LangZH: {
		clarify:  "抱歉,我没有完全理解您的问题。您是想问:",
		rephrase: "抱歉,我暂时无法回答这个问题。请换个说法再问一次,或联系人工客服。",
	},
	LangEN: {
		clarify:  "Sorry, I'm not sure I understood. Did you mean:",
		rephrase: "Sorry, I can't answer that yet. Please try rephrasing your question, or contact a member of our support team.",
	},
}

func (f *FAQ) compose(r result) Answer {
	conf := math.Round(r.conf*1000) / 1000
	if len(r.cands) > 0 && r.conf >= f.minConf {
		e := f.kb.Entries[r.cands[0].ent]
		return Answer{
			Text:       e.Answer,
			Source:     SourceFAQ,
			Confidence: conf,
			Citations:  []Citation{{ID: e.ID, Question: e.Question}},
		}
	}
	text := replies[f.kb.Language]
	a := Answer{Source: SourceClarify, Confidence: conf, Text: text.rephrase}
	if len(r.cands) == 0 || r.feat.Coverage < plausibleCoverage || r.directive {
		return a
	}
	var b strings.Builder
	b.WriteString(text.clarify)
	for i, c := range r.cands {
		if i == maxSuggestions || c.score < suggestRatio*r.cands[0].score {
			break
		}
		e := f.kb.Entries[c.ent]
		a.Suggestions = append(a.Suggestions, Citation{ID: e.ID, Question: e.Question})
		b.WriteString("\n" + strconv.Itoa(i+1) + ". " + e.Question)
	}
	a.Text = b.String()
	return a
}
