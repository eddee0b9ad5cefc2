package gateway

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/internal/jsonw"
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
	dst = jsonw.AppendString(dst, r.SessionID)
	dst = append(dst, `,"turn_id":`...)
	dst = jsonw.AppendString(dst, r.TurnID)
	dst = append(dst, `,"answer":`...)
	dst = jsonw.AppendString(dst, r.Answer)
	dst = append(dst, `,"source":`...)
	dst = jsonw.AppendString(dst, r.Source)
	dst = append(dst, `,"confidence":`...)
	dst, ok := jsonw.AppendFloat(dst, r.Confidence)
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
	dst, ok = jsonw.AppendFloat(dst, latencyMS(r.Latency))
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
		dst = jsonw.AppendString(dst, c.ID)
		dst = append(dst, `,"question":`...)
		dst = jsonw.AppendString(dst, c.Question)
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendErrorJSON appends what json.Marshal(errorBody{Error: d}) returns.
func appendErrorJSON(dst []byte, d errorDetail) []byte {
	dst = append(dst, `{"error":{"code":`...)
	dst = jsonw.AppendString(dst, d.Code)
	dst = append(dst, `,"message":`...)
	dst = jsonw.AppendString(dst, d.Message)
	dst = append(dst, `,"request_id":`...)
	dst = jsonw.AppendString(dst, d.RequestID)
	return append(dst, "}}"...)
}
