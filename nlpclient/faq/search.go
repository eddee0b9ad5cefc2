package faq

// topK is how many candidates a search keeps.
const topK = 5

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

// better reports whether a ranks before b: a higher score, or the earlier entry.
func better(a, b candidate) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.ent < b.ent
}
