package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// readBody checks the body's media type and reads the whole body, already capped by
// limit's http.MaxBytesReader.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	return appendBody(nil, r, limit)
}

// appendBody is readBody appending the body to dst, so that a caller may read into a
// buffer it reuses. On an error it returns dst as it was given, or grown.
func appendBody(dst []byte, r *http.Request, limit int64) ([]byte, error) {
	if err := checkContentType(r); err != nil {
		return dst, err
	}
	if n := r.ContentLength; n > 0 && n <= limit {
		dst = slices.Grow(dst, int(n)+bytes.MinRead) // room to see EOF without growing
	}
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, bytes.MinRead)
		}
		n, err := r.Body.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			dst = dst[:start]
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return dst, errTooLarge
			}
			if ctxErr := r.Context().Err(); ctxErr != nil {
				return dst, ctxErr
			}
			return dst, invalid("The request body could not be read.")
		}
	}
}

// checkContentType accepts a JSON body: Content-Type application/json, with no charset
// or charset utf-8, or no Content-Type at all (curl without -H, scripts). Anything else
// is refused, form and text bodies included, so that a browser form on another site
// cannot post to the API.
func checkContentType(r *http.Request) error {
	vs := r.Header.Values("Content-Type")
	if len(vs) == 0 {
		return nil
	}
	if len(vs) > 1 {
		return errUnsupportedMediaType
	}
	if vs[0] == "application/json" { // what clients send: no parse, no allocation
		return nil
	}
	mt, params, err := mime.ParseMediaType(vs[0])
	if err != nil || mt != "application/json" {
		return errUnsupportedMediaType
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return errUnsupportedMediaType
		}
	}
	return nil
}

// unmarshalBody decodes one JSON object into dst. Malformed JSON, trailing data, a value
// of the wrong type, a field dst does not have, or bytes that are not UTF-8 are invalid
// requests: a client that misspells a field learns it at once instead of having it
// silently ignored.
func unmarshalBody(raw []byte, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return invalid("The request body is empty.")
	}
	// encoding/json would quietly replace invalid UTF-8 with U+FFFD.
	if !utf8.Valid(raw) {
		return invalid("The request body is not valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			if te.Field == "" {
				return invalid("The request body must be a JSON object.")
			}
			return invalid(fmt.Sprintf("Field %q has the wrong type.", te.Field))
		}
		if name, ok := unknownField(err); ok {
			if safeFieldName(name) {
				return invalid(fmt.Sprintf("Field %q is not known.", name))
			}
			return invalid("The request body has a field that is not known.")
		}
		return invalid("The request body is not valid JSON.")
	}
	// Anything but white space after the object is trailing data.
	if _, err := dec.Token(); err != io.EOF {
		return invalid("The request body is not valid JSON.")
	}
	return nil
}

// unknownField returns the field name of encoding/json's error for a field the target
// does not have. encoding/json has no error type for it, only this text.
func unknownField(err error) (string, bool) {
	const prefix = "json: unknown field "
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return "", false
	}
	name, err := strconv.Unquote(msg[len(prefix):])
	return name, err == nil
}

// safeFieldName reports whether a field name taken from the request may be echoed in
// the error message: short, and letters, digits, '_' or '-' only.
func safeFieldName(s string) bool { return plainToken(s, 64) }

// checkText refuses text that is not valid UTF-8, holds control characters other than
// newline, tab and carriage return, is blank, or is longer than maxRunes. field names the
// text in the message shown to the client.
func checkText(field, s string, maxRunes int, allowNewlines bool) error {
	if !utf8.ValidString(s) {
		return invalid(field + " must be valid UTF-8.")
	}
	n := 0
	blank := true
	for _, r := range s {
		n++
		switch {
		case r == '\n' || r == '\t' || r == '\r':
			if !allowNewlines {
				return invalid(field + " must not contain control characters.")
			}
		case unicode.IsControl(r):
			return invalid(field + " must not contain control characters.")
		case !unicode.IsSpace(r):
			blank = false
		}
	}
	if blank {
		return invalid(field + " must not be empty.")
	}
	if n > maxRunes {
		return invalid(fmt.Sprintf("%s must be at most %d characters.", field, maxRunes))
	}
	return nil
}

