package gateway

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fengda-ai/fengda/dialogue"
)

// trickyStrings are texts whose JSON encoding has a special case.
var trickyStrings = []string{
	"",
	"plain ASCII",
	"信用卡丢了怎么办?",
	"emoji 😀 and 👍🏽 and a flag 🇨🇳",
	`<script>alert("x")</script> & more`,
	"line\u2028separator and paragraph\u2029separator",
	"invalid UTF-8: \xff\xfe, a cut rune: \xe4\xbd, a lone continuation: \x80",
	"\x00\x01\x07\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f\x7f",
	`back\slash "quoted" /slash/`,
	"\ufeffBOM and \ufffd replacement",
	"surrogate-like bytes \xed\xa0\x80",
	strings.Repeat("长文本", 500),
}

// trickyFloats are values whose json.Marshal format has a special case.
var trickyFloats = []float64{
	0, math.Copysign(0, -1), 0.875, 1, 0.92, 1.0 / 3, 1e-7, 1e-6, 9.99e-7, 1e20, 1e21, 1.5e21,
	-1e-7, -1e21, 123456789.125, math.SmallestNonzeroFloat64, math.MaxFloat64, 5e-324, 1e-10,
}

func replyCases() []dialogue.Reply {
	var out []dialogue.Reply
	for i, s := range trickyStrings {
		out = append(out, dialogue.Reply{
			SessionID:   s,
			TurnID:      "turn-" + s,
			Answer:      s + s,
			Source:      s,
			Confidence:  trickyFloats[i%len(trickyFloats)],
			Citations:   []dialogue.Citation{{ID: s, Question: s}, {ID: "faq-1", Question: "q"}},
			Suggestions: []dialogue.Citation{{ID: "x", Question: s}},
			Incomplete:  i%2 == 0,
			Latency:     time.Duration(i) * 1234567 * time.Nanosecond,
		})
	}
	for i, f := range trickyFloats {
		out = append(out, dialogue.Reply{
			SessionID:  "s",
			Confidence: f,
			Latency:    time.Duration(i*i*i) * time.Hour,
			Citations:  []dialogue.Citation{},
		})
	}
	return append(out,
		dialogue.Reply{}, // nil citations and suggestions: []
		fixedReply,
		dialogue.Reply{Latency: math.MaxInt64},
		dialogue.Reply{Latency: -time.Second},
	)
}

func TestWriteErrorJSONMatchesWriteJSON(t *testing.T) {
	for _, s := range trickyStrings {
		d := errorDetail{Code: s, Message: "Message: " + s, RequestID: s}
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusTooManyRequests, errorBody{Error: d})
		got := httptest.NewRecorder()
		writeErrorJSON(got, http.StatusTooManyRequests, d)
		checkResponse(t, got, want)
	}
}

// TestWriteReplyJSONMatchesWriteJSON: the reply is the response writeJSON writes,
// status, headers and body; and a reply json.Marshal refuses still gets its 500.
func TestWriteReplyJSONMatchesWriteJSON(t *testing.T) {
	cases := append(replyCases(), dialogue.Reply{Confidence: math.NaN()})
	for _, r := range cases {
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, toReplyJSON(r))
		got := httptest.NewRecorder()
		writeReplyJSON(got, http.StatusOK, r)
		checkResponse(t, got, want)
	}
}

// checkResponse fails unless got has want's status, headers and body.
func checkResponse(t *testing.T, got, want *httptest.ResponseRecorder) {
	t.Helper()
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Errorf("got %d %q, want %d %q", got.Code, got.Body, want.Code, want.Body)
	}
	if diff := cmp.Diff(want.Header(), got.Header()); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

// FuzzReplyJSON compares the reply and error responses with writeJSON's on arbitrary
// texts and numbers.
func FuzzReplyJSON(f *testing.F) {
	for i, s := range trickyStrings {
		f.Add(s, "faq-1", trickyFloats[i%len(trickyFloats)], int64(i)*1234567, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, text, id string, confidence float64, latency int64, incomplete bool) {
		r := dialogue.Reply{
			SessionID: id, TurnID: text, Answer: text + id, Source: text,
			Confidence: confidence, Incomplete: incomplete, Latency: time.Duration(latency),
			Citations:   []dialogue.Citation{{ID: id, Question: text}},
			Suggestions: []dialogue.Citation{{ID: text, Question: id}, {ID: id, Question: text}},
		}
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, toReplyJSON(r))
		got := httptest.NewRecorder()
		writeReplyJSON(got, http.StatusOK, r)
		checkResponse(t, got, want)

		d := errorDetail{Code: id, Message: text, RequestID: id + text}
		want = httptest.NewRecorder()
		writeJSON(want, http.StatusBadRequest, errorBody{Error: d})
		got = httptest.NewRecorder()
		writeErrorJSON(got, http.StatusBadRequest, d)
		checkResponse(t, got, want)
	})
}
