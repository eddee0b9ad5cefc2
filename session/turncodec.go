package session

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/internal/jsonw"
)

// This file reads and writes the JSON form of a Turn without reflection. Stored turns
// are decoded on every chat turn, and encoding/json spends most of that time finding
// its way through the struct. The codec must never change what is stored or what is
// read back: encoding gives the bytes json.Marshal gives, and decoding gives the value
// (and error) json.Unmarshal gives. Decoding takes a fast path only for input whose
// every detail it understands, and hands anything else to encoding/json.

// turnSizeHint returns a capacity that holds t's encoding unless its strings need
// much escaping.
func turnSizeHint(t *Turn) int {
	n := 192 + len(t.ID) + len(t.ClientMsgID) + len(t.User) + len(t.Answer) + len(t.Source)
	for _, cs := range [2][]Citation{t.Citations, t.Suggestions} {
		for i := range cs {
			n += 24 + len(cs[i].ID) + len(cs[i].Question)
		}
	}
	return n + n/8
}

// encodeTurn appends the JSON encoding of t to dst. The result and the error are
// those of json.Marshal(t): a turn it refuses (a NaN or infinite Confidence, a time
// RFC 3339 cannot hold) is handed to it for its error.
func encodeTurn(dst []byte, t *Turn) ([]byte, error) {
	if b := appendTurnJSON(dst, t); b != nil {
		return b, nil
	}
	b, err := json.Marshal(*t) // a copy, so that t does not escape on the fast path
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// appendTurnJSON appends the JSON encoding of t to dst, byte for byte what
// json.Marshal(t) writes. For a turn json.Marshal refuses it returns nil; encodeTurn
// then asks json.Marshal for the error.
func appendTurnJSON(dst []byte, t *Turn) []byte {
	if math.IsNaN(t.Confidence) || math.IsInf(t.Confidence, 0) {
		return nil
	}
	b := append(dst, `{"id":`...)
	b = jsonw.AppendString(b, t.ID)
	if t.ClientMsgID != "" {
		b = append(b, `,"client_msg_id":`...)
		b = jsonw.AppendString(b, t.ClientMsgID)
	}
	b = append(b, `,"user":`...)
	b = jsonw.AppendString(b, t.User)
	b = append(b, `,"answer":`...)
	b = jsonw.AppendString(b, t.Answer)
	b = append(b, `,"source":`...)
	b = jsonw.AppendString(b, t.Source)
	b = append(b, `,"confidence":`...)
	b, _ = jsonw.AppendFloat(b, t.Confidence) // NaN and ±Inf were refused above
	if len(t.Citations) > 0 {
		b = append(b, `,"citations":`...)
		b = appendCitations(b, t.Citations)
	}
	if len(t.Suggestions) > 0 {
		b = append(b, `,"suggestions":`...)
		b = appendCitations(b, t.Suggestions)
	}
	if t.Incomplete {
		b = append(b, `,"incomplete":true`...)
	}
	var ok bool
	b = append(b, `,"at":`...)
	if b, ok = appendJSONTime(b, t.At); !ok {
		return nil
	}
	b = append(b, `,"answered_at":`...)
	if b, ok = appendJSONTime(b, t.AnsweredAt); !ok {
		return nil
	}
	return append(b, '}')
}

func appendCitations(b []byte, cs []Citation) []byte {
	b = append(b, '[')
	for i := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = jsonw.AppendString(b, cs[i].ID)
		b = append(b, `,"question":`...)
		b = jsonw.AppendString(b, cs[i].Question)
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONTime appends t quoted as time.Time.MarshalJSON writes it. It reports false,
// as MarshalJSON fails, when the year is outside [0,9999] or the zone's offset is a
// day or more.
func appendJSONTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	n0 := len(b)
	b = t.AppendFormat(b, time.RFC3339Nano)
	// The checks time.Time.MarshalJSON makes on the same text.
	if b[n0+len("9999")] != '-' {
		return b, false
	}
	if n := len(b); b[n-1] != 'Z' {
		c := b[n-len("Z07:00")]
		hour := 10*(b[n-len("07:00")]-'0') + (b[n-len("7:00")] - '0')
		if '0' <= c && c <= '9' || hour >= 24 {
			return b, false
		}
	}
	return append(b, '"'), true
}

// decodeTurnString sets *t to the turn s encodes, a text held as a string such as a
// Redis reply: the value and error json.Unmarshal([]byte(s), &Turn{}) gives, whatever s
// holds. Unlike json.Unmarshal it first resets *t, so nothing of a previous value is
// left. The strings of *t share s's memory.
func decodeTurnString(s string, t *Turn) error {
	*t = Turn{}
	if decodeTurnFast(s, t) {
		return nil
	}
	return decodeTurnSlow([]byte(s), t)
}

// decodeTurnSlow decodes data with encoding/json into a fresh Turn, so the fast path's
// partial work is discarded and t does not escape when the fast path succeeds.
func decodeTurnSlow(data []byte, t *Turn) error {
	var fresh Turn
	err := json.Unmarshal(data, &fresh)
	*t = fresh
	return err
}

// decodeTurnFast decodes s into the zero turn *t and reports whether it could. It
// accepts one JSON object of Turn's keys, each spelled exactly as the struct tags say
// and given at most once, in any order, with values of the field's own JSON type; it
// refuses anything else, valid or not (null, an unknown or differently cased key, a
// duplicate key, trailing data, a syntax error), leaving the answer to encoding/json.
// Everything it accepts is valid JSON that json.Unmarshal decodes to the same turn.
func decodeTurnFast(s string, t *Turn) bool {
	d := jsonReader{s: s}
	d.space()
	if !d.consume('{') {
		return false
	}
	d.space()
	if d.consume('}') {
		return d.end()
	}
	var seen uint16
	for {
		key, ok := d.key()
		if !ok {
			return false
		}
		var bit uint16
		switch key {
		case "id":
			bit = 1 << 0
			t.ID, ok = d.str()
		case "client_msg_id":
			bit = 1 << 1
			t.ClientMsgID, ok = d.str()
		case "user":
			bit = 1 << 2
			t.User, ok = d.str()
		case "answer":
			bit = 1 << 3
			t.Answer, ok = d.str()
		case "source":
			bit = 1 << 4
			t.Source, ok = d.str()
		case "confidence":
			bit = 1 << 5
			t.Confidence, ok = d.float()
		case "citations":
			bit = 1 << 6
			t.Citations, ok = d.citations()
		case "suggestions":
			bit = 1 << 7
			t.Suggestions, ok = d.citations()
		case "incomplete":
			bit = 1 << 8
			t.Incomplete, ok = d.boolean()
		case "at":
			bit = 1 << 9
			ok = d.time(&t.At)
		case "answered_at":
			bit = 1 << 10
			ok = d.time(&t.AnsweredAt)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		d.space()
		if d.consume(',') {
			d.space()
			continue
		}
		return d.consume('}') && d.end()
	}
}

// jsonReader reads JSON values from s, strictly: each method accepts only what the
// JSON grammar allows, and reports false for anything else.
type jsonReader struct {
	s string
	i int // the next byte to read
}

// space skips JSON whitespace.
func (d *jsonReader) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume reads c if it is next.
func (d *jsonReader) consume(c byte) bool {
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether nothing but whitespace is left.
func (d *jsonReader) end() bool {
	d.space()
	return d.i == len(d.s)
}

// key reads an object key and the colon after it, returning the key's raw text. A key
// with an escape in it comes back with its backslash, so it never equals a plain name:
// the caller refuses it as unknown.
func (d *jsonReader) key() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	j := strings.IndexByte(d.s[d.i:], '"')
	if j < 0 {
		return "", false
	}
	key := d.s[d.i : d.i+j]
	d.i += j + 1
	d.space()
	if !d.consume(':') {
		return "", false
	}
	d.space()
	return key, true
}

// str reads a string and returns it unescaped as json.Unmarshal unescapes it. A string
// with no escapes and only valid UTF-8 is returned as a slice of d.s.
func (d *jsonReader) str() (string, bool) {
	if !d.consume('"') {
		return "", false
	}
	s := d.s
	start := d.i
	for i := start; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			d.i = i + 1
			return s[start:i], true
		case c == '\\' || c < ' ':
			return d.unescape(start, i)
		case c < utf8.RuneSelf:
			i++
		case plain3(s, i):
			i += 3
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return d.unescape(start, i)
			}
			i += size
		}
	}
	return "", false
}

