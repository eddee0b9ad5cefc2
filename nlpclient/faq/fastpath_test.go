package faq

import (
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/internal/fold"
)

// The tests in this file hold the engine's shortcuts to the plain definitions they
// stand for: each shortcut must give the same result for every input.

// TestRuneClasses checks fold.IsCJK and isWordRune against the Unicode tables for every rune.
func TestRuneClasses(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		cjk := unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana)
		if got := fold.IsCJK(r); got != cjk {
			t.Fatalf("fold.IsCJK(%U) = %v, want %v", r, got, cjk)
		}
		if got, want := isWordRune(r), (unicode.IsLetter(r) || unicode.IsDigit(r)) && !cjk; got != want {
			t.Fatalf("isWordRune(%U) = %v, want %v", r, got, want)
		}
	}
}

// foldRune is fold without its shortcuts.
func foldRune(r rune) rune {
	switch {
	case r >= 0xFF01 && r <= 0xFF5E:
		r -= 0xFEE0
	case r == 0x3000:
		r = ' '
	case r == '’' || r == '‘' || r == 'ʼ':
		r = '\''
	case r >= 0x4E00:
		if s, ok := fold.TradToSimp[r]; ok {
			return s
		}
	}
	return unicode.ToLower(r)
}

// TestFold checks fold against its plain definition for every rune, and that folding a
// folded rune changes nothing: looksLikeFollowUp relies on normalising a normalised
// text giving it back.
func TestFold(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		f := fold.Rune(r)
		if want := foldRune(r); f != want {
			t.Fatalf("fold.Rune(%U) = %U, want %U", r, f, want)
		}
		if ff := fold.Rune(f); ff != f {
			t.Fatalf("fold.Rune(fold.Rune(%U)) = %U, fold.Rune(%U) = %U", r, ff, r, f)
		}
	}
}

// normalizeRunes is normalize without its shortcuts.
func normalizeRunes(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				b.WriteByte(' ')
				continue
			}
		}
		b.WriteRune(foldRune(r))
	}
	return b.String()
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"挂失银行卡", "ＡＴＭ取款１２３", "借記卡丟了怎麼掛失", "Where are my Packages?", "a\xffbc", "", "\uFFFD",
		"It’s", "Σσς İ K", "\xe4\xb8", "abc\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := fold.String(s)
		if want := normalizeRunes(s); n != want {
			t.Fatalf("fold.String(%q) = %q, want %q", s, n, want)
		}
		if nn := fold.String(n); nn != n {
			t.Fatalf("fold.String(fold.String(%q)) = %q, want %q", s, nn, n)
		}
	})
}

