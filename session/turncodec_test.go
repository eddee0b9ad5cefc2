package session

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/google/go-cmp/cmp"
)

// trickyStrings are strings whose JSON form needs care.
var trickyStrings = []string{
	"",
	"plain ascii",
	"我的订单在哪里？",
	"emoji 😀 and 👩‍👩‍👧 family",
	`quote " backslash \ slash /`,
	"html <script>alert('x') & </script>",
	"line\nfeed\rcarriage\ttab\bbackspace\fformfeed",
	"controls \x00\x01\x1f and del \x7f",
	"separators \u2028 and \u2029",
	"invalid \xff\xfe utf-8 \xc3",
	"truncated \xe6\x88",
	"surrogate half in utf-8 \xed\xa0\x80",
	"replacement char itself \ufffd",
	"max rune \U0010ffff",
	strings.Repeat("长", 300),
}

var (
	shanghai = time.FixedZone("CST", 8*3600)
	newYork  = time.FixedZone("", -5*3600-30*60)
)

// codecTurns are turns the encoder must write as json.Marshal does.
func codecTurns() map[string]Turn {
	full := testTurn(1, "m1")
	turns := map[string]Turn{
		"zero":      {},
		"full":      full,
		"no cmid":   testTurn(2, ""),
		"nil lists": {ID: "T1", Citations: nil, Suggestions: nil},
		"empty lists": {
			ID: "T2", Citations: []Citation{}, Suggestions: []Citation{},
		},
		"incomplete": {ID: "T3", Incomplete: true, Answer: "cut sho"},
		"zoned times": {
			ID:         "T4",
			At:         time.Date(2025, 3, 1, 9, 0, 0, 123456789, shanghai),
			AnsweredAt: time.Date(2025, 3, 1, 9, 0, 1, 500000000, newYork),
		},
		"local and monotonic": {ID: "T5", At: time.Now(), AnsweredAt: time.Now().Local()},
		"year 0 and 9999": {
			At:         time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
			AnsweredAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		},
		"offset 23:59":        {At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("", 23*3600+59*60))},
		"offset with seconds": {At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("", -(3600+30)))},
	}
	for i, s := range trickyStrings {
		turns["tricky "+string(rune('a'+i))] = Turn{
			ID: s, ClientMsgID: s, User: s, Answer: s, Source: s,
			Citations:   []Citation{{ID: s, Question: s}, {}},
			Suggestions: []Citation{{Question: s}},
		}
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1, 0.875, 1e-6, 9.999999e-7, 1e-7, -1e-7, 1.5e-10,
		123456789, 1e20, 1e21, -1e21, 1.2345e25, 1e-300, 5e-324, math.MaxFloat64, 0.1 + 0.2} {
		turns["confidence "+strconv.FormatFloat(f, 'g', -1, 64)] = Turn{ID: "F", Confidence: f}
	}
	return turns
}

func TestEncodeTurn(t *testing.T) {
	for name, turn := range codecTurns() {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(turn)
			if err != nil {
				t.Fatal(err)
			}
			got, err := encodeTurn(&turn)
			if err != nil {
				t.Fatalf("encodeTurn: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encodeTurn:\ngot  %s\nwant %s", got, want)
			}
		})
	}
}

// TestEncodeTurnEveryByte checks the escaping of every byte alone and after a valid
// rune, which covers the whole ASCII table and every lead and continuation byte.
func TestEncodeTurnEveryByte(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string([]byte{byte(c)}), "é" + string([]byte{byte(c)}) + "x"} {
			turn := Turn{User: s}
			want, _ := json.Marshal(turn)
			if got, _ := encodeTurn(&turn); !bytes.Equal(got, want) {
				t.Errorf("byte %#x: got %s, want %s", c, got, want)
			}
		}
	}
}

