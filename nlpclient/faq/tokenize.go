package faq

import (
	"io"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/nlpclient/internal/fold"
)

// tokenKind says what a token is; kinds weigh differently in ranking and confidence.
type tokenKind uint8

const (
	kindWord    tokenKind = iota // a run of letters or digits, lower-cased and stemmed
	kindUnigram                  // one CJK character
	kindBigram                   // two adjacent CJK characters
)

// token is one indexing unit of a text.
type token struct {
	text string
	kind tokenKind
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
	}
	return !fold.IsCJK(r) && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

// cjkStop holds function characters that say little on their own; they still take part
// in bigrams, where they do carry meaning (一类, 不动户).
var cjkStop = fold.NewSet([]rune("的了吗呢吧啊呀嘛哦么我你您们是在和与就都也很这那个些啥咋"))

// englishStop holds English words that carry no topic (after apostrophes are dropped).
var englishStop = newWordSet(strings.Fields(`a an the and or but if then so of to in on at by for with from
		as into about over after before up down out off than too very just also
		i me my mine myself we us our ours you your yours he him his she her it its they them their
		this that these those there here what which who whom whose when where why how
		is am are was were be been being do does did doing done have has had having
		can could will would shall should may might must
		im ive id ill youre youve whats thats theres dont doesnt didnt cant wont isnt arent
		hi hello hey please thanks thank any some all each other such own same
		get got gets getting let lets want wanted like would some something anything
		one now still yet again really actually totally already`))

// wordSet is a set of strings for membership tests on the hot path, where a map's hash
// costs more than the test: an open-addressed table hashed on a word's length and
// first, middle and last bytes.
type wordSet struct {
	slots []string // a power of two of them; "" is an empty slot
	empty bool     // whether "" is in the set
}

func newWordSet(words []string) wordSet {
	n := 8
	for n < 4*len(words) {
		n *= 2
	}
	s := wordSet{slots: make([]string, n)}
	for _, w := range words {
		if w == "" {
			s.empty = true
			continue
		}
		i := s.slot(w)
		for s.slots[i] != "" && s.slots[i] != w {
			i = (i + 1) & (len(s.slots) - 1)
		}
		s.slots[i] = w
	}
	return s
}

func (s *wordSet) slot(w string) int {
	h := uint64(len(w))*0x9E3779B97F4A7C15 ^ uint64(w[0])<<7 ^ uint64(w[len(w)/2])<<21 ^ uint64(w[len(w)-1])<<35
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 32
	return int(h) & (len(s.slots) - 1)
}

func (s *wordSet) has(w string) bool {
	if w == "" {
		return s.empty
	}
	for i := s.slot(w); ; i = (i + 1) & (len(s.slots) - 1) {
		switch s.slots[i] {
		case w:
			return true
		case "":
			return false
		}
	}
}

// stem strips common English inflections. It does not need to produce real words, only
// the same stem for the forms a customer and a knowledge base use for one word.
func stem(w string) string {
	n := len(w)
	if n <= 3 || !isASCIILower(w) {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		return w[:n-3] + "y"
	case strings.HasSuffix(w, "sses"):
		return w[:n-2]
	case strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "xes") || strings.HasSuffix(w, "zes"):
		return w[:n-2]
	case strings.HasSuffix(w, "ss") || strings.HasSuffix(w, "us") || strings.HasSuffix(w, "is"):
		return w
	case strings.HasSuffix(w, "s"):
		return w[:n-1]
	case strings.HasSuffix(w, "ied") && n > 4:
		return w[:n-3] + "y"
	case strings.HasSuffix(w, "ing") && n > 5:
		return undouble(w[:n-3])
	case strings.HasSuffix(w, "ed") && n > 4:
		return undouble(w[:n-2])
	case strings.HasSuffix(w, "ly") && n > 5:
		return w[:n-2]
	}
	return w
}

// undouble turns "shipp" (from shipping) into "ship".
func undouble(w string) string {
	n := len(w)
	if n >= 3 && w[n-1] == w[n-2] && !strings.ContainsRune("aeiouls", rune(w[n-1])) {
		return w[:n-1]
	}
	return w
}

