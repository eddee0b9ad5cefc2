package knowledge

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/nlpclient"
)

// Validate normalises b in place and checks it against lim: nil, an error wrapping
// ErrTooLarge, or an *InvalidError listing every problem found, in entry order.
//
// The size comes first, so that an oversized base is refused before any entry is
// looked at: more than lim.MaxEntries entries, or a JSON encoding of b longer than
// lim.MaxBytes, is ErrTooLarge. Then the language must be zh or en, every synonym group
// must hold at least two words, every entry must pass ValidateEntry and no two entries
// may share an id.
//
// Normalising trims the question, answer, alternates, tags and synonyms, drops empty
// alternates, tags and synonym words, and writes an answer's "\r\n" as "\n"; order is
// kept. Validate writes a field only when normalising changes it, and builds new slices
// rather than writing into the ones b holds, so a base that is already normal (as every
// stored version is) is only read, and clones that share slices with it stay apart.
//
// A zero field of lim is taken from DefaultLimits.
func Validate(b *Base, lim Limits) error {
	return validate(b, lim, nil)
}

// ValidateEntry normalises e in place, as Validate does, and returns its problems, each
// naming its field: "id", "question", "alternates", "answer", "tags" or "updated_at".
// Their Line is 0: an entry alone has no position. A zero field of lim is taken from
// DefaultLimits.
func ValidateEntry(e *Entry, lim Limits) []FieldError {
	return validateEntry(e, lim.orDefaults())
}

// positions are the lines of a parsed file, for its FieldErrors: 0 where unknown.
type positions struct {
	language int
	synonyms []int      // a group's line, by index
	entries  []entryPos // by index
}

// entryPos is where an entry and its fields begin in its file. A broken entry, one
// whose problems parsing already reported (not a mapping, a row of the wrong width), is
// not validated again.
type entryPos struct {
	line                                   int
	id, question, alternates, answer, tags int
	broken                                 bool
}

// setField records that field f of the entry is at line l.
func (e *entryPos) setField(f string, l int) {
	switch f {
	case "id":
		e.id = l
	case "question":
		e.question = l
	case "alternates":
		e.alternates = l
	case "answer":
		e.answer = l
	case "tags":
		e.tags = l
	}
}

// field is the line of field f of entry i: its own line, else the entry's, else 0.
func (p *positions) field(i int, f string) int {
	if p == nil || i >= len(p.entries) {
		return 0
	}
	e := p.entries[i]
	var l int
	switch f {
	case "id":
		l = e.id
	case "question":
		l = e.question
	case "alternates":
		l = e.alternates
	case "answer":
		l = e.answer
	case "tags":
		l = e.tags
	}
	if l == 0 {
		l = e.line
	}
	return l
}

func (p *positions) broken(i int) bool {
	return p != nil && i < len(p.entries) && p.entries[i].broken
}

func (p *positions) synonym(i int) int {
	if p == nil || i >= len(p.synonyms) {
		return 0
	}
	return p.synonyms[i]
}

func (p *positions) lang() int {
	if p == nil {
		return 0
	}
	return p.language
}

// orDefaults is lim with each zero field taken from DefaultLimits.
func (lim Limits) orDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{
		{&lim.MaxEntries, &d.MaxEntries},
		{&lim.MaxBytes, &d.MaxBytes},
		{&lim.MaxIDChars, &d.MaxIDChars},
		{&lim.MaxQuestionChars, &d.MaxQuestionChars},
		{&lim.MaxAlternates, &d.MaxAlternates},
		{&lim.MaxAnswerChars, &d.MaxAnswerChars},
		{&lim.MaxTags, &d.MaxTags},
		{&lim.MaxTagChars, &d.MaxTagChars},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return lim
}

