package openai

import (
	"encoding/json"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The chat request is written, and answers and stream events are read, by
// github.com/go-json-experiment/json (the implementation behind encoding/json/v2)
// rather than by encoding/json: they are on every model call, and reflection was most
// of what the client spent on one. The request is byte for byte what json.Marshal
// writes for chatRequest, and a response reads as json.Unmarshal reads it: what the
// library refuses in its strict mode goes to encoding/json (openai_codec_test.go
// compares both ways, and fuzzes the comparison).

// maxPooledBuffer is the largest buffer put back into codecBuffers: a rare long prompt
// or answer does not keep its buffer alive for every later call.
const maxPooledBuffer = 64 << 10

// codecBuffers holds the buffers that requests are encoded into and answers read into.
var codecBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// streamTexts holds the buffers a streamed answer's text is kept in. A stream keeps its
// buffer for as long as it is open, and an answer is usually shorter than a request,
// so these start small and grow to the answers they hold.
var streamTexts = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

func getCodecBuffer() *[]byte { return codecBuffers.Get().(*[]byte) }

// putCodecBuffer returns a buffer to codecBuffers; b is what it now holds, grown or not.
func putCodecBuffer(p *[]byte, b []byte) { putBuffer(&codecBuffers, p, b) }

// putBuffer returns a buffer to pool; b is what it now holds, grown or not.
func putBuffer(pool *sync.Pool, p *[]byte, b []byte) {
	if cap(b) > maxPooledBuffer {
		return
	}
	*p = b[:0]
	pool.Put(p)
}

// writeOptions make the library write what json.Marshal writes: <, >, & and U+2028,
// U+2029 as \u escapes, nil messages as null. It refuses invalid UTF-8, which
// json.Marshal replaces: such a request goes to json.Marshal.
var writeOptions = jsonv2.JoinOptions(jsontext.EscapeForHTML(true), jsontext.EscapeForJS(true),
	jsonv2.FormatNilSliceAsNull(true))

// encodeChatRequest returns what json.Marshal(r) returns.
func encodeChatRequest(r *chatRequest) ([]byte, error) {
	if b, err := jsonv2.Marshal(r, writeOptions); err == nil {
		return b, nil
	}
	return json.Marshal(r)
}

// chatReply is what a caller reads of a chatResponse: the content of the first
// choice's message (or delta), and the error object, if any.
type chatReply struct {
	choices  int
	content  []byte // the first choice's content
	hasError bool
	errMsg   string
}

// replyPart selects which object of a choice a chatReply's content comes from.
type replyPart int

const (
	partMessage replyPart = iota // a complete answer's
	partDelta                    // a stream event's
)

// chatDecoder reads chat responses. The zero value is ready to use.
type chatDecoder struct{}

// readOptions make the library match member names as encoding/json does, ignoring
// their case.
var readOptions = jsonv2.MatchCaseInsensitiveNames(true)

// decode reads data as json.Unmarshal reads it into a chatResponse: the same content,
// the same error object, and an error when, and only when, json.Unmarshal returns one
// (its error). The library reads it in its strict mode; what that refuses (a member
// given twice, invalid UTF-8, malformed JSON) is read by json.Unmarshal.
func (chatDecoder) decode(data []byte, part replyPart) (chatReply, error) {
	var resp chatResponse
	if jsonv2.Unmarshal(data, &resp, readOptions) != nil {
		resp = chatResponse{}
		if err := json.Unmarshal(data, &resp); err != nil {
			return chatReply{}, err
		}
	}
	reply := chatReply{choices: len(resp.Choices)}
	if len(resp.Choices) > 0 {
		c := resp.Choices[0].Message.Content
		if part == partDelta {
			c = resp.Choices[0].Delta.Content
		}
		reply.content = []byte(c)
	}
	if resp.Error != nil {
		reply.hasError, reply.errMsg = true, resp.Error.Message
	}
	return reply, nil
}