// TestCodecMultiByte checks strings holding every lead byte followed by continuation
// bytes at the edges of the ranges UTF-8 allows, valid or not, cut short or not.
func TestCodecMultiByte(t *testing.T) {
	// The second byte's range depends on the lead byte (E0, ED, F0, F4); later
	// continuation bytes only need to be 80–BF.
	edges := []byte{0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0}
	later := []byte{0x7f, 0x80, 0xbf, 0xc0}
	for lead := 0x80; lead <= 0xff; lead++ {
		for _, b2 := range edges {
			for _, b3 := range later {
				for _, b4 := range later {
					seq := []byte{byte(lead), b2, b3, b4}
					for cut := 1; cut <= len(seq); cut++ {
						s := "x" + string(seq[:cut])
						turn := Turn{User: s, Answer: s + "y"}
						want, _ := json.Marshal(turn)
						if got, _ := encodeTurn(&turn); !bytes.Equal(got, want) {
							t.Fatalf("encode % x: got %s, want %s", seq[:cut], got, want)
						}
						checkDecode(t, []byte(`{"user":"`+s+`","answer":"`+s+`\t"}`))
					}
				}
			}
		}
	}
}

func TestEncodeTurnRefused(t *testing.T) {
	turns := map[string]Turn{
		"NaN":              {Confidence: math.NaN()},
		"+Inf":             {Confidence: math.Inf(1)},
		"-Inf":             {Confidence: math.Inf(-1)},
		"year -1":          {At: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		"year 10000":       {AnsweredAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"offset of a day":  {At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600))},
		"offset of -100h":  {At: time.Date(2025, 1, 1, 0, 0, 0, 0, time.FixedZone("", -100*3600))},
		"year 9999 pushed": {At: time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC).In(time.FixedZone("", 2*3600))},
	}
	for name, turn := range turns {
		t.Run(name, func(t *testing.T) {
			_, want := json.Marshal(turn)
			if want == nil {
				t.Fatal("json.Marshal accepted the turn")
			}
			if _, err := encodeTurn(&turn); err == nil || err.Error() != want.Error() {
				t.Errorf("encodeTurn error: got %v, want %v", err, want)
			}
		})
	}
}

// checkDecode compares decodeTurn and decodeTurnString with json.Unmarshal into a
// zero Turn, error and value, and reports whether the input decoded without error.
func checkDecode(t *testing.T, data []byte) bool {
	t.Helper()
	var want Turn
	wantErr := json.Unmarshal(data, &want)
	// Start from a used turn: the decoder must not leave any of it behind.
	got := testTurn(9, "stale")
	err := decodeTurnString(string(data), &got)
	gotS := testTurn(9, "stale")
	errS := decodeTurnString(string(data), &gotS)
	for _, g := range []struct {
		name string
		turn Turn
		err  error
	}{{"decodeTurn", got, err}, {"decodeTurnString", gotS, errS}} {
		if (g.err == nil) != (wantErr == nil) || g.err != nil && g.err.Error() != wantErr.Error() {
			t.Errorf("%s(%q): error %v, want %v", g.name, data, g.err, wantErr)
		}
		if !reflect.DeepEqual(g.turn, want) {
			t.Errorf("%s(%q) differs from json.Unmarshal (-got +want):\n%s", g.name, data, cmp.Diff(g.turn, want))
		}
	}
	return wantErr == nil
}

func TestDecodeTurnOfEncoded(t *testing.T) {
	for name, turn := range codecTurns() {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(turn)
			if err != nil {
				t.Fatal(err)
			}
			checkDecode(t, data)
			// The library must read everything the encoder writes itself.
			var got Turn
			if err := jsonv2.Unmarshal(data, &got, readOptions); err != nil {
				t.Errorf("the library refused %s: %v", data, err)
			}
		})
	}
}

