package faq

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/fengda-ai/fengda/nlpclient"
)

// A term is common when it is in more than one document in commonShare, and in more
// than minCommon: in a small knowledge base every list is short enough to walk.
const (
	commonShare = 20
	minCommon   = 500
)

// posting is one document containing a term, with the term's BM25 weight in that
// document (tf(k1+1)/(tf+k1(1-b+b·dl/avgdl))) computed once at load time.
type posting struct {
	doc int32
	w   float32
}

// termInfo is everything the index knows about one term.
type termInfo struct {
	kind tokenKind
	// Phrasing documents (each question and alternate).
	idfP  float64
	dfP   int32
	postP []posting
	// Answer documents (one per entry).
	idfA  float64
	dfA   int32
	postA []posting
}

// index is an inverted index over an entry's phrasings and, separately, its answer.
// It is read-only once built.
type index struct {
	terms   map[string]int32
	text    []string // term id -> term
	info    []termInfo
	docEnt  []int32 // phrasing document -> entry
	entries int
	// entPhr and entAns hold the sorted term ids of each entry's phrasings and answer,
	// for the coverage of the few best candidates.
	entPhr [][]int32
	entAns [][]int32
	// entAnsW holds the BM25 weights of entAns.
	entAnsW [][]float32
	// entDocs lists each entry's phrasing documents; docTerms each document's term ids,
	// ascending, and docW their BM25 weights.
	entDocs  [][]int32
	docTerms [][]int32
	docW     [][]float32
	// commonP and commonA are the document frequencies from which a term counts as
	// common: a query scores it only in documents its rarer terms reached, so a long
	// posting list is never walked (see FAQ.search).
	commonP, commonA int
	// idfUnseen is the IDF of a term no phrasing contains.
	idfUnseen float64
	// deletes maps every one-letter deletion of an indexed word to the words, for typo
	// correction (the symmetric-delete method).
	deletes map[string][]int32
	// kw holds each term's kindWeight, and recallW that times its phrasing IDF; docAll
	// holds each phrasing document's sum of recallW, added in the order of its terms.
	// FAQ.features reads them for every query.
	kw      []float64
	recallW []float64
	docAll  []float64
	// keyIDBits and keyIndexBits are the bits sortTerms gives a term id and an index in
	// its query, under the bits of the document frequency.
	keyIDBits, keyIndexBits uint
	// w are the weights the index was built with, and its queries are weighed with.
	w *Weights

	pool sync.Pool // *scratch
}

// scratch holds per-request buffers and accumulators, reused through index.pool so a
// request allocates little and touches only the documents its terms reach. Everything
// in it is cleared, or overwritten before it is read, by the request using it.
type scratch struct {
	doc        []float32
	docTouched []int32
	ent        []float32 // best phrasing score per entry
	ent2       []float32 // second-best phrasing score per entry
	ans        []float32 // answer score per entry
	entTouched []int32
	entSeen    []bool
	order      []int // query terms in the order search adds them
	keys       []uint64
	common     []int
	// inQuery holds, per term, its weight in the query for FAQ.features; inQueryIDs the
	// terms to clear.
	inQuery    []float64
	inQueryIDs []int32
	where      []uint8     // per term, for FAQ.features
	top        []candidate // the candidates of a search no caller keeps
	// terms build the query of the message and, in a follow-up, of the previous turn.
	terms [2]termSet
	// msg and prev hold the tokens of the message and of the previous user turn.
	msg, prev []token
	synBuf    byteWriter // for tokenizer.analyse
	namesBuf  []byte     // for foreignMatcher.names
	prevEnt   []int      // entries of the previous turn
	prevTags  []int32    // their tags
}

// release clears what a request left in s of its texts, so that a pooled scratch holds
// no message.
func (s *scratch) release() {
	clear(s.msg)
	clear(s.prev)
	clear(s.synBuf.b)
	clear(s.namesBuf)
	s.msg, s.prev, s.synBuf.b, s.namesBuf = s.msg[:0], s.prev[:0], s.synBuf.b[:0], s.namesBuf[:0]
	for i := range s.terms {
		s.terms[i].reset()
	}
}