// validate is Validate, with the lines of b's file when b was parsed from one.
func validate(b *Base, lim Limits, pos *positions) error {
	lim = lim.orDefaults()
	if len(b.Entries) > lim.MaxEntries {
		return fmt.Errorf("%w: %d entries, at most %d", ErrTooLarge, len(b.Entries), lim.MaxEntries)
	}
	if n, over := jsonSize(b, lim.MaxBytes); over {
		return fmt.Errorf("%w: %d bytes or more as JSON, at most %d", ErrTooLarge, n, lim.MaxBytes)
	}

	var errs []FieldError
	switch b.Language {
	case nlpclient.LangZH, nlpclient.LangEN:
	case "":
		errs = append(errs, FieldError{Line: pos.lang(), Field: "language", Message: "language is missing (want zh or en)"})
	default:
		errs = append(errs, FieldError{Line: pos.lang(), Field: "language", Message: fmt.Sprintf("language %s is not supported (want zh or en)", quote(b.Language))})
	}

	var copied bool
	for i, g := range b.Synonyms {
		ng, changed := normaliseList(g)
		if changed {
			if !copied {
				b.Synonyms = slices.Clone(b.Synonyms)
				copied = true
			}
			b.Synonyms[i] = ng
		}
		line := pos.synonym(i)
		if len(ng) < 2 {
			errs = append(errs, FieldError{Line: line, Field: "synonyms", Message: fmt.Sprintf("synonym group %d: needs at least two words", i+1)})
		}
		for j, w := range ng {
			for _, m := range textProblems(w, 0, false) {
				errs = append(errs, FieldError{Line: line, Field: "synonyms", Message: fmt.Sprintf("synonym group %d: word %d %s", i+1, j+1, m)})
			}
		}
	}

	seen := make(map[string]int, len(b.Entries))
	for i := range b.Entries {
		if pos.broken(i) {
			continue
		}
		e := &b.Entries[i]
		for _, fe := range validateEntry(e, lim) {
			fe.Line = pos.field(i, fe.Field)
			fe.Message = fmt.Sprintf("entry %d: %s", i+1, fe.Message)
			errs = append(errs, fe)
		}
		if e.ID == "" {
			continue
		}
		if j, ok := seen[e.ID]; ok {
			errs = append(errs, FieldError{Line: pos.field(i, "id"), Field: "id", Message: fmt.Sprintf("entry %d: id %s is also entry %d's", i+1, quote(e.ID), j+1)})
			continue
		}
		seen[e.ID] = i
	}
	if len(errs) > 0 {
		return &InvalidError{Errors: errs}
	}
	return nil
}

func validateEntry(e *Entry, lim Limits) []FieldError {
	normaliseEntry(e)
	var errs []FieldError
	add := func(field, msg string) {
		errs = append(errs, FieldError{Field: field, Message: msg})
	}

	switch {
	case e.ID == "":
		add("id", "id is empty")
	case len(e.ID) > lim.MaxIDChars:
		add("id", fmt.Sprintf("id %s is longer than %d characters", quote(e.ID), lim.MaxIDChars))
	}
	if e.ID != "" && strings.ContainsFunc(e.ID, func(r rune) bool { return !isIDRune(r) }) {
		add("id", fmt.Sprintf("id %s may hold only A-Z, a-z, 0-9, _ and -", quote(e.ID)))
	}

	if e.Question == "" {
		add("question", "question is empty")
	}
	for _, m := range textProblems(e.Question, lim.MaxQuestionChars, false) {
		add("question", "question "+m)
	}
	if len(e.Alternates) > lim.MaxAlternates {
		add("alternates", fmt.Sprintf("%d alternates, at most %d", len(e.Alternates), lim.MaxAlternates))
	}
	for i, a := range e.Alternates {
		for _, m := range textProblems(a, lim.MaxQuestionChars, false) {
			add("alternates", fmt.Sprintf("alternate %d %s", i+1, m))
		}
	}
	if e.Answer == "" {
		add("answer", "answer is empty")
	}
	for _, m := range textProblems(e.Answer, lim.MaxAnswerChars, true) {
		add("answer", "answer "+m)
	}
	if len(e.Tags) > lim.MaxTags {
		add("tags", fmt.Sprintf("%d tags, at most %d", len(e.Tags), lim.MaxTags))
	}
	for i, t := range e.Tags {
		for _, m := range textProblems(t, lim.MaxTagChars, false) {
			add("tags", fmt.Sprintf("tag %d %s", i+1, m))
		}
	}
	// A time JSON cannot write would make the whole base unstorable.
	if y := e.UpdatedAt.Year(); y < 0 || y > 9999 {
		add("updated_at", fmt.Sprintf("updated_at year %d is outside 0 to 9999", y))
	}
	return errs
}

