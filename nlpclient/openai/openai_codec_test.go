package openai

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// trickyStrings are strings whose JSON takes escapes, or that are not valid UTF-8.
var trickyStrings = []string{
	"",
	"plain ASCII",
	"你好,请问有什么可以帮您?",
	"<script>alert('x') && 1 > 0</script>",
	"line\nbreak\r\ttab\b\f",
	"\x00\x01\x1f\x7f",
	`quote " and backslash \ and slash /`,
	"\u2028 and \u2029 separators",
	"emoji 😀 and 𝐀",
	"invalid \xff\xfe bytes",
	"cut rune \xe4\xbd",
	"\xed\xa0\x80 encoded surrogate",
	"\ufffd replacement",
	"\u0085 next line, \u00a0 no-break space",
}

func TestEncodeChatRequestMatchesMarshal(t *testing.T) {
	var msgs []chatMessage
	for _, s := range trickyStrings {
		msgs = append(msgs, chatMessage{Role: roleUser, Content: s}, chatMessage{Role: s, Content: roleAssistant})
	}
	reqs := []chatRequest{
		{Model: "m", Messages: msgs, Temperature: 0.3, MaxTokens: 512, Stream: true},
		{Model: "m", Messages: []chatMessage{}, Temperature: 0, MaxTokens: 0},
		{Model: "m", Temperature: 2, MaxTokens: -1},
	}
	for _, s := range trickyStrings {
		reqs = append(reqs, chatRequest{Model: s, Messages: []chatMessage{{Role: s, Content: s}}})
	}
	for _, f := range []float64{math.Copysign(0, -1), 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 123456789.125, 5e-324, math.MaxFloat64, -0.7, 0.1 + 0.2} {
		reqs = append(reqs, chatRequest{Model: "m", Temperature: f, MaxTokens: math.MaxInt})
	}
	for _, r := range reqs {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := encodeChatRequest(&r)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("encodeChatRequest(%+v) = %s, %v; want %s", r, got, err, want)
		}
	}
}

func TestEncodeChatRequestRefusesWhatMarshalRefuses(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		r := chatRequest{Model: "m", Temperature: f}
		_, want := json.Marshal(r)
		_, got := encodeChatRequest(&r)
		if got == nil || want == nil || got.Error() != want.Error() {
			t.Errorf("temperature %v: error %v, want %v", f, got, want)
		}
	}
}

func FuzzEncodeChatRequest(f *testing.F) {
	for _, s := range trickyStrings {
		f.Add("m", s, s, 0.3, 512, true)
	}
	f.Add("deepseek-chat", "user", "hi", 1e-7, 0, false)
	f.Fuzz(func(t *testing.T, model, role, content string, temp float64, maxTokens int, stream bool) {
		r := chatRequest{Model: model, Messages: []chatMessage{{Role: roleSystem, Content: content}, {Role: role, Content: model}}, Temperature: temp, MaxTokens: maxTokens, Stream: stream}
		want, werr := json.Marshal(r)
		got, err := encodeChatRequest(&r)
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("encodeChatRequest = %s, %v; json.Marshal = %s, %v", got, err, want, werr)
		}
	})
}

// unmarshalReply is what decode returns, read by json.Unmarshal only.
func unmarshalReply(data []byte, part replyPart) (chatReply, error) {
	var resp chatResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return chatReply{}, err
	}
	r := chatReply{choices: len(resp.Choices)}
	if len(resp.Choices) > 0 {
		c := resp.Choices[0].Message.Content
		if part == partDelta {
			c = resp.Choices[0].Delta.Content
		}
		r.content = []byte(c)
	}
	if resp.Error != nil {
		r.hasError, r.errMsg = true, resp.Error.Message
	}
	return r, nil
}

// checkDecode fails unless the decoder's result for data is json.Unmarshal's, and its
// fast path, when it answers, too.
func checkDecode(t *testing.T, data []byte, part replyPart) (fast bool) {
	t.Helper()
	want, werr := unmarshalReply(data, part)
	var d chatDecoder
	got, err := d.decode(data, part)
	if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
		t.Fatalf("%q: error %v, want %v", data, err, werr)
	}
	opt := cmp.AllowUnexported(chatReply{})
	if diff := cmp.Diff(normalReply(want), normalReply(got), opt); diff != "" {
		t.Fatalf("%q: reply (-want +got):\n%s", data, diff)
	}
	r := replyReader{data: data, part: part}
	fastReply, ok := r.response()
	if ok {
		if werr != nil {
			t.Fatalf("%q: the fast path accepts what json.Unmarshal refuses: %v", data, werr)
		}
		if diff := cmp.Diff(normalReply(want), normalReply(fastReply), opt); diff != "" {
			t.Fatalf("%q: fast reply (-want +got):\n%s", data, diff)
		}
	}
	return ok
}

// normalReply makes an empty content nil, as json.Unmarshal's and the decoder's may
// differ there and mean the same.
func normalReply(r chatReply) chatReply {
	if len(r.content) == 0 {
		r.content = nil
	}
	return r
}