func buildIndex(tok *tokenizer, entries []nlpclient.Entry, w *Weights) *index {
	ix := &index{terms: make(map[string]int32), entries: len(entries), w: w}
	// doc holds a document's distinct term ids, ascending, with their frequencies.
	type doc struct {
		ent int32
		ids []int32
		tf  []int32
		len int
	}
	termID := func(t token) int32 {
		id, ok := ix.terms[t.text]
		if !ok {
			id = int32(len(ix.info))
			text := strings.Clone(t.text) // not the rest of the text it was cut from
			ix.terms[text] = id
			ix.info = append(ix.info, termInfo{kind: t.kind})
			ix.text = append(ix.text, text)
		}
		return id
	}
	var buf []int32
	mkdoc := func(ent int, text string) doc {
		buf = buf[:0]
		for _, t := range tok.tokenize(text) {
			buf = append(buf, termID(t))
		}
		slices.Sort(buf)
		d := doc{ent: int32(ent), len: len(buf)}
		for i, id := range buf {
			if i > 0 && id == buf[i-1] {
				d.tf[len(d.tf)-1]++
				continue
			}
			d.ids = append(d.ids, id)
			d.tf = append(d.tf, 1)
		}
		return d
	}
	var phr, ans []doc
	for i, e := range entries {
		phr = append(phr, mkdoc(i, e.Question))
		for _, a := range e.Alternates {
			if a != "" {
				phr = append(phr, mkdoc(i, a))
			}
		}
		ans = append(ans, mkdoc(i, e.Answer))
	}
	ix.entPhr = make([][]int32, len(entries))
	ix.entAns = make([][]int32, len(entries))
	ix.entAnsW = make([][]float32, len(entries))
	ix.docTerms = make([][]int32, len(phr))
	ix.docW = make([][]float32, len(phr))
	// Count postings first so each list is allocated once.
	for _, d := range phr {
		for _, id := range d.ids {
			ix.info[id].dfP++
		}
	}
	for _, d := range ans {
		for _, id := range d.ids {
			ix.info[id].dfA++
		}
	}
	for i := range ix.info {
		ti := &ix.info[i]
		ti.postP = make([]posting, 0, ti.dfP)
		ti.postA = make([]posting, 0, ti.dfA)
	}
	weights := func(docs []doc, fn func(di int, d doc, w []float32)) {
		total := 0
		for _, d := range docs {
			total += d.len
		}
		avg := math.Max(1, float64(total)/float64(max(1, len(docs))))
		for di, d := range docs {
			norm := ix.w.K1 * (1 - ix.w.B + ix.w.B*float64(d.len)/avg)
			w := make([]float32, len(d.ids))
			for k := range d.ids {
				tf := float64(d.tf[k])
				w[k] = float32(tf * (ix.w.K1 + 1) / (tf + norm))
			}
			fn(di, d, w)
		}
	}
	weights(phr, func(di int, d doc, w []float32) {
		for k, id := range d.ids {
			ix.info[id].postP = append(ix.info[id].postP, posting{doc: int32(di), w: w[k]})
		}
		ix.docTerms[di], ix.docW[di] = d.ids, w
		ix.entPhr[d.ent] = append(ix.entPhr[d.ent], d.ids...)
	})
	weights(ans, func(_ int, d doc, w []float32) {
		for k, id := range d.ids {
			ix.info[id].postA = append(ix.info[id].postA, posting{doc: d.ent, w: w[k]})
		}
		ix.entAns[d.ent], ix.entAnsW[d.ent] = d.ids, w
	})
	ix.docEnt = make([]int32, len(phr))
	ix.entDocs = make([][]int32, len(entries))
	for i, d := range phr {
		ix.docEnt[i] = d.ent
		ix.entDocs[d.ent] = append(ix.entDocs[d.ent], int32(i))
	}
	for e := range ix.entPhr {
		ix.entPhr[e] = sortedUnique(ix.entPhr[e])
	}
	idf := func(df, n int) float64 {
		return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
	}
	ix.idfUnseen = idf(0, len(phr))
	ix.commonP = max(minCommon, len(phr)/commonShare)
	ix.commonA = max(minCommon, len(ans)/commonShare)
	ix.deletes = make(map[string][]int32)
	for text, id := range ix.terms {
		ti := &ix.info[id]
		ti.idfP = idf(int(ti.dfP), len(phr))
		ti.idfA = idf(int(ti.dfA), len(ans))
		if ti.kind == kindWord && correctable(text) {
			for _, d := range deletions(text) {
				ix.deletes[d] = append(ix.deletes[d], id)
			}
		}
	}
	ix.kw = make([]float64, len(ix.info))
	ix.recallW = make([]float64, len(ix.info))
	for id, ti := range ix.info {
		ix.kw[id] = ix.w.kindWeight(ti.kind, ix.text[id])
		ix.recallW[id] = ix.w.kindWeight(ti.kind, ix.text[id]) * ti.idfP
	}
	// Summed term by term in the document's order, a product at a time.
	ix.docAll = make([]float64, len(phr))
	for d, ids := range ix.docTerms {
		var all float64
		for _, id := range ids {
			all += ix.w.kindWeight(ix.info[id].kind, ix.text[id]) * ix.info[id].idfP
		}
		ix.docAll[d] = all
	}
	maxDF := int32(0)
	for _, ti := range ix.info {
		maxDF = max(maxDF, ti.dfP)
	}
	ix.keyIDBits = uint(bits.Len(uint(len(ix.info))))
	ix.keyIndexBits = 64 - ix.keyIDBits - uint(bits.Len(uint(maxDF)))
	ix.keyIndexBits = min(ix.keyIndexBits, 31)
	ix.pool.New = func() any {
		s := &scratch{
			doc:     make([]float32, len(phr)),
			ent:     make([]float32, len(entries)),
			ent2:    make([]float32, len(entries)),
			ans:     make([]float32, len(entries)),
			entSeen: make([]bool, len(entries)),
			inQuery: make([]float64, len(ix.info)),
			where:   make([]uint8, len(ix.info)),
			top:     make([]candidate, 0, topK),
		}
		for i := range s.terms {
			s.terms[i].slot = make([]int32, len(ix.info))
		}
		return s
	}
	return ix
}

