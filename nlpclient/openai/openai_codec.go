package openai

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// The chat request is written, and the usual answers and stream events are read, by
// hand rather than by encoding/json: they are on every model call, and reflection was
// most of what the client spent on one. The request is byte for byte what json.Marshal
// writes for chatRequest; a response is read by hand only when it is of a shape whose
// result is plainly the one json.Unmarshal gives, and by json.Unmarshal otherwise
// (openai_codec_test.go compares both ways, and fuzzes the comparison).

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

// encodeChatRequest returns what json.Marshal(r) returns.
func encodeChatRequest(r *chatRequest) ([]byte, error) {
	p := getCodecBuffer()
	b, ok := appendChatRequest(*p, r)
	if !ok {
		putCodecBuffer(p, b)
		return json.Marshal(r) // its error for a temperature it refuses
	}
	// The body outlives the call: a transport may still read it after the response
	// came, so it is a copy of its own rather than the pooled buffer.
	body := make([]byte, len(b))
	copy(body, b)
	putCodecBuffer(p, b)
	return body, nil
}

// appendChatRequest appends what json.Marshal(r) returns. It reports false, with dst
// unchanged in length, when json.Marshal would fail: a temperature that is NaN or
// infinite.
func appendChatRequest(dst []byte, r *chatRequest) ([]byte, bool) {
	n := len(dst)
	dst = append(dst, `{"model":`...)
	dst = appendJSONString(dst, r.Model)
	dst = append(dst, `,"messages":`...)
	if r.Messages == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, m := range r.Messages {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"role":`...)
			dst = appendJSONString(dst, m.Role)
			dst = append(dst, `,"content":`...)
			dst = appendJSONString(dst, m.Content)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"temperature":`...)
	dst, ok := appendJSONFloat(dst, r.Temperature)
	if !ok {
		return dst[:n], false
	}
	dst = append(dst, `,"max_tokens":`...)
	dst = strconv.AppendInt(dst, int64(r.MaxTokens), 10)
	dst = append(dst, `,"stream":`...)
	dst = strconv.AppendBool(dst, r.Stream)
	return append(dst, '}'), true
}

// chatReply is what a caller reads of a chatResponse: the content of the first
// choice's message (or delta), and the error object, if any.
type chatReply struct {
	choices int
	// content is the first choice's content. It may share memory with the data read
	// or with the decoder's scratch buffer: it is valid until either is reused.
	content  []byte
	hasError bool
	errMsg   string
}

// replyPart selects which object of a choice a chatReply's content comes from.
type replyPart int

const (
	partMessage replyPart = iota // a complete answer's
	partDelta                    // a stream event's
)

// chatDecoder reads chat responses, reusing its scratch buffer for content that holds
// escapes. The zero value is ready to use; it is not safe for concurrent use.
type chatDecoder struct {
	scratch []byte
}

// decode reads data as json.Unmarshal reads it into a chatResponse: the same content,
// the same error object, and an error when, and only when, json.Unmarshal returns one
// (its error).
func (d *chatDecoder) decode(data []byte, part replyPart) (chatReply, error) {
	r := replyReader{data: data, part: part, scratch: d.scratch[:0]}
	reply, ok := r.response()
	d.scratch = r.scratch
	if ok {
		return reply, nil
	}
	var resp chatResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return chatReply{}, err
	}
	reply = chatReply{choices: len(resp.Choices)}
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

// replyReader reads a chat response of the usual shape without reflection. Its methods
// report false for anything outside that shape (a member named twice, a member named
// like a field in another case, a member name with escapes or beyond ASCII, a field
// of an unexpected type, a string with invalid UTF-8 or a lone surrogate, deep nesting,
// malformed JSON), and the caller then asks json.Unmarshal. When they report true,
// the JSON is well formed and the result is json.Unmarshal's.
type replyReader struct {
	data    []byte
	i       int
	part    replyPart
	scratch []byte // unescaped content
}

// maxSkipDepth bounds the nesting of a value the reader skips; a deeper one goes to
// json.Unmarshal.
const maxSkipDepth = 32

func (r *replyReader) response() (reply chatReply, ok bool) {
	r.space()
	if !r.consume('{') {
		return chatReply{}, false
	}
	var seenChoices, seenError bool
	ok = r.members(func(key []byte) bool {
		switch {
		case string(key) == "choices":
			if seenChoices {
				return false
			}
			seenChoices = true
			return r.choices(&reply)
		case string(key) == "error":
			if seenError {
				return false
			}
			seenError = true
			return r.apiError(&reply)
		case foldsTo(key, "choices"), foldsTo(key, "error"):
			return false
		}
		return r.skip(0)
	})
	if !ok {
		return chatReply{}, false
	}
	r.space()
	return reply, r.i == len(r.data)
}

