package nlpclient

import (
	"math"
	"sort"
	"sync"
)

// BM25 parameters. The usual values: phrasings are short and of similar length, so
// length normalisation matters little either way. Variables only so that the
// development sweep can vary them.
var (
	bm25K1 = 1.2
	bm25B  = 0.75
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
	// entDocs lists each entry's phrasing documents; docTerms each document's term ids.
	entDocs  [][]int32
	docTerms [][]int32
	// idfUnseen is the IDF of a term no phrasing contains.
	idfUnseen float64
	// deletes maps every one-letter deletion of an indexed word to the words, for typo
	// correction (the symmetric-delete method).
	deletes map[string][]int32

	pool sync.Pool // *scratch
}

// scratch holds per-query accumulators, reused through index.pool so a query allocates
// little and touches only the documents its terms reach.
type scratch struct {
	doc        []float32
	docTouched []int32
	ent        []float32 // best phrasing score per entry
	ent2       []float32 // second-best phrasing score per entry
	ans        []float32 // answer score per entry
	entTouched []int32
	entSeen    []bool
}

func buildIndex(tok *tokenizer, entries []Entry) *index {
	ix := &index{terms: make(map[string]int32), entries: len(entries)}
	type doc struct {
		ent int32
		tf  map[int32]int
		len int
	}
	termID := func(t token) int32 {
		id, ok := ix.terms[t.text]
		if !ok {
			id = int32(len(ix.info))
			ix.terms[t.text] = id
			ix.info = append(ix.info, termInfo{kind: t.kind})
			ix.text = append(ix.text, t.text)
		}
		return id
	}
	mkdoc := func(ent int, text string) doc {
		d := doc{ent: int32(ent), tf: make(map[int32]int)}
		for _, t := range tok.tokenize(text) {
			d.tf[termID(t)]++
			d.len++
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
	post := func(docs []doc, phrasing bool) {
		total := 0
		for _, d := range docs {
			total += d.len
		}
		avg := math.Max(1, float64(total)/float64(max(1, len(docs))))
		for di, d := range docs {
			norm := bm25K1 * (1 - bm25B + bm25B*float64(d.len)/avg)
			ids := make([]int32, 0, len(d.tf))
			for id := range d.tf {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			for _, id := range ids {
				tf := float64(d.tf[id])
				p := posting{w: float32(tf * (bm25K1 + 1) / (tf + norm))}
				ti := &ix.info[id]
				if phrasing {
					p.doc = int32(di)
					ti.postP = append(ti.postP, p)
					ti.dfP++
					ix.entPhr[d.ent] = append(ix.entPhr[d.ent], id)
				} else {
					p.doc = d.ent
					ti.postA = append(ti.postA, p)
					ti.dfA++
					ix.entAns[d.ent] = append(ix.entAns[d.ent], id)
				}
			}
		}
	}
	post(phr, true)
	post(ans, false)
	ix.docEnt = make([]int32, len(phr))
	ix.entDocs = make([][]int32, len(entries))
	ix.docTerms = make([][]int32, len(phr))
	for i, d := range phr {
		ix.docEnt[i] = d.ent
		ix.entDocs[d.ent] = append(ix.entDocs[d.ent], int32(i))
		for id := range d.tf {
			ix.docTerms[i] = append(ix.docTerms[i], id)
		}
		ix.docTerms[i] = sortedUnique(ix.docTerms[i])
	}
	for e := range ix.entPhr {
		ix.entPhr[e] = sortedUnique(ix.entPhr[e])
	}
	idf := func(df, n int) float64 {
		return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
	}
	ix.idfUnseen = idf(0, len(phr))
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
	ix.pool.New = func() any {
		return &scratch{
			doc:     make([]float32, len(phr)),
			ent:     make([]float32, len(entries)),
			ent2:    make([]float32, len(entries)),
			ans:     make([]float32, len(entries)),
			entSeen: make([]bool, len(entries)),
		}
	}
	return ix
}

func sortedUnique(ids []int32) []int32 {
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

func contains(sorted []int32, id int32) bool {
	i := sort.Search(len(sorted), func(i int) bool { return sorted[i] >= id })
	return i < len(sorted) && sorted[i] == id
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
	try := func(id int32, cand string) {
		d := osaDistance(w, cand, maxDist)
		df := ix.info[id].dfP + ix.info[id].dfA
		if d < bestDist || (d == bestDist && df > bestDF) {
			best, bestDist, bestDF = id, d, df
		}
	}
	seen := map[int32]bool{}
	check := func(ids []int32) {
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				try(id, ix.text[id])
			}
		}
	}
	check(ix.deletes[w])
	for _, d := range deletions(w) {
		if id, ok := ix.terms[d]; ok && ix.info[id].kind == kindWord {
			check([]int32{id})
		}
		check(ix.deletes[d])
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
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
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
