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
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
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
	return readRawBody(dst, r)
}

// readRawBody appends the whole body to dst, whatever its media type; limit's
// http.MaxBytesReader caps it, and has refused a larger Content-Length.
func readRawBody(dst []byte, r *http.Request) ([]byte, error) {
	if n := r.ContentLength; n > 0 && cap(dst)-len(dst) < int(n) {
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

// readOptions make the library refuse a member chatRequest does not have, which
// encoding/json might match case-insensitively or refuse with its own message.
var readOptions = jsonv2.RejectUnknownMembers(true)

// scanChatBody reads a chat request body of the usual shape with the library in its
// strict mode: one JSON object whose members are "message", "session_id" and
// "client_msg_id", each at most once, each a string or null. It reports false for
// anything else (another member, a repeated one, invalid UTF-8 or a lone surrogate,
// malformed JSON), and decodeChatBody then decodes the body or refuses it with its
// message. When it reports true, its fields are what decodeChatBody would return.
func scanChatBody(raw []byte) (f chatFields, ok bool) {
	var req chatRequest
	if jsonv2.Unmarshal(raw, &req, readOptions) != nil {
		return chatFields{}, false
	}
	if req.Message != nil {
		f.message, f.hasMessage = *req.Message, true
	}
	if req.SessionID != nil {
		f.sessionID, f.hasSessionID = *req.SessionID, true
	}
	if req.ClientMsgID != nil {
		f.clientMsgID, f.hasClientMsgID = *req.ClientMsgID, true
	}
	return f, true
}
