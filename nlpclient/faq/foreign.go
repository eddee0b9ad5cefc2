package faq

import (
	"bytes"
	"strings"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/internal/fold"
)

// foreignNames are companies and products customers mention when asking about another
// business: other banks and payment platforms, marketplaces, retailers and services. A
// question naming one that the tenant's knowledge base never names is most likely about
// that business, whatever words it shares with an entry. The lists are general, not
// tied to any tenant; a name the knowledge base does mention (a bank that lists 微信 or
// Google Pay among its payment methods) is dropped for that tenant.
var foreignNames = map[string][]string{
	nlpclient.LangZH: {
		"支付宝", "花呗", "借呗", "余额宝", "微信", "财付通", "云闪付", "京东", "白条", "金条", "淘宝", "天猫", "拼多多",
		"美团", "抖音", "快手", "携程", "滴滴", "工商银行", "工行", "建设银行", "建行", "农业银行", "农行", "中国银行",
		"交通银行", "招商银行", "招行", "浦发", "民生银行", "兴业银行", "中信银行", "光大银行", "平安银行", "邮储",
		"邮政储蓄", "华夏银行", "广发银行", "北京银行", "上海银行", "微众", "网商银行", "比特币", "以太坊", "股票",
		"a股", "港股", "美股", "彩票", "苹果手机", "iphone", "华为", "小米", "特斯拉",
	},
	nlpclient.LangEN: {
		"amazon", "ebay", "walmart", "costco", "etsy", "aliexpress", "alibaba", "shein", "temu", "best buy", "ikea",
		"home depot", "wayfair", "kohl's", "macy's", "nordstrom", "rei", "target store", "iphone", "ipad", "android",
		"samsung", "netflix", "spotify", "hulu", "disney+", "uber", "lyft", "doordash", "airbnb", "facebook",
		"instagram", "tiktok", "twitter", "microsoft", "xbox", "playstation", "nintendo", "chase bank", "wells fargo",
		"bank of america", "citibank", "bitcoin", "crypto", "ethereum", "stock market", "stocks",
	},
}

// foreignMatcher finds foreign names in a normalised message.
type foreignMatcher struct {
	zh    *literals // names with CJK, matched anywhere
	words wordSet   // single-word names
	multi [][]byte  // names of several words, matched with spaces around
	// multiFirst holds the first words of multi: a message none of whose words is one
	// cannot hold a name of several words.
	multiFirst wordSet
}

// newForeignMatcher keeps the foreign names a knowledge base does not mention itself.
// A name counts as mentioned when all its terms are in the index (phrasings or answers):
// a cheap test that may keep a few names too many, never one the KB spells out.
func newForeignMatcher(lang string, tok *tokenizer, ix *index) *foreignMatcher {
	m := &foreignMatcher{}
	var zh, words, first []string
	for _, n := range foreignNames[lang] {
		n = fold.String(n)
		known := true
		for _, t := range tok.tokenize(n) {
			if t.kind == kindUnigram {
				continue
			}
			if _, ok := ix.terms[t.text]; !ok {
				known = false
			}
		}
		switch {
		case known:
		case strings.IndexFunc(n, fold.IsCJK) >= 0:
			zh = append(zh, n)
		case strings.Contains(n, " "):
			m.multi = append(m.multi, []byte(" "+n+" "))
			first = append(first, n[:strings.IndexByte(n, ' ')])
		default:
			words = append(words, n)
		}
	}
	m.zh = newLiterals(zh)
	m.words = newWordSet(words)
	m.multiFirst = newWordSet(first)
	return m
}

// isSeparator splits text into words for name matching; apostrophes and + stay in words.
func isSeparator(r rune) bool {
	return !isWordRune(r) && !fold.IsCJK(r) && r != '\'' && r != '+'
}