// choices reads the choices array, or null.
func (r *replyReader) choices(reply *chatReply) bool {
	if r.null() {
		return true
	}
	if !r.consume('[') {
		return false
	}
	r.space()
	if r.consume(']') {
		return true
	}
	for {
		var content []byte
		if !r.choice(&content, reply.choices == 0) {
			return false
		}
		if reply.choices == 0 {
			reply.content = content
		}
		reply.choices++
		r.space()
		if r.consume(']') {
			return true
		}
		if !r.consume(',') {
			return false
		}
		r.space()
	}
}

// choice reads one choice, an object or null, and its content when keep is set.
func (r *replyReader) choice(content *[]byte, keep bool) bool {
	if r.null() {
		return true
	}
	if !r.consume('{') {
		return false
	}
	var seenMessage, seenDelta bool
	return r.members(func(key []byte) bool {
		switch {
		case string(key) == "message":
			if seenMessage {
				return false
			}
			seenMessage = true
			return r.contentObject(content, keep && r.part == partMessage)
		case string(key) == "delta":
			if seenDelta {
				return false
			}
			seenDelta = true
			return r.contentObject(content, keep && r.part == partDelta)
		case foldsTo(key, "message"), foldsTo(key, "delta"):
			return false
		}
		return r.skip(0)
	})
}

// contentObject reads a message or a delta, an object or null, and its content when
// keep is set.
func (r *replyReader) contentObject(content *[]byte, keep bool) bool {
	if r.null() {
		return true
	}
	if !r.consume('{') {
		return false
	}
	seen := false
	return r.members(func(key []byte) bool {
		switch {
		case string(key) == "content":
			if seen {
				return false
			}
			seen = true
			if r.null() {
				return true
			}
			s, ok := r.str(keep)
			if keep {
				*content = s
			}
			return ok
		case foldsTo(key, "content"):
			return false
		}
		return r.skip(0)
	})
}

// apiError reads the error object, or null.
func (r *replyReader) apiError(reply *chatReply) bool {
	if r.null() {
		return true
	}
	if !r.consume('{') {
		return false
	}
	reply.hasError = true
	var seenMessage, seenType bool
	return r.members(func(key []byte) bool {
		switch {
		case string(key) == "message":
			if seenMessage {
				return false
			}
			seenMessage = true
			if r.null() {
				return true
			}
			// The message is copied out of the scratch buffer, which the content may
			// still need.
			mark := len(r.scratch)
			s, ok := r.str(true)
			reply.errMsg = string(s)
			r.scratch = r.scratch[:mark]
			return ok
		case string(key) == "type":
			if seenType {
				return false
			}
			seenType = true
			if r.null() {
				return true
			}
			_, ok := r.str(false)
			return ok
		case foldsTo(key, "message"), foldsTo(key, "type"):
			return false
		}
		return r.skip(0)
	})
}

// members reads the members of an object whose '{' was read, through its '}', calling
// member with each name with the reader at its value.
func (r *replyReader) members(member func(key []byte) bool) bool {
	r.space()
	if r.consume('}') {
		return true
	}
	for {
		key, ok := r.key()
		if !ok {
			return false
		}
		r.space()
		if !r.consume(':') {
			return false
		}
		r.space()
		if !member(key) {
			return false
		}
		r.space()
		if r.consume('}') {
			return true
		}
		if !r.consume(',') {
			return false
		}
		r.space()
	}
}

// foldsTo reports whether key, printable ASCII, is name in another case: encoding/json
// would take it for the field.
func foldsTo(key []byte, name string) bool {
	return len(key) == len(name) && strings.EqualFold(string(key), name)
}

