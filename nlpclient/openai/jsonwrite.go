package openai

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// The JSON writer of the model request, the one JSON writer of Fengda's own: the
// stored turns and the HTTP edge use go-json-experiment, and this codec stays by hand
// because a streamed turn decodes an event a token (bench/README.md, "JSON").
// openai_codec_test.go checks it against encoding/json.

// jsonSafe reports, for each ASCII byte, whether encoding/json writes it in a string as
// itself. It leaves out control characters, the quote and the backslash, and the HTML
// characters <, > and &, which json.Marshal escapes.
var jsonSafe = func() (ok [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		ok[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return ok
}()

const jsonHexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string escaped as json.Marshal escapes it: HTML
// characters and U+2028, U+2029 as \u escapes, control characters as \b, \f, \n, \r, \t
// or \u00XX, and each byte that is not valid UTF-8 as \ufffd.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !jsonSafe[c] {
				b = append(b, s[start:i]...)
				b = appendJSONEscape(b, c)
				start = i + 1
			}
			i++
			continue
		}
		if plainCJK3(s, i) {
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainCJK3 reports whether s[i:] starts with a valid three-byte UTF-8 sequence whose
// lead byte is E3–EC, EE or EF: the common case of CJK text. Such a sequence is valid
// whatever its two continuation bytes (RFC 3629, section 4), and U+2028 and U+2029
// (lead byte E2) are not among them, so it is copied as it is.
func plainCJK3(s string, i int) bool {
	if len(s)-i < 3 {
		return false
	}
	c := s[i]
	return c >= 0xE3 && c != 0xED && s[i+1]&0xC0 == 0x80 && s[i+2]&0xC0 == 0x80 && c <= 0xEF
}

// appendJSONEscape appends the escape json.Marshal writes for the ASCII byte c.
func appendJSONEscape(b []byte, c byte) []byte {
	switch c {
	case '\\', '"':
		return append(b, '\\', c)
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xF])
}

// appendJSONFloat appends f as json.Marshal writes a float64: strconv's shortest 'f' form,
// or its 'e' form below 1e-6 and from 1e21, without a leading zero in the exponent
// (1e-7, not 1e-07). It reports false, appending nothing, for NaN and ±Inf, which
// json.Marshal refuses.
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-07 becomes e-7.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}
