package handoff

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// matcher finds the phrases of a tenant that ask for a person in a message. A phrase
// matches where it appears in the message, case folded, Latin letters and digits as
// whole words (so "human" is not found in "humane"); a phrase written "=…" matches a
// message that is only that phrase, punctuation and spaces aside.
type matcher struct {
	contains []string
	whole    map[string]bool
}

func newMatcher(phrases []string) *matcher {
	m := &matcher{whole: make(map[string]bool)}
	for _, p := range phrases {
		if w, ok := strings.CutPrefix(p, "="); ok {
			if w = normalize(w); w != "" {
				m.whole[w] = true
			}
			continue
		}
		if p = normalize(p); p != "" {
			m.contains = append(m.contains, p)
		}
	}
	return m
}

// maxMatchedRunes: a message longer than this is a question, not a request for a
// person, and is not matched (nor normalised, which keeps the hot path short).
const maxMatchedRunes = 120

func (m *matcher) match(message string) bool {
	if len(message) > 4*maxMatchedRunes || utf8.RuneCountInString(message) > maxMatchedRunes {
		return false
	}
	s := normalize(message)
	if m.whole[s] {
		return true
	}
	for _, p := range m.contains {
		if containsWord(s, p) {
			return true
		}
	}
	return false
}

// normalize folds case and full-width forms, turns punctuation and spaces into
// single spaces and trims them.
func normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
			r -= 0xFEE0
		}
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'':
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(unicode.ToLower(r))
		default:
			space = true
		}
	}
	return b.String()
}

// containsWord reports whether p occurs in s with no Latin letter or digit joined to
// either end.
func containsWord(s, p string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], p)
		if j < 0 {
			return false
		}
		at := i + j
		end := at + len(p)
		before, _ := utf8.DecodeLastRuneInString(s[:at])
		after, _ := utf8.DecodeRuneInString(s[end:])
		first, _ := utf8.DecodeRuneInString(p)
		lastR, _ := utf8.DecodeLastRuneInString(p)
		if !(latin(first) && at > 0 && latin(before)) && !(latin(lastR) && end < len(s) && latin(after)) {
			return true
		}
		i = at + 1
	}
}

// latin reports whether r is a letter or digit of a script written with spaces
// between words.
func latin(r rune) bool {
	return r < 0x2E80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) || r == '\''
}
