package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/fengda-ai/fengda/dialogue"
)

// The chat reply and the error body, written on every turn, are written by
// github.com/go-json-experiment/json (the implementation behind encoding/json/v2)
// rather than by encoding/json, whose reflection was a good part of the cost of the
// HTTP edge. The bytes are what json.Marshal writes for replyJSON and errorBody
// (encode_test.go compares the two, and fuzzes the comparison): what the library
// refuses (text that is not valid UTF-8, which json.Marshal replaces, or a NaN
// confidence, which json.Marshal refuses too) is written by writeJSON.

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

// writeOptions make the library escape as json.Marshal does: <, >, & and U+2028,
// U+2029 as \u escapes.
var writeOptions = jsonv2.JoinOptions(jsontext.EscapeForHTML(true), jsontext.EscapeForJS(true))

// writeReplyJSON answers with status and the JSON of toReplyJSON(reply).
func writeReplyJSON(w http.ResponseWriter, status int, reply dialogue.Reply) {
	body := toReplyJSON(reply)
	writeJSONv2(w, status, &body)
}

// writeErrorJSON answers with status and the JSON of errorBody{Error: d}.
func writeErrorJSON(w http.ResponseWriter, status int, d errorDetail) {
	writeJSONv2(w, status, &errorBody{Error: d})
}

// writeJSONv2 answers as writeJSON(w, status, v) does, writing v with the library
// into a pooled buffer. v is a pointer, which the library need not copy.
func writeJSONv2(w http.ResponseWriter, status int, v any) {
	p := getBodyBuffer()
	buf := bytes.NewBuffer(*p)
	if err := jsonv2.MarshalWrite(buf, v, writeOptions); err != nil {
		writeJSON(w, status, v) // json.Marshal's answer, whatever it is
	} else {
		buf.WriteByte('\n')
		writeBody(w, status, buf.Bytes())
	}
	putBodyBuffer(p, buf.Bytes())
}