// validClientMsgID accepts 1 to 64 printable ASCII characters.
func validClientMsgID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// scanChatBody reads a chat request body of the usual shape without reflection: one
// JSON object whose members are "message", "session_id" and "client_msg_id", each at
// most once, each a string. It reports false for anything else (another member, a
// repeated one, a value that is not a string, a surrogate \u escape, invalid UTF-8,
// malformed JSON), and decodeChatBody then decodes the body or refuses it with its
// message. When it reports true, its fields are what decodeChatBody would return.
func scanChatBody(raw []byte) (f chatFields, ok bool) {
	i := skipJSONSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return chatFields{}, false
	}
	i = skipJSONSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return f, skipJSONSpace(raw, i+1) == len(raw)
	}
	for {
		key, next, ok := scanJSONKey(raw, i)
		if !ok {
			return chatFields{}, false
		}
		i = skipJSONSpace(raw, next)
		if i == len(raw) || raw[i] != ':' {
			return chatFields{}, false
		}
		v, next, ok := scanJSONString(raw, skipJSONSpace(raw, i+1))
		if !ok {
			return chatFields{}, false
		}
		switch string(key) {
		case "message":
			if f.hasMessage {
				return chatFields{}, false
			}
			f.message, f.hasMessage = v, true
		case "session_id":
			if f.hasSessionID {
				return chatFields{}, false
			}
			f.sessionID, f.hasSessionID = v, true
		case "client_msg_id":
			if f.hasClientMsgID {
				return chatFields{}, false
			}
			f.clientMsgID, f.hasClientMsgID = v, true
		default:
			return chatFields{}, false
		}
		i = skipJSONSpace(raw, next)
		if i == len(raw) {
			return chatFields{}, false
		}
		switch raw[i] {
		case ',':
			i = skipJSONSpace(raw, i+1)
		case '}':
			return f, skipJSONSpace(raw, i+1) == len(raw)
		default:
			return chatFields{}, false
		}
	}
}

// skipJSONSpace returns the index of the first byte from i on that is not JSON white
// space, or len(raw).
func skipJSONSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '\t') {
		i++
	}
	return i
}

// scanJSONKey reads the member name that starts at raw[i], when it is printable ASCII
// without escapes, and returns it and the index after its closing quote.
func scanJSONKey(raw []byte, i int) (key []byte, next int, ok bool) {
	if i == len(raw) || raw[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(raw); j++ {
		switch c := raw[j]; {
		case c == '"':
			return raw[i+1 : j], j + 1, true
		case c < 0x20 || c >= utf8.RuneSelf || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// scanJSONString reads the JSON string that starts at raw[i] and returns its value and
// the index after its closing quote. It reports false for anything but a string, for
// invalid UTF-8, and for a \u escape of a UTF-16 surrogate, which encoding/json pairs
// or replaces.
func scanJSONString(raw []byte, i int) (s string, next int, ok bool) {
	if i == len(raw) || raw[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	j := plainJSONRun(raw, start)
	if j < len(raw) && raw[j] == '"' { // no escapes: the common case
		if !utf8.Valid(raw[start:j]) {
			return "", 0, false
		}
		return string(raw[start:j]), j + 1, true
	}
	buf := make([]byte, 0, j-start+64)
	buf = append(buf, raw[start:j]...)
	for j < len(raw) && raw[j] == '\\' && j+1 < len(raw) {
		switch e := raw[j+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if j+6 > len(raw) {
				return "", 0, false
			}
			r := hex4(raw[j+2 : j+6])
			if r < 0 || utf16.IsSurrogate(r) {
				return "", 0, false
			}
			buf = utf8.AppendRune(buf, r)
			j += 4
		default:
			return "", 0, false
		}
		j += 2
		k := plainJSONRun(raw, j)
		buf = append(buf, raw[j:k]...)
		j = k
	}
	if j == len(raw) || raw[j] != '"' || !utf8.Valid(raw[start:j]) {
		return "", 0, false // unterminated, a control character, or invalid UTF-8
	}
	return string(buf), j + 1, true
}

// plainJSONRun returns the index of the first byte from i on that ends a JSON string
// or needs decoding: a quote, a backslash or a control character; or len(raw).
func plainJSONRun(raw []byte, i int) int {
	for i < len(raw) && raw[i] != '"' && raw[i] != '\\' && raw[i] >= 0x20 {
		i++
	}
	return i
}

// hex4 returns the value of four hexadecimal digits, or -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