func TestDecodeTurn(t *testing.T) {
	const at = `"2025-03-01T09:00:00Z"`
	valid := []string{
		`{}`,
		" \t\r\n{ \"id\" : \"T\" , \"user\":\"u\"\n}\t ",
		`{"answered_at":` + at + `,"at":` + at + `,"incomplete":false,"confidence":1,"id":"T"}`,
		`{"incomplete":true}`,
		`{"citations":[],"suggestions":[]}`,
		`{"citations":[{}],"suggestions":[{"question":"q","id":"i"}, {"id":"j"} ]}`,
		`{"user":"\"\\\/\b\f\n\r\t\u0041\u00e9\u4e2d\ud83d\ude00\u2028"}`,
		`{"user":"lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, high then text \ud800x"}`,
		`{"user":"high then high \ud800\ud800\udc00"}`,
		`{"user":"upper hex \uD83D\uDE00 and \u00E9"}`,
		"{\"user\":\"raw invalid \xff \xed\xa0\x80 \xc3\", \"answer\":\"\xe6\x88\"}",
		"{\"user\":\"raw del \x7f and replacement \xef\xbf\xbd\"}",
		`{"confidence":-0}`,
		`{"confidence":0.875}`,
		`{"confidence":1e-7}`,
		`{"confidence":1E+21}`,
		`{"confidence":-12.5e-3}`,
		`{"confidence":1e-400}`,
		`{"at":"2025-03-01T09:00:00.123456789+08:00"}`,
		`{"at":"2025-03-01T09:00:00-05:30"}`,
		`{"at":"2025-03-01T09:00:00.5Z"}`,
	}
	for _, in := range valid {
		checkDecode(t, []byte(in))
	}

	others := []string{
		// Valid JSON of other shapes, most of which the library refuses in its strict
		// mode and encoding/json reads.
		`null`,
		` null `,
		`{"id":null}`,
		`{"citations":null}`,
		`{"citations":[null]}`,
		`{"at":null}`,
		`{"ID":"upper"}`,
		`{"Client_Msg_Id":"folded"}`,
		`{"ſource":"long s folds to s"}`,
		`{"\u0069d":"escaped key"}`,
		`{"unknown":1,"id":"T"}`,
		`{"id":"first","id":"second"}`,
		`{"citations":[{"id":"a"}],"citations":[{"question":"b"}]}`,
		`{"citations":[{"id":"a","id":"b"}]}`,
		`{"citations":[{"id":"a","extra":[1,{"x":null}]}]}`,
		`{"incomplete":null}`,
		// Type errors: json.Unmarshal carries on and keeps the other fields.
		`{"id":1,"user":"kept"}`,
		`{"confidence":"0.5","user":"kept"}`,
		`{"confidence":1e400,"user":"kept"}`,
		`{"incomplete":"yes","user":"kept"}`,
		`{"citations":{},"user":"kept"}`,
		`{"citations":[1],"user":"kept"}`,
		`{"at":5,"user":"kept"}`,
		`{"at":"yesterday","user":"kept"}`,
		`{"at":"2025-03-01T09:00:00+24:00"}`,
		`{"at":"2025-03-01T9:00:00Z"}`,
		`{"at":{"x":1},"user":"kept"}`,
		`[]`,
		`"turn"`,
		`5`,
		// Syntax errors.
		``,
		` `,
		`{`,
		`{"id":"T"`,
		`{"id":"T",}`,
		`{"id":"T"}x`,
		`{"id":"T"}{}`,
		`{"id" "T"}`,
		`{"id":'T'}`,
		`{"id":"T\'"}`,
		`{"id":"T\x"}`,
		`{"id":"T\u12"}`,
		`{"id":"T\u12G4"}`,
		`{"user":"high then bad escape \ud800\u12"}`,
		"{\"id\":\"tab\tinside\"}",
		"{\"id\":\"nul\x00inside\"}",
		`{"id":"unterminated}`,
		`{"id":"T\`,
		`{"confidence":01}`,
		`{"confidence":1.}`,
		`{"confidence":.5}`,
		`{"confidence":+1}`,
		`{"confidence":1e}`,
		`{"confidence":-}`,
		`{"confidence":0x10}`,
		`{"confidence":Infinity}`,
		`{"confidence":NaN}`,
		`{"incomplete":truex}`,
		`{"incomplete":tru}`,
		`{"citations":[{"id":"a"},]}`,
		`{"citations":[{"id":"a"}`,
		`{"citations":[{"id":"a",}]}`,
		"\xef\xbb\xbf{}",
	}
	for _, in := range others {
		checkDecode(t, []byte(in))
	}
}

// TestDecodeTurnEscapedTime checks the one documented difference from encoding/json: a
// time with an escape in its text is read as the time it spells.
func TestDecodeTurnEscapedTime(t *testing.T) {
	var got Turn
	if err := decodeTurnString(`{"at":"2025-03-01T09:00:00\u005a","user":"kept"}`, &got); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC); !got.At.Equal(want) || got.User != "kept" {
		t.Errorf("got %v, %q; want %v, \"kept\"", got.At, got.User, want)
	}
}

// TestDecodeTurnEmptyLists checks the case that is easy to get wrong: an empty array
// decodes to an empty slice that is not nil.
func TestDecodeTurnEmptyLists(t *testing.T) {
	var got Turn
	if err := decodeTurnString(`{"citations":[],"suggestions":[{"id":"a"}]}`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Citations == nil || len(got.Citations) != 0 {
		t.Errorf("Citations: got %#v, want an empty slice that is not nil", got.Citations)
	}
	if err := decodeTurnString(`{}`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Citations != nil || got.Suggestions != nil {
		t.Errorf("after {}: got %#v, %#v; want nil slices", got.Citations, got.Suggestions)
	}
}

func FuzzTurnCodec(f *testing.F) {
	for _, turn := range codecTurns() {
		data, err := json.Marshal(turn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, turn.User, turn.Answer, turn.Confidence, turn.At.Unix(), int64(turn.At.Nanosecond()), int32(0), false)
	}
	f.Add([]byte(`{"user":"\ud800\udc00\ud800","citations":[{"id":"x"}],"at":"2025-03-01T09:00:00+08:00"}`),
		"\xed\xa0\x80", "<&>\u2028", 1e-7, int64(-62167219200), int64(0), int32(-100*3600), true)
	f.Add([]byte(`{"ID":"x","id":"y"}`), "", "", math.Inf(1), int64(253402300799), int64(999999999), int32(24*3600), false)

	f.Fuzz(func(t *testing.T, data []byte, user, answer string, confidence float64, sec, nsec int64, offset int32, incomplete bool) {
		// Arbitrary input decodes as json.Unmarshal decodes it.
		if checkDecode(t, data) {
			// What decoded re-encodes as json.Marshal encodes it.
			var turn Turn
			if err := json.Unmarshal(data, &turn); err == nil {
				checkEncode(t, &turn)
			}
		}

		// A turn built from the fuzzed values encodes as json.Marshal encodes it, and
		// its encoding decodes as json.Unmarshal decodes it.
		zone := time.FixedZone("", int(offset))
		turn := Turn{
			ID:          user + answer,
			ClientMsgID: answer,
			User:        user,
			Answer:      answer,
			Source:      user + answer,
			Confidence:  confidence,
			Citations:   []Citation{{ID: user, Question: answer}},
			Incomplete:  incomplete,
			At:          time.Unix(sec, nsec).In(zone),
			AnsweredAt:  time.Unix(sec, 0).UTC(),
		}
		if utf8.ValidString(answer) {
			turn.Suggestions = []Citation{}
		}
		if data, ok := checkEncode(t, &turn); ok {
			checkDecode(t, data)
		}
	})
}

// checkEncode compares encodeTurn with json.Marshal and returns the encoding and
// whether there was one.
func checkEncode(t *testing.T, turn *Turn) ([]byte, bool) {
	t.Helper()
	want, wantErr := json.Marshal(turn)
	got, err := encodeTurn(turn)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("encodeTurn(%#v): error %v, want %v", turn, err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encodeTurn(%#v):\ngot  %s\nwant %s", turn, got, want)
	}
	return got, wantErr == nil
}