// unescape finishes reading the string that started at start, whose bytes up to i
// need no change. Like encoding/json, it replaces each byte that is not valid UTF-8,
// and each \u escape of a surrogate that is not half of a valid pair, by U+FFFD.
func (d *jsonReader) unescape(start, i int) (string, bool) {
	s := d.s
	// The unescaped string is no longer than the escaped one, bar bytes that are not
	// valid UTF-8, which grow to three: size the builder to the raw text.
	end := i
	for end < len(s) && s[end] != '"' {
		if s[end] == '\\' {
			end++
		}
		end++
	}
	var b strings.Builder
	b.Grow(min(end, len(s)) - start)
	b.WriteString(s[start:i])
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			d.i = i + 1
			return b.String(), true
		case c == '\\':
			if i+1 >= len(s) {
				return "", false
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r := hex4(s, i)
				if r < 0 {
					return "", false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(s, i)); dec != utf8.RuneError {
						b.WriteRune(dec)
						i += 6
						continue
					}
					r = utf8.RuneError
				}
				b.WriteRune(r)
				continue
			default:
				return "", false
			}
			i += 2
		case c < ' ':
			return "", false
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteString("\uFFFD")
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
		}
	}
	return "", false
}

// hex4 returns the code unit of the \uXXXX escape at s[i:], or -1 if there is none.
func hex4(s string, i int) rune {
	if len(s)-i < 6 || s[i] != '\\' || s[i+1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range []byte(s[i+2 : i+6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// float reads a number as json.Unmarshal reads one into a float64: checked against
// the JSON grammar, then parsed by strconv.ParseFloat, whose error (a number out of
// range) json.Unmarshal also reports.
func (d *jsonReader) float() (float64, bool) {
	s, i := d.s, d.i
	digits := func() bool {
		n := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return 0, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s[d.i:i], 64)
	if err != nil {
		return 0, false
	}
	d.i = i
	return f, true
}

// boolean reads true or false.
func (d *jsonReader) boolean() (bool, bool) {
	switch {
	case strings.HasPrefix(d.s[d.i:], "true"):
		d.i += len("true")
		return true, true
	case strings.HasPrefix(d.s[d.i:], "false"):
		d.i += len("false")
		return false, true
	}
	return false, false
}

// time reads a string and sets *t from it as json.Unmarshal does: by handing the
// string's raw text, quotes included, to time.Time.UnmarshalJSON.
func (d *jsonReader) time(t *time.Time) bool {
	start := d.i
	if _, ok := d.str(); !ok {
		return false
	}
	var buf [64]byte
	return t.UnmarshalJSON(append(buf[:0], d.s[start:d.i]...)) == nil
}

// citations reads an array of citations. An empty array gives an empty slice, not
// nil, as json.Unmarshal gives.
func (d *jsonReader) citations() ([]Citation, bool) {
	if !d.consume('[') {
		return nil, false
	}
	d.space()
	if d.consume(']') {
		return []Citation{}, true
	}
	var cs []Citation
	for {
		var c Citation
		if !d.citation(&c) {
			return nil, false
		}
		cs = append(cs, c)
		d.space()
		if d.consume(',') {
			d.space()
			continue
		}
		if d.consume(']') {
			return cs, true
		}
		return nil, false
	}
}

// citation reads one citation object into the zero *c, refusing unknown and
// repeated keys as decodeTurnFast does.
func (d *jsonReader) citation(c *Citation) bool {
	if !d.consume('{') {
		return false
	}
	d.space()
	if d.consume('}') {
		return true
	}
	var seenID, seenQuestion bool
	for {
		key, ok := d.key()
		if !ok {
			return false
		}
		switch {
		case key == "id" && !seenID:
			seenID = true
			c.ID, ok = d.str()
		case key == "question" && !seenQuestion:
			seenQuestion = true
			c.Question, ok = d.str()
		default:
			return false
		}
		if !ok {
			return false
		}
		d.space()
		if d.consume(',') {
			d.space()
			continue
		}
		return d.consume('}')
	}
}

// plain3 reports whether s[i:] starts with a valid three-byte UTF-8 sequence whose
// lead byte is E3–EC, EE or EF: the common case of CJK text, valid whatever its two
// continuation bytes (RFC 3629, section 4).
func plain3(s string, i int) bool {
	if len(s)-i < 3 {
		return false
	}
	c := s[i]
	return c >= 0xE3 && c != 0xED && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 && c <= 0xEF
}
