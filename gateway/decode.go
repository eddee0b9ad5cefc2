package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// readBody reads the whole body, already capped by limit's http.MaxBytesReader.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead) // one allocation when the length is known
	}
	_, err := buf.ReadFrom(r.Body)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		if ctxErr := r.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, invalid("The request body could not be read.")
	}
	return buf.Bytes(), nil
}

// unmarshalBody decodes a JSON object into dst. Malformed JSON, trailing data, a value of
// the wrong type or bytes that are not UTF-8 are invalid requests; unknown fields are
// ignored, so that clients may send more than this version reads.
func unmarshalBody(raw []byte, dst any) error {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return invalid("The request body is empty.")
	}
	// encoding/json would quietly replace invalid UTF-8 with U+FFFD.
	if !utf8.Valid(raw) {
		return invalid("The request body is not valid UTF-8.")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			if te.Field == "" {
				return invalid("The request body must be a JSON object.")
			}
			return invalid(fmt.Sprintf("Field %q has the wrong type.", te.Field))
		}
		return invalid("The request body is not valid JSON.")
	}
	return nil
}

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