// names reports whether a normalised message names a foreign company or product. buf
// is reused to join the message's words.
func (m *foreignMatcher) names(s string, buf *[]byte) bool {
	if m.zh.any(s) {
		return true
	}
	// The words of s are its fields between separators (strings.FieldsFunc); several-word
	// names are looked for in " " + strings.Join(words, " ") + " ", which holds " n " only
	// if n's first word is one of the words.
	joined := append((*buf)[:0], ' ')
	found, multi, start := false, false, -1
	word := func(w string) {
		if t := strings.TrimSuffix(w, "'s"); m.words.has(w) || (len(t) < len(w) && m.words.has(t)) {
			found = true
		}
		if len(m.multi) > 0 {
			multi = multi || m.multiFirst.has(w)
			if len(joined) > 1 {
				joined = append(joined, ' ')
			}
			joined = append(joined, w...)
		}
	}
	for i, r := range s {
		switch {
		case !isSeparator(r):
			if start < 0 {
				start = i
			}
		case start >= 0:
			word(s[start:i])
			start = -1
		}
		if found {
			return true
		}
	}
	if start >= 0 {
		if word(s[start:]); found {
			return true
		}
	}
	joined = append(joined, ' ')
	*buf = joined
	if multi {
		for _, n := range m.multi {
			if bytes.Contains(joined, n) {
				return true
			}
		}
	}
	return false
}

// literals finds which of a fixed set of strings occur in a text, in one pass over it:
// at each offset only the strings whose first two bytes hash to the bucket of the two
// bytes there, and whose third byte (if any) is the next byte, are compared.
type literals struct {
	strs []string
	tiny []int32 // strings shorter than two bytes
	// start[b]..start[b+1] are the entries of bucket b.
	start   [literalBuckets + 1]uint16
	entries []literalEntry
}

type literalEntry struct {
	str   int32
	third int16 // the string's third byte, or -1 when it has two
}

const literalBuckets = 1024

func literalBucket(a, b byte) uint32 {
	return (uint32(a)<<8 | uint32(b)) * 2654435761 >> (32 - 10) // 10 bits: literalBuckets
}

func newLiterals(strs []string) *literals {
	if len(strs) >= 1<<15 {
		panic("newLiterals: too many strings")
	}
	l := &literals{strs: strs}
	var count [literalBuckets]uint16
	for i, s := range strs {
		if len(s) < 2 {
			l.tiny = append(l.tiny, int32(i))
			continue
		}
		count[literalBucket(s[0], s[1])]++
	}
	for b := range literalBuckets {
		l.start[b+1] = l.start[b] + count[b]
	}
	l.entries = make([]literalEntry, l.start[literalBuckets])
	next := l.start
	for i, s := range strs {
		if len(s) < 2 {
			continue
		}
		e := literalEntry{str: int32(i), third: -1}
		if len(s) > 2 {
			e.third = int16(s[2])
		}
		b := literalBucket(s[0], s[1])
		l.entries[next[b]] = e
		next[b]++
	}
	return l
}

// any reports whether one of the strings occurs in s, as strings.Contains would.
func (l *literals) any(s string) bool {
	return l.scan(s, nil)
}

// mark sets found[i] for each string i that occurs in s, as strings.Contains would
// find it, and reports whether any does.
func (l *literals) mark(s string, found []bool) bool {
	return l.scan(s, found)
}

func (l *literals) scan(s string, found []bool) bool {
	hit := false
	for _, k := range l.tiny {
		if str := l.strs[k]; str == "" || strings.IndexByte(s, str[0]) >= 0 {
			if found == nil {
				return true
			}
			found[k], hit = true, true
		}
	}
	for i := 0; i+1 < len(s); i++ {
		b := literalBucket(s[i], s[i+1])
		for _, e := range l.entries[l.start[b]:l.start[b+1]] {
			if e.third >= 0 && (i+2 >= len(s) || s[i+2] != byte(e.third)) {
				continue
			}
			if strings.HasPrefix(s[i:], l.strs[e.str]) {
				if found == nil {
					return true
				}
				found[e.str], hit = true, true
			}
		}
	}
	return hit
}
