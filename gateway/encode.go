package gateway

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/dialogue"
)

// The chat reply and the error body are written by hand rather than by json.Marshal:
// they are written on every turn, and reflection was a good part of the cost of the
// HTTP edge. The output is byte for byte what json.Marshal writes for replyJSON and
// errorBody (encode_test.go compares the two, and fuzzes the comparison); any other
// body still goes through writeJSON.

// Header values shared by every JSON response. net/http copies a response's header map
// when the header is written and never modifies a value slice in place, so one slice
// serves every response; the capacity of 1 makes an append copy it.
var (
	contentTypeJSON = []string{"application/json; charset=utf-8"}[:1:1]
	noSniff         = []string{"nosniff"}[:1:1]
)

// maxPooledBody is the largest buffer put back into bodyBuffers: a rare long body does
// not keep its buffer alive for every later request.
const maxPooledBody = 64 << 10

// bodyBuffers holds the buffers that request bodies are read into and response bodies
// are written from.
var bodyBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 2048)
	return &b
}}

func getBodyBuffer() *[]byte { return bodyBuffers.Get().(*[]byte) }

// putBodyBuffer returns a buffer to the pool; b is what it now holds, grown or not.
func putBodyBuffer(p *[]byte, b []byte) {
	if cap(b) > maxPooledBody {
		return
	}
	*p = b[:0]
	bodyBuffers.Put(p)
}

// writeBody answers with body, JSON ending in a newline, and the given status: the
// headers and bytes writeJSON writes.
func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeReplyJSON answers with status and the JSON of toReplyJSON(reply).
func writeReplyJSON(w http.ResponseWriter, status int, reply dialogue.Reply) {
	p := getBodyBuffer()
	b, ok := appendReplyJSON(*p, reply)
	if !ok {
		// A confidence json.Marshal refuses (NaN, ±Inf): its error and its answer.
		writeJSON(w, status, toReplyJSON(reply))
		putBodyBuffer(p, b)
		return
	}
	b = append(b, '\n')
	writeBody(w, status, b)
	putBodyBuffer(p, b)
}

// writeErrorJSON answers with status and the JSON of errorBody{Error: d}.
func writeErrorJSON(w http.ResponseWriter, status int, d errorDetail) {
	p := getBodyBuffer()
	b := appendErrorJSON(*p, d)
	b = append(b, '\n')
	writeBody(w, status, b)
	putBodyBuffer(p, b)
}

// appendReplyJSON appends what json.Marshal(toReplyJSON(r)) returns. It reports false,
// with dst unchanged in length, when json.Marshal would fail: a confidence or latency
// that is NaN or infinite.
func appendReplyJSON(dst []byte, r dialogue.Reply) ([]byte, bool) {
	n := len(dst)
	dst = append(dst, `{"session_id":`...)
	dst = appendJSONString(dst, r.SessionID)
	dst = append(dst, `,"turn_id":`...)
	dst = appendJSONString(dst, r.TurnID)
	dst = append(dst, `,"answer":`...)
	dst = appendJSONString(dst, r.Answer)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, r.Source)
	dst = append(dst, `,"confidence":`...)
	dst, ok := appendJSONFloat(dst, r.Confidence)
	if !ok {
		return dst[:n], false
	}
	dst = append(dst, `,"citations":`...)
	dst = appendCitationsJSON(dst, r.Citations)
	dst = append(dst, `,"suggestions":`...)
	dst = appendCitationsJSON(dst, r.Suggestions)
	if r.Incomplete {
		dst = append(dst, `,"incomplete":true`...)
	}
	dst = append(dst, `,"latency_ms":`...)
	dst, ok = appendJSONFloat(dst, latencyMS(r.Latency))
	if !ok {
		return dst[:n], false
	}
	return append(dst, '}'), true
}

// appendCitationsJSON appends cs as json.Marshal writes toCitationsJSON(cs): [] when
// there are none.
func appendCitationsJSON(dst []byte, cs []dialogue.Citation) []byte {
	dst = append(dst, '[')
	for i, c := range cs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"id":`...)
		dst = appendJSONString(dst, c.ID)
		dst = append(dst, `,"question":`...)
		dst = appendJSONString(dst, c.Question)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendErrorJSON appends what json.Marshal(errorBody{Error: d}) returns.
func appendErrorJSON(dst []byte, d errorDetail) []byte {
	dst = append(dst, `{"error":{"code":`...)
	dst = appendJSONString(dst, d.Code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, d.Message)
	dst = append(dst, `,"request_id":`...)
	dst = appendJSONString(dst, d.RequestID)
	return append(dst, "}}"...)
}

// jsonHex are the digits of encoding/json's \u escapes: lower case.
const jsonHex = "0123456789abcdef"

// appendJSONString appends s as a JSON string exactly as json.Marshal writes it: <, >
// and & escaped for HTML, U+2028 and U+2029 escaped for JavaScript, each byte of
// invalid UTF-8 replaced by \ufffd, control characters as \b, \f, \n, \r, \t or \u00XX.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe(b) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default: // other control characters, and <, > and &
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[b>>4], jsonHex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// htmlSafe reports whether an ASCII byte goes into a JSON string as it is: printable,
// and not ", \, <, > or &.
func htmlSafe(b byte) bool {
	return b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
}

// appendJSONFloat appends f as json.Marshal writes a float64: like strconv's shortest
// 'f' format, with exponents below 1e-6 and from 1e21 on, and no leading zero in a
// negative exponent. It reports false for NaN and ±Inf, which json.Marshal refuses.
func appendJSONFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}