func (r *replyReader) space() {
	for r.i < len(r.data) {
		switch r.data[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *replyReader) consume(c byte) bool {
	if r.i < len(r.data) && r.data[r.i] == c {
		r.i++
		return true
	}
	return false
}

// null reads a null, if one is next.
func (r *replyReader) null() bool {
	if len(r.data)-r.i >= 4 && string(r.data[r.i:r.i+4]) == "null" {
		r.i += 4
		return true
	}
	return false
}

// key reads a member name that is printable ASCII without escapes.
func (r *replyReader) key() ([]byte, bool) {
	if !r.consume('"') {
		return nil, false
	}
	start := r.i
	for ; r.i < len(r.data); r.i++ {
		switch c := r.data[r.i]; {
		case c == '"':
			r.i++
			return r.data[start : r.i-1], true
		case c < 0x20 || c >= utf8.RuneSelf || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

// str reads a string. When decode is set it returns its value, as a slice of the data
// when it has no escapes, else of the scratch buffer; otherwise it only checks it.
func (r *replyReader) str(decode bool) ([]byte, bool) {
	if !r.consume('"') {
		return nil, false
	}
	start := r.i
	i := r.i
	for i < len(r.data) && r.data[i] != '"' && r.data[i] != '\\' && r.data[i] >= 0x20 {
		i++
	}
	if i < len(r.data) && r.data[i] == '"' { // no escapes: the common case
		if !utf8.Valid(r.data[start:i]) {
			return nil, false
		}
		r.i = i + 1
		return r.data[start:i], true
	}
	mark := len(r.scratch)
	buf := append(r.scratch, r.data[start:i]...)
	for i < len(r.data) && r.data[i] == '\\' && i+1 < len(r.data) {
		switch e := r.data[i+1]; e {
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
			c := jsonHex4(r.data, i+2)
			if c < 0 {
				return nil, false
			}
			if utf16.IsSurrogate(c) {
				// Only a valid pair; encoding/json replaces a lone surrogate.
				if i+12 > len(r.data) || r.data[i+6] != '\\' || r.data[i+7] != 'u' {
					return nil, false
				}
				c = utf16.DecodeRune(c, jsonHex4(r.data, i+8))
				if c == utf8.RuneError {
					return nil, false
				}
				i += 6
			}
			buf = utf8.AppendRune(buf, c)
			i += 4
		default:
			return nil, false
		}
		i += 2
		k := i
		for k < len(r.data) && r.data[k] != '"' && r.data[k] != '\\' && r.data[k] >= 0x20 {
			k++
		}
		buf = append(buf, r.data[i:k]...)
		i = k
	}
	if i == len(r.data) || r.data[i] != '"' || !utf8.Valid(r.data[start:i]) {
		return nil, false // unterminated, a control character, or invalid UTF-8
	}
	r.i = i + 1
	if !decode {
		r.scratch = buf[:mark]
		return nil, true
	}
	r.scratch = buf
	return buf[mark:], true
}

// jsonHex4 returns the value of the four hexadecimal digits at data[i:], or -1.
func jsonHex4(data []byte, i int) rune {
	if i+4 > len(data) {
		return -1
	}
	var v rune
	for _, c := range data[i : i+4] {
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
		v = v<<4 | rune(c)
	}
	return v
}

// skip reads a value of any type, checking that it is well formed.
func (r *replyReader) skip(depth int) bool {
	if r.i == len(r.data) {
		return false
	}
	switch c := r.data[r.i]; {
	case c == '"':
		return r.skipString()
	case c == '{':
		if depth == maxSkipDepth {
			return false
		}
		r.i++
		return r.members(func([]byte) bool { return r.skip(depth + 1) })
	case c == '[':
		if depth == maxSkipDepth {
			return false
		}
		r.i++
		r.space()
		if r.consume(']') {
			return true
		}
		for {
			if !r.skip(depth + 1) {
				return false
			}
			r.space()
			if r.consume(']') {
				return true
			}
			if !r.consume(',') {
				return false
			}
			r.space()
		}
	case c == '-' || '0' <= c && c <= '9':
		return r.number()
	case c == 't':
		return r.literal("true")
	case c == 'f':
		return r.literal("false")
	case c == 'n':
		return r.literal("null")
	}
	return false
}

// skipString reads a string that is only checked: any bytes but control characters,
// and valid escapes. encoding/json accepts invalid UTF-8 in a string it skips.
func (r *replyReader) skipString() bool {
	i := r.i + 1
	for i < len(r.data) {
		switch c := r.data[i]; {
		case c == '"':
			r.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 == len(r.data) {
				return false
			}
			switch r.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if jsonHex4(r.data, i+2) < 0 {
					return false
				}
				i += 6
			default:
				return false
			}
		default:
			i++
		}
	}
	return false
}

// number reads a number as JSON defines it.
func (r *replyReader) number() bool {
	d, i := r.data, r.i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i == len(d) || d[i] < '0' || d[i] > '9' {
			return false
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i == len(d) || d[i] < '0' || d[i] > '9' {
			return false
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	r.i = i
	return true
}

func (r *replyReader) literal(lit string) bool {
	if len(r.data)-r.i >= len(lit) && string(r.data[r.i:r.i+len(lit)]) == lit {
		r.i += len(lit)
		return true
	}
	return false
}