// sortTerms sorts order, indices of known terms in qs, by document frequency and then
// term id, as
//
//	slices.SortFunc(order, func(a, b int) int {
//		ia, ib := qs[a].id, qs[b].id
//		if da, db := ix.info[ia].dfP, ix.info[ib].dfP; da != db {
//			return cmp.Compare(da, db)
//		}
//		return cmp.Compare(ia, ib)
//	})
//
// does. When no term is in qs twice the order is total and any sort gives it: this one
// sorts integer keys (frequency, id, index) instead, without calling a comparison. A
// term is in qs twice only through typo correction (a word and a typo of it, or two
// typos of one word); then that sort, on whose order of equal elements the sum of
// scores depends, sorts instead.
func (ix *index) sortTerms(s *scratch, qs []qterm, order []int) []int {
	if len(qs) > 1<<ix.keyIndexBits {
		return ix.sortTermsFunc(qs, order)
	}
	keys := s.keys[:0]
	for _, qi := range order {
		id := qs[qi].id
		keys = append(keys, uint64(ix.info[id].dfP)<<(ix.keyIDBits+ix.keyIndexBits)|uint64(id)<<ix.keyIndexBits|uint64(qi))
	}
	slices.Sort(keys)
	s.keys = keys
	for i := 1; i < len(keys); i++ {
		if keys[i]>>ix.keyIndexBits == keys[i-1]>>ix.keyIndexBits {
			return ix.sortTermsFunc(qs, order) // a term twice
		}
	}
	for i, k := range keys {
		order[i] = int(k & (1<<ix.keyIndexBits - 1))
	}
	return order
}

