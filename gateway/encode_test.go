package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/internal/jsonw"
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

func TestAppendReplyJSONMatchesMarshal(t *testing.T) {
	for _, r := range replyCases() {
		want, err := json.Marshal(toReplyJSON(r))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendReplyJSON([]byte("prefix"), r)
		if !ok {
			t.Fatalf("appendReplyJSON(%+v) refused a reply json.Marshal encodes", r)
		}
		if got := string(got); got != "prefix"+string(want) {
			t.Errorf("appendReplyJSON(%+v):\n got %s\nwant prefix%s", r, got, want)
		}
	}
}

func TestAppendReplyJSONRefusesWhatMarshalRefuses(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		r := dialogue.Reply{Confidence: f}
		if _, err := json.Marshal(toReplyJSON(r)); err == nil {
			t.Fatalf("json.Marshal encoded confidence %v", f)
		}
		got, ok := appendReplyJSON([]byte("prefix"), r)
		if ok || string(got) != "prefix" {
			t.Errorf("appendReplyJSON(confidence %v) = %q, %v; want prefix, false", f, got, ok)
		}
	}
}

func TestAppendJSONFloatMatchesMarshal(t *testing.T) {
	for _, f := range trickyFloats {
		for _, v := range []float64{f, -f, f * 3, f / 7} {
			want, err := json.Marshal(v)
			if err != nil { // f * 3 overflows
				continue
			}
			got, ok := jsonw.AppendFloat(nil, v)
			if !ok || string(got) != string(want) {
				t.Errorf("jsonw.AppendFloat(%v) = %s, %v; want %s", v, got, ok, want)
			}
		}
	}
}

func TestAppendErrorJSONMatchesMarshal(t *testing.T) {
	for _, s := range trickyStrings {
		d := errorDetail{Code: s, Message: "Message: " + s, RequestID: s}
		want, err := json.Marshal(errorBody{Error: d})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendErrorJSON(nil, d); string(got) != string(want) {
			t.Errorf("appendErrorJSON(%+v):\n got %s\nwant %s", d, got, want)
		}
	}
}

// TestWriteReplyJSONMatchesWriteJSON: the reply written by hand is the response writeJSON
// writes, status, headers and body; and a reply json.Marshal refuses still gets its 500.
func TestWriteReplyJSONMatchesWriteJSON(t *testing.T) {
	cases := append(replyCases(), dialogue.Reply{Confidence: math.NaN()})
	for _, r := range cases {
		want := httptest.NewRecorder()
		writeJSON(want, http.StatusOK, toReplyJSON(r))
		got := httptest.NewRecorder()
		writeReplyJSON(got, http.StatusOK, r)
		if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("reply %+v: got %d %q, want %d %q", r, got.Code, got.Body, want.Code, want.Body)
		}
		if diff := cmp.Diff(want.Header(), got.Header()); diff != "" {
			t.Errorf("reply %+v: headers (-want +got):\n%s", r, diff)
		}
	}
}

// FuzzReplyJSON compares the hand-written reply and error bodies with json.Marshal's on
// arbitrary texts and numbers.
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
		want, err := json.Marshal(toReplyJSON(r))
		got, ok := appendReplyJSON(nil, r)
		if ok != (err == nil) {
			t.Fatalf("reply %+v: appendReplyJSON ok %v, json.Marshal error %v", r, ok, err)
		}
		if ok && !bytes.Equal(got, want) {
			t.Fatalf("reply %+v:\n got %s\nwant %s", r, got, want)
		}
		d := errorDetail{Code: id, Message: text, RequestID: id + text}
		want, err = json.Marshal(errorBody{Error: d})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendErrorJSON(nil, d); !bytes.Equal(got, want) {
			t.Fatalf("error %+v:\n got %s\nwant %s", d, got, want)
		}
	})
}
