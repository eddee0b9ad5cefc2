package session

import (
	"encoding/json"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// A stored turn is written and read by github.com/go-json-experiment/json (the
// implementation behind encoding/json/v2) in its strict mode, with the escaping of
// encoding/json. What that mode refuses (a NaN confidence, invalid UTF-8, a key in
// another case, a key given twice, anything malformed) goes to encoding/json, whose
// result and error it is, so that what is stored and read back stays what
// encoding/json stores and reads back. turncodec_test.go compares the two, and fuzzes
// the comparison.

// writeOptions make the library escape as json.Marshal does: <, >, & and U+2028,
// U+2029 as \u escapes.
var writeOptions = jsonv2.JoinOptions(jsontext.EscapeForHTML(true), jsontext.EscapeForJS(true))

// readOptions make the library refuse a key Turn does not spell exactly, which
// encoding/json might match case-insensitively.
var readOptions = jsonv2.RejectUnknownMembers(true)

// encodeTurn returns what json.Marshal(t) returns.
func encodeTurn(t *Turn) ([]byte, error) {
	if b, err := jsonv2.Marshal(t, writeOptions); err == nil {
		return b, nil
	}
	return json.Marshal(t)
}

// decodeTurnString sets *t to the turn s encodes, a text held as a string such as a
// Redis reply: the value and error json.Unmarshal([]byte(s), &Turn{}) gives. Unlike
// json.Unmarshal it first resets *t, so nothing of a previous value is left. The one
// difference: a time whose text has an escape in it (never written by encodeTurn) is
// read as the time it spells, where encoding/json refuses it.
func decodeTurnString(s string, t *Turn) error {
	data := []byte(s)
	var fresh Turn
	if jsonv2.Unmarshal(data, &fresh, readOptions) == nil {
		*t = fresh
		return nil
	}
	fresh = Turn{}
	err := json.Unmarshal(data, &fresh)
	*t = fresh
	return err
}