func (ix *index) sortTermsFunc(qs []qterm, order []int) []int {
	slices.SortFunc(order, func(a, b int) int {
		ia, ib := qs[a].id, qs[b].id
		if da, db := ix.info[ia].dfP, ix.info[ib].dfP; da != db {
			return cmp.Compare(da, db)
		}
		return cmp.Compare(ia, ib)
	})
	return order
}

// weightIn returns the weight of term id in a document given by its ascending term ids
// and their weights, or 0.
func weightIn(ids []int32, w []float32, id int32) float32 {
	if i, ok := slices.BinarySearch(ids, id); ok {
		return w[i]
	}
	return 0
}

func sortedUnique(ids []int32) []int32 {
	slices.Sort(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// baseIDF is the weight a term carries in confidence features: its phrasing IDF, or the
// IDF of an unseen term when no phrasing has it.
func (ix *index) baseIDF(id int32) float64 {
	if id < 0 || ix.info[id].dfP == 0 {
		return ix.idfUnseen
	}
	return ix.info[id].idfP
}

// correctable reports whether a word is long enough, and plain enough, to correct typos in.
func correctable(w string) bool {
	if len(w) < 4 || len(w) > 24 {
		return false
	}
	return isASCIILower(w)
}

func deletions(w string) []string {
	out := make([]string, 0, len(w))
	for i := 0; i < len(w); i++ {
		d := w[:i] + w[i+1:]
		if i > 0 && w[i] == w[i-1] {
			continue // same deletion as the previous one
		}
		out = append(out, d)
	}
	return out
}

// correct returns the indexed word closest to an unknown word w: within one edit (two for
// words of eight letters or more, counting a swap of neighbours as one), preferring the
// nearest and then the most frequent. It returns -1 when there is none.
func (ix *index) correct(w string) int32 {
	if !correctable(w) {
		return -1
	}
	maxDist := 1
	if len(w) >= 8 {
		maxDist = 2
	}
	best, bestDist, bestDF := int32(-1), maxDist+1, int32(-1)
	// The best is the least by distance, then frequency, then id, so the order the
	// candidates arrive in does not matter; seen only saves measuring one twice.
	var seenBuf [32]int32
	seen := seenBuf[:0]
	try := func(id int32) {
		if slices.Contains(seen, id) {
			return
		}
		seen = append(seen, id)
		d := osaDistance(w, ix.text[id], maxDist)
		df := ix.info[id].dfP + ix.info[id].dfA
		if d < bestDist || (d == bestDist && (df > bestDF || (df == bestDF && id < best))) {
			best, bestDist, bestDF = id, d, df
		}
	}
	for _, id := range ix.deletes[w] {
		try(id)
	}
	var buf [24]byte // correctable words are at most 24 letters
	for i := 0; i < len(w); i++ {
		if i > 0 && w[i] == w[i-1] {
			continue // same deletion as the previous one
		}
		d := append(append(buf[:0], w[:i]...), w[i+1:]...)
		if id, ok := ix.terms[string(d)]; ok && ix.info[id].kind == kindWord {
			try(id)
		}
		for _, id := range ix.deletes[string(d)] {
			try(id)
		}
	}
	if bestDist > maxDist {
		return -1
	}
	return best
}

// osaDistance is the optimal string alignment distance of two ASCII words, or limit+1
// once it exceeds limit.
func osaDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d > limit || -d > limit {
		return limit + 1
	}
	var rows [3][32]int
	var prev2, prev, cur []int
	if n := len(b) + 1; n <= len(rows[0]) {
		prev2, prev, cur = rows[0][:n], rows[1][:n], rows[2][:n]
	} else {
		prev2, prev, cur = make([]int, n), make([]int, n), make([]int, n)
	}
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