func TestChatDecoderMatchesUnmarshal(t *testing.T) {
	tests := []struct {
		name string
		in   string
		fast bool // the fast path answers
	}{
		{"answer", string(benchAnswerBody), true},
		{"event", `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"你"},"logprobs":null,"finish_reason":null}]}`, true},
		{"role event", `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, true},
		{"finish event", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`, true},
		{"usage only", `{"choices":[],"usage":{"total_tokens":3}}`, true},
		{"null content", `{"choices":[{"delta":{"content":null,"tool_calls":[{"id":"x","function":{"arguments":"{}"}}]}}]}`, true},
		{"null delta", `{"choices":[{"delta":null}]}`, true},
		{"null choice", `{"choices":[null,{"delta":{"content":"b"}}]}`, true},
		{"null choices", `{"choices":null}`, true},
		{"second choice", `{"choices":[{"message":{"content":"a"}},{"message":{"content":"b"}}]}`, true},
		{"escaped unicode", `{"choices":[{"message":{"content":"\u4f60\u597d\ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}}]}`, true},
		{"escaped html", `{"choices":[{"message":{"content":"\u003cb\u003e \u0026 \u2028"}}]}`, true},
		{"whitespace", " \r\n\t{ \"choices\" : [ { \"message\" : { \"content\" : \"a\" } } ] } \n", true},
		{"error with 200", `{"error":{"message":"Rate limit \u0026 quota","type":"requests","param":null,"code":"429"}}`, true},
		{"empty error", `{"error":{}}`, true},
		{"null error", `{"error":null,"choices":[{"message":{"content":"a"}}]}`, true},
		{"error and content", `{"choices":[{"message":{"content":"\u00e9"}}],"error":{"message":"x\u00e9"}}`, true},
		{"numbers", `{"a":-0,"b":1.5e+10,"c":0.25E-3,"d":[1,-2,3e5],"choices":[]}`, true},
		{"literals", `{"a":true,"b":false,"c":null,"d":{"e":[{},[]]}}`, true},
		{"invalid UTF-8 skipped", "{\"id\":\"\xff\",\"choices\":[{\"message\":{\"content\":\"a\"}}]}", true},
		{"top-level null", `null`, false},
		{"top-level array", `[]`, false},
		{"other case", `{"Choices":[{"message":{"content":"a"}}]}`, false},
		{"other case inside", `{"choices":[{"Message":{"content":"a"}}]}`, false},
		{"other case content", `{"choices":[{"message":{"CONTENT":"a"}}]}`, false},
		{"kelvin sign", "{\"choices\":[{\"message\":{\"content\":\"a\"},\"\u212aey\":1}]}", false},
		{"long s", "{\"choice\u017f\":[{\"message\":{\"content\":\"a\"}}]}", false},
		{"escaped key", `{"\u0063hoices":[{"message":{"content":"a"}}]}`, false},
		{"duplicate content", `{"choices":[{"message":{"content":"a","content":null}}]}`, false},
		{"duplicate choices", `{"choices":[{"message":{"content":"a"}}],"choices":[{}]}`, false},
		{"duplicate error", `{"error":{"message":"a"},"error":null}`, false},
		{"lone surrogate", `{"choices":[{"message":{"content":"\ud83d!"}}]}`, false},
		{"invalid UTF-8 content", "{\"choices\":[{\"message\":{\"content\":\"\xffa\"}}]}", false},
		{"content not a string", `{"choices":[{"message":{"content":["a"]}}]}`, false},
		{"error not an object", `{"error":"boom"}`, false},
		{"choices not an array", `{"choices":{}}`, false},
		{"type not a string", `{"error":{"message":"a","type":3}}`, false},
		{"second choice malformed", `{"choices":[{"message":{"content":"a"}},{"message":{"content":1}}]}`, false},
		{"truncated", `{"choices":[{"message":{"content":"a`, false},
		{"trailing data", `{"choices":[]} x`, false},
		{"trailing comma", `{"choices":[],}`, false},
		{"leading zero", `{"a":01}`, false},
		{"bad exponent", `{"a":1e}`, false},
		{"bad escape", `{"a":"\x"}`, false},
		{"control character", "{\"a\":\"\x01\"}", false},
		{"bad literal", `{"a":nul}`, false},
		{"deep", `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, false},
		{"empty", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, part := range []replyPart{partMessage, partDelta} {
				if fast := checkDecode(t, []byte(tt.in), part); fast != tt.fast {
					t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
				}
			}
		})
	}
}

// TestChatDecoderReusesScratch decodes escaped content twice with one decoder: the
// second result does not change the first's length, and both are right.
func TestChatDecoderReusesScratch(t *testing.T) {
	var d chatDecoder
	a, err := d.decode([]byte(`{"choices":[{"delta":{"content":"\u4f60"}}]}`), partDelta)
	if err != nil || string(a.content) != "你" {
		t.Fatalf("first: %q, %v", a.content, err)
	}
	first := string(a.content)
	b, err := d.decode([]byte(`{"choices":[{"delta":{"content":"\u597d\u597d"}}],"error":{"message":"\u4f60"}}`), partDelta)
	if err != nil || string(b.content) != "好好" || b.errMsg != "你" || first != "你" {
		t.Fatalf("second: %q %q, %v", b.content, b.errMsg, err)
	}
}

func FuzzChatDecoder(f *testing.F) {
	f.Add([]byte(benchAnswerBody))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{"content":"\u4f60\ud83d\ude00"},"finish_reason":null}]}`))
	f.Add([]byte(`{"error":{"message":"overloaded","type":"server_error"}}`))
	f.Add([]byte(`{"choices":[{"delta":null},{"message":{"content":null}}],"usage":{"a":[1.5e3,-0,true]}}`))
	f.Add([]byte(`{"Choices":[],"choices":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data, partMessage)
		checkDecode(t, data, partDelta)
	})
}