// normaliseEntry trims e's texts and drops its empty alternates and tags, writing a
// field only when that changes it.
func normaliseEntry(e *Entry) {
	if q := strings.TrimSpace(e.Question); q != e.Question {
		e.Question = q
	}
	a := e.Answer
	if strings.Contains(a, "\r\n") {
		a = strings.ReplaceAll(a, "\r\n", "\n")
	}
	if a = strings.TrimSpace(a); a != e.Answer {
		e.Answer = a
	}
	if l, changed := normaliseList(e.Alternates); changed {
		e.Alternates = l
	}
	if l, changed := normaliseList(e.Tags); changed {
		e.Tags = l
	}
}

// normaliseList is l with its items trimmed and the empty ones dropped: l itself when
// that changes nothing, else a new slice (nil when nothing is left).
func normaliseList(l []string) ([]string, bool) {
	clean := true
	for _, s := range l {
		if s == "" || strings.TrimSpace(s) != s {
			clean = false
			break
		}
	}
	if clean {
		return l, false
	}
	var out []string
	for _, s := range l {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, true
}

// textProblems are what is wrong with s, each a phrase to follow its name: not UTF-8, a
// control character (newlines and tabs are allowed when multiline), or more than max
// characters (when max > 0).
func textProblems(s string, max int, multiline bool) []string {
	var out []string
	if !utf8.ValidString(s) {
		out = append(out, "is not valid UTF-8")
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t'))
	}); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		out = append(out, fmt.Sprintf("holds the control character %U", r))
	}
	// A string of more than 4*max bytes has more than max characters whatever they
	// are; only shorter ones need counting.
	if max > 0 && len(s) > max {
		if len(s) > 4*max {
			out = append(out, fmt.Sprintf("is longer than %d characters", max))
		} else if n := utf8.RuneCountInString(s); n > max {
			out = append(out, fmt.Sprintf("is %d characters, at most %d", n, max))
		}
	}
	return out
}

func isIDRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// quote is s quoted for a message, cut to its first 64 bytes so that one huge value
// does not make a huge error.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return fmt.Sprintf("%q", s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q…", s[:cut])
}

// jsonSize is the length of b as JSON, and whether it is more than max. It first adds
// up the bytes of b's strings, a bound below the JSON's length, stopping as soon as it
// passes max: a base whose YAML aliases repeat one long text many times is refused
// without being written out. Only a base under that bound is encoded, to count exactly.
// The reported length is then a lower bound when over is true.
func jsonSize(b *Base, max int) (n int, over bool) {
	n = len(b.Language)
	for _, g := range b.Synonyms {
		for _, w := range g {
			if n += len(w); n > max {
				return n, true
			}
		}
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		n += len(e.ID) + len(e.Question) + len(e.Answer)
		for _, a := range e.Alternates {
			n += len(a)
		}
		for _, t := range e.Tags {
			n += len(t)
		}
		if n > max {
			return n, true
		}
	}
	var c countWriter
	if err := json.NewEncoder(&c).Encode(b); err != nil {
		// Only a time out of range fails, which ValidateEntry reports: judge by the
		// bound.
		return n, false
	}
	n = c.n - 1 // Encode adds a newline that Marshal does not
	return n, n > max
}

// countWriter counts what is written to it.
type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}