func isASCIILower(w string) bool {
	for i := 0; i < len(w); i++ {
		if c := w[i]; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// tokenizer turns text into tokens for one knowledge base: its synonym groups are folded
// into the first word of each group before and after splitting.
type tokenizer struct {
	// cjkSyn replaces CJK synonyms in the normalised text, longest first; cjkKeys finds
	// whether there is any to replace.
	cjkSyn  *strings.Replacer
	cjkKeys *literals
	// wordSyn maps a sequence of stemmed words (joined by a space) to its replacement.
	wordSyn map[string][]string
	// maxSynWords is the longest word sequence in wordSyn.
	maxSynWords int
}

func newTokenizer(groups [][]string) *tokenizer {
	t := &tokenizer{wordSyn: make(map[string][]string)}
	var pairs [][2]string
	for _, g := range groups {
		var canon string
		for _, w := range g {
			if w = strings.TrimSpace(w); w != "" {
				canon = w
				break
			}
		}
		canonN := fold.String(canon)
		canonWords := t.words(canonN)
		for _, w := range g[1:] {
			w = fold.String(strings.TrimSpace(w))
			if w == "" || w == canonN {
				continue
			}
			if strings.IndexFunc(w, fold.IsCJK) >= 0 {
				pairs = append(pairs, [2]string{w, canonN})
				continue
			}
			ws := t.words(w)
			if len(ws) == 0 || len(canonWords) == 0 {
				continue
			}
			t.wordSyn[strings.Join(ws, " ")] = canonWords
			t.maxSynWords = max(t.maxSynWords, len(ws))
		}
	}
	if len(pairs) > 0 {
		// strings.Replacer prefers the earlier pair at one position: longest first.
		sort.SliceStable(pairs, func(i, j int) bool { return len(pairs[i][0]) > len(pairs[j][0]) })
		args := make([]string, 0, 2*len(pairs))
		keys := make([]string, 0, len(pairs))
		for _, p := range pairs {
			args = append(args, p[0], p[1])
			keys = append(keys, p[0])
		}
		t.cjkSyn = strings.NewReplacer(args...)
		t.cjkKeys = newLiterals(keys)
	}
	return t
}

// words returns the stemmed content words of a normalised text, ignoring CJK.
func (t *tokenizer) words(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return !isWordRune(r) && r != '\'' }) {
		w := strings.ReplaceAll(f, "'", "")
		if w == "" || englishStop.has(w) {
			continue
		}
		out = append(out, stem(w))
	}
	return out
}

// tokenize splits a text into CJK unigrams and bigrams and stemmed words. Punctuation
// separates; runs of letters and digits inside Chinese text stay whole words.
func (t *tokenizer) tokenize(text string) []token {
	_, toks := t.analyse(nil, text, nil)
	return toks
}

// analyse appends the tokens of text to toks, as tokenize does, and returns its
// normalised form (before synonyms are folded) with them. A non-nil buf is reused to
// fold synonyms without allocating when none occurs.
func (t *tokenizer) analyse(toks []token, text string, buf *byteWriter) (string, []token) {
	norm := fold.String(text)
	s := norm
	if t.cjkSyn != nil {
		s = t.replaceSynonyms(s, buf)
	}
	var (
		wordsBuf  [8]string
		words     = wordsBuf[:0] // pending word run, flushed through the synonym table
		prev      = -1           // offset of the previous CJK rune in the current run, or -1
		wordStart = -1
	)
	for i, r := range s {
		switch {
		case isWordRune(r) || (r == '\'' && wordStart >= 0):
			if wordStart < 0 {
				wordStart = i
			}
			prev = -1
		case fold.IsCJK(r):
			if wordStart >= 0 {
				words = appendWord(words, s[wordStart:i])
				wordStart = -1
			}
			if len(words) > 0 {
				toks = t.appendWords(toks, words)
				words = words[:0]
			}
			end := i + utf8.RuneLen(r)
			if !cjkStop.Has(r) {
				toks = append(toks, token{s[i:end], kindUnigram})
			}
			if prev >= 0 {
				toks = append(toks, token{s[prev:end], kindBigram})
			}
			prev = i
		default:
			if wordStart >= 0 {
				words = appendWord(words, s[wordStart:i])
				wordStart = -1
			}
			prev = -1
		}
	}
	if wordStart >= 0 {
		words = appendWord(words, s[wordStart:])
	}
	if len(words) > 0 {
		toks = t.appendWords(toks, words)
	}
	return norm, toks
}

// appendWord appends the stem of a run of word runes and apostrophes, unless it is a
// stop word.
func appendWord(words []string, w string) []string {
	if strings.IndexByte(w, '\'') >= 0 {
		w = strings.ReplaceAll(w, "'", "")
	}
	if w == "" || englishStop.has(w) {
		return words
	}
	return append(words, stem(w))
}

// replaceSynonyms folds CJK synonyms in s. With buf it writes into buf and returns s
// itself when nothing was replaced; the result is what cjkSyn.Replace returns.
func (t *tokenizer) replaceSynonyms(s string, buf *byteWriter) string {
	if !t.cjkKeys.any(s) {
		return s // nothing to replace
	}
	if buf == nil {
		return t.cjkSyn.Replace(s)
	}
	buf.b = buf.b[:0]
	t.cjkSyn.WriteString(buf, s) // never fails: byteWriter does not
	if string(buf.b) == s {
		return s
	}
	return string(buf.b)
}

// byteWriter appends what is written to b.
type byteWriter struct{ b []byte }

var _ io.StringWriter = (*byteWriter)(nil)

func (w *byteWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *byteWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// appendWords appends word tokens, replacing synonym sequences (longest first).
func (t *tokenizer) appendWords(toks []token, words []string) []token {
	var keyBuf [64]byte
	for i := 0; i < len(words); {
		matched := false
		for n := min(t.maxSynWords, len(words)-i); n >= 1; n-- {
			// The key is strings.Join(words[i:i+n], " "), built without allocating.
			key := append(keyBuf[:0], words[i]...)
			for _, w := range words[i+1 : i+n] {
				key = append(append(key, ' '), w...)
			}
			if rep, ok := t.wordSyn[string(key)]; ok {
				for _, w := range rep {
					toks = append(toks, token{w, kindWord})
				}
				i += n
				matched = true
				break
			}
		}
		if !matched {
			toks = append(toks, token{words[i], kindWord})
			i++
		}
	}
	return toks
}