// plainQuery builds a query's terms the plain way, with a map from text to term.
func plainQuery(f *FAQ, texts []string, weights []float64) []qterm {
	var qs []qterm
	pos := map[string]int{}
	for ti, text := range texts {
		for _, t := range f.tok.tokenize(text) {
			w := weights[ti] * f.w.kindWeight(t.kind, t.text)
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

// identityTexts returns questions for a knowledge base: its evaluation queries and
// follow-ups, its phrasings, the injections, and the same with typos.
func identityTexts(t *testing.T, f *FAQ, name string) []string {
	var texts []string
	for _, dir := range []string{"eval-dev", "eval-synth"} {
		qs, fus := loadSets(t, dir, name)
		for _, q := range qs.Queries {
			texts = append(texts, q.Query)
		}
		for _, fu := range fus {
			texts = append(texts, fu.First, fu.Then)
		}
	}
	for _, e := range f.kb.Entries {
		texts = append(texts, e.Question)
		texts = append(texts, e.Alternates...)
	}
	texts = append(texts, injectionsZH...)
	texts = append(texts, injectionsEN...)
	texts = append(texts, genericOut[nlpclient.LangZH]...)
	texts = append(texts, genericOut[nlpclient.LangEN]...)
	rng := rand.New(rand.NewPCG(3, 5))
	for _, s := range slices.Clone(texts) {
		b := []byte(s)
		for range 2 {
			if k := rng.IntN(len(b) + 1); k+1 < len(b) && b[k] >= 'a' && b[k] <= 'z' {
				if rng.IntN(2) == 0 {
					b = slices.Delete(b, k, k+1)
				} else {
					b[k], b[k+1] = b[k+1], b[k]
				}
			}
		}
		texts = append(texts, string(b), s+" "+s, strings.Repeat(s, 3))
	}
	return texts
}

// TestTermSet checks the terms a request builds against plainQuery, for one text and,
// as a follow-up builds them, for two.
func TestTermSet(t *testing.T) {
	for _, name := range []string{"bank-zh", "shop-en"} {
		f := newTestFAQ(t, name)
		texts := identityTexts(t, f, name)
		ts := termSet{slot: make([]int32, len(f.ix.info))}
		for i, text := range texts {
			prev := texts[(i+1)%len(texts)]
			ts.reset()
			ts.add(f.ix, f.tok.tokenize(text), 1)
			if got, want := ts.qs, plainQuery(f, []string{text}, []float64{1}); !slices.Equal(got, want) {
				t.Fatalf("%s %q: terms\n%v, want\n%v", name, text, got, want)
			}
			ts.add(f.ix, f.tok.tokenize(prev), f.w.History)
			if got, want := ts.qs, plainQuery(f, []string{text, prev}, []float64{1, f.w.History}); !slices.Equal(got, want) {
				t.Fatalf("%s %q then %q: terms\n%v, want\n%v", name, text, prev, got, want)
			}
		}
	}
}

// TestSortTerms checks index.sortTerms against the sort it stands for, with and without
// terms that are in a query twice.
func TestSortTerms(t *testing.T) {
	f := newTestFAQ(t, "bank-zh")
	ix := f.ix
	s := ix.pool.Get().(*scratch)
	defer ix.pool.Put(s)
	rng := rand.New(rand.NewPCG(1, 1))
	for n := range 2000 {
		qs := make([]qterm, 1+rng.IntN(60))
		pool := 1 + rng.IntN(len(ix.info))
		if n%2 == 0 {
			pool = min(pool, 20) // many terms twice
		}
		var order []int
		for i := range qs {
			qs[i].id = int32(rng.IntN(pool))
			if rng.IntN(8) == 0 {
				qs[i].id = -1
				continue
			}
			order = append(order, i)
		}
		want := slices.Clone(order)
		sort.Slice(want, func(a, b int) bool {
			ia, ib := qs[want[a]].id, qs[want[b]].id
			if da, db := ix.info[ia].dfP, ix.info[ib].dfP; da != db {
				return da < db
			}
			return ia < ib
		})
		if got := ix.sortTerms(s, qs, order); !slices.Equal(got, want) {
			t.Fatalf("sortTerms = %v, want %v", got, want)
		}
	}
}

// TestDirectivePatterns checks that each pattern needs the words it lists, and that
// isDirective answers as the patterns joined into one regular expression did, on
// strings made to match each pattern and on the test questions.
func TestDirectivePatterns(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	fillers := []string{"", " ", "x", "请", "请问", "。", "please ", "ok, ", " thanks", "吗?", "a"}
	for lang, pats := range directivePatterns {
		d := directiveMatchers[lang]
		var res []string
		for _, p := range pats {
			res = append(res, p.re)
		}
		joined := regexp.MustCompile(strings.Join(res, "|"))
		check := func(m string) bool {
			found := make([]bool, len(d.words.strs))
			d.words.mark(m, found)
			for i, p := range d.patterns {
				if p.re.MatchString(m) && !p.matchable(found) {
					t.Fatalf("%s pattern %d matches %q without the words it needs", lang, i, m)
				}
			}
			want := joined.MatchString(m) && slices.Contains(found[:d.triggers], true)
			if got := isNormalizedDirective(lang, m); got != want {
				t.Fatalf("isNormalizedDirective(%s, %q) = %v, want %v", lang, m, got, want)
			}
			return want
		}
		for i, p := range pats {
			re, err := syntax.Parse(p.re, syntax.Perl)
			if err != nil {
				t.Fatal(err)
			}
			matched := 0
			for range 400 {
				var b strings.Builder
				b.WriteString(fillers[rng.IntN(len(fillers))])
				genMatch(rng, re, &b)
				b.WriteString(fillers[rng.IntN(len(fillers))])
				if check(fold.String(b.String())) {
					matched++
				}
			}
			if matched < 50 {
				t.Errorf("%s pattern %d: only %d of 400 made strings match", lang, i, matched)
			}
		}
		for _, name := range []string{"bank-zh", "shop-en"} {
			f := newTestFAQ(t, name)
			for _, s := range identityTexts(t, f, name) {
				check(fold.String(s))
			}
		}
	}
}

// genMatch writes a string that re matches, give or take its word boundaries.
func genMatch(rng *rand.Rand, re *syntax.Regexp, b *strings.Builder) {
	repeat := func(lo, hi int) {
		for range lo + rng.IntN(hi-lo+1) {
			genMatch(rng, re.Sub[0], b)
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		k := rng.IntN(len(re.Rune) / 2)
		lo, hi := re.Rune[2*k], re.Rune[2*k+1]
		b.WriteRune(lo + rune(rng.IntN(int(min(hi-lo, 64))+1)))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte(byte('a' + rng.IntN(26)))
	case syntax.OpCapture:
		genMatch(rng, re.Sub[0], b)
	case syntax.OpStar:
		repeat(0, 2)
	case syntax.OpPlus:
		repeat(1, 3)
	case syntax.OpQuest:
		repeat(0, 1)
	case syntax.OpRepeat:
		hi := re.Max
		if hi < 0 {
			hi = re.Min + 2
		}
		repeat(re.Min, min(hi, re.Min+3))
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			genMatch(rng, sub, b)
		}
	case syntax.OpAlternate:
		genMatch(rng, re.Sub[rng.IntN(len(re.Sub))], b)
	}
}

// Injection attempts, ten in Chinese and ten in English, shared with the model client's
// tests and the program's.
var (
	injectionsZH = readLines("../testdata/injections-zh.txt")
	injectionsEN = readLines("../testdata/injections-en.txt")
)

func readLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}
