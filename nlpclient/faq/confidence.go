package faq

import "math"

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

// features computes the features of a search for the terms qs that ranked top.
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
