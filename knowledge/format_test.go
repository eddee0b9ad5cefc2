package knowledge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/fengda-ai/fengda/nlpclient"
)

const (
	yamlType = "application/yaml"
	jsonType = "application/json"
	csvType  = "text/csv"
)

// ignoreTimes compares entries by what the files carry: YAML and CSV have no times.
var ignoreTimes = cmpopts.IgnoreFields(Entry{}, "UpdatedAt")

// problems are the FieldErrors of err, which must be an *InvalidError.
func problems(t *testing.T, err error) []FieldError {
	t.Helper()
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("error %v, want an *InvalidError", err)
	}
	return inv.Errors
}

// mustParse parses data, which must be valid.
func mustParse(t *testing.T, contentType, data, lang string) *Base {
	t.Helper()
	b, err := Parse(contentType, []byte(data), lang, DefaultLimits)
	if err != nil {
		var inv *InvalidError
		if errors.As(err, &inv) {
			t.Fatalf("Parse(%s) problems: %+v", contentType, inv.Errors)
		}
		t.Fatalf("Parse(%s) = %v", contentType, err)
	}
	return b
}

// export writes b in format, which must work.
func export(t *testing.T, b *Base, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Export(&buf, b, format); err != nil {
		t.Fatalf("Export(%s) = %v", format, err)
	}
	return buf.Bytes()
}

var formatTypes = map[string]string{FormatYAML: yamlType, FormatJSON: jsonType, FormatCSV: csvType}

// roundTrip is b exported in format and parsed back.
func roundTrip(t *testing.T, b *Base, format string) *Base {
	t.Helper()
	data := export(t, b, format)
	got, err := Parse(formatTypes[format], data, b.Language, DefaultLimits)
	if err != nil {
		t.Fatalf("Parse(Export(%s)) = %v; the file:\n%s", format, err, data)
	}
	return got
}

// trickyBase holds what each format must escape: quotes, commas, pipes, backslashes,
// newlines, tabs, Chinese, and texts YAML would read as something else.
func trickyBase() *Base {
	return &Base{
		Language: "zh",
		Synonyms: [][]string{{"挂失", "冻结", "止付"}, {"refund", "money back"}},
		Entries: []Entry{
			{
				ID:         "quotes",
				Question:   `He said "hi", then 'bye'`,
				Alternates: []string{"a|b", `back\slash`, `ends with \`, `\|`, "comma, here", `""`, "|leading", "trailing|"},
				Answer:     "line one\nline two\n\n\tindented \"quoted\", with a comma",
				Tags:       []string{"x|y", "中文", `a\`},
			},
			{
				ID:         "zh",
				Question:   "怎么开户?需要带什么,身份证吗?",
				Alternates: []string{"开户、办卡", "“引号”和「括号」"},
				Answer:     "第一行:请携带身份证。\n第二行:到网点办理。",
				Tags:       []string{"account"},
			},
			{
				ID:         "yaml-traps",
				Question:   "- not a list",
				Alternates: []string{"yes", "123", "0x1F", "1e3", "null", "~", "#not a comment", "key: value", "&anchor", "*alias", "!tag", "%percent", "@at", "`tick", "? what", "[1, 2]", "{a: b}", "---", "..."},
				Answer:     "|\n  looks like a block\n> and a folded one",
				Tags:       []string{"true", "no"},
			},
			{
				ID:       "spaces",
				Question: "q",
				Answer:   "a  b   c\n  indented line\ntrailing spaces   \n\n\nend",
			},
			{
				ID:       "unicode",
				Question: "emoji 😀 and é",
				Answer:   "separator\u2028inside, and a BOM \ufeff too",
			},
			{
				ID:       "csv-traps",
				Question: "=SUM(A1:A2)",
				Answer:   `\.`,
				Tags:     []string{" "},
			},
		},
	}
}

func TestParseMediaTypes(t *testing.T) {
	data := map[string]string{
		FormatYAML: "language: en\nentries:\n  - {id: a, question: q, answer: a}\n",
		FormatJSON: `{"language":"en","entries":[{"id":"a","question":"q","answer":"a"}]}`,
		FormatCSV:  "id,question,answer\na,q,a\n",
	}
	tests := []struct {
		contentType string
		format      string // "" for ErrUnsupported
	}{
		{"application/yaml", FormatYAML},
		{"application/x-yaml", FormatYAML},
		{"text/yaml", FormatYAML},
		{"text/x-yaml", FormatYAML},
		{"Application/YAML; charset=utf-8", FormatYAML},
		{"application/json", FormatJSON},
		{"application/json; charset=UTF-8", FormatJSON},
		{"APPLICATION/JSON", FormatJSON},
		{"text/csv", FormatCSV},
		{"text/csv;charset=utf-8;header=present", FormatCSV},
		{"text/plain", ""},
		{"application/xml", ""},
		{"multipart/form-data; boundary=x", ""},
		{"", ""},
		{"not a media type;;", ""},
		{"yaml", ""},
	}
	for _, tt := range tests {
		t.Run(tt.contentType, func(t *testing.T) {
			if tt.format == "" {
				_, err := Parse(tt.contentType, []byte(data[FormatJSON]), "en", DefaultLimits)
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("Parse(%q) = %v, want ErrUnsupported", tt.contentType, err)
				}
				if name := strings.ToLower(strings.SplitN(tt.contentType, ";", 2)[0]); !strings.Contains(strings.ToLower(err.Error()), name) {
					t.Errorf("error %q does not name the type %q", err, tt.contentType)
				}
				return
			}
			b := mustParse(t, tt.contentType, data[tt.format], "en")
			want := []Entry{{ID: "a", Question: "q", Answer: "a"}}
			if diff := cmp.Diff(want, b.Entries, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseTooLargeBeforeReading(t *testing.T) {
	lim := DefaultLimits
	lim.MaxBytes = 100
	// Not even valid: the size alone refuses it.
	data := bytes.Repeat([]byte("{"), 101)
	for _, ct := range []string{yamlType, jsonType, csvType} {
		if _, err := Parse(ct, data, "en", lim); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Parse(%s, 101 bytes, at most 100) = %v, want ErrTooLarge", ct, err)
		}
	}
	// The type is judged before the size.
	if _, err := Parse("text/plain", data, "en", lim); !errors.Is(err, ErrUnsupported) {
		t.Errorf("Parse(text/plain, too large) = %v, want ErrUnsupported", err)
	}
}

func TestParseTooManyEntries(t *testing.T) {
	lim := DefaultLimits
	lim.MaxEntries = 2
	files := map[string]string{
		yamlType: "language: en\nentries:\n  - {id: a, question: q, answer: a}\n  - {id: b, question: q, answer: a}\n  - {id: c, question: q, answer: a}\n",
		jsonType: `{"language":"en","entries":[{"id":"a","question":"q","answer":"a"},{"id":"b","question":"q","answer":"a"},{"id":"c","question":"q","answer":"a"}]}`,
		csvType:  "question,answer\nq1,a\nq2,a\nq3,a\n",
	}
	for ct, data := range files {
		if _, err := Parse(ct, []byte(data), "en", lim); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Parse(%s, 3 entries, at most 2) = %v, want ErrTooLarge", ct, err)
		}
	}
}

// The kb/ files seed the bases: they must parse as they are, into what nlpclient reads
// from them, and come back whole from every format.
func TestKBFiles(t *testing.T) {
	for _, path := range []string{"../kb/bank-zh.yaml", "../kb/shop-en.yaml"} {
		t.Run(path, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Parse("application/yaml", data, "", DefaultLimits)
			if err != nil {
				t.Fatalf("Parse(%s) = %v", path, err)
			}
			kb, err := nlpclient.ParseKB(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(kb, b.KB(kb.Tenant), cmpopts.EquateEmpty(), cmpopts.IgnoreFields(nlpclient.KB{}, "Version")); diff != "" {
				t.Errorf("Parse and nlpclient.ParseKB differ (-ParseKB +Parse):\n%s", diff)
			}
			for _, format := range []string{FormatYAML, FormatJSON, FormatCSV} {
				got := roundTrip(t, b, format)
				if diff := cmp.Diff(b.Entries, got.Entries, cmpopts.EquateEmpty(), ignoreTimes); diff != "" {
					t.Errorf("%s round trip (-want +got):\n%s", format, diff)
				}
			}
			back, err := nlpclient.ParseKB(export(t, b, FormatYAML))
			if err != nil {
				t.Fatalf("nlpclient.ParseKB(Export(yaml)) = %v", err)
			}
			if diff := cmp.Diff(kb.Entries, back.Entries, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("nlpclient.ParseKB(Export(yaml)) entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, format := range []string{FormatYAML, FormatJSON, FormatCSV} {
		t.Run(format, func(t *testing.T) {
			want := trickyBase()
			if err := Validate(want, DefaultLimits); err != nil {
				t.Fatalf("the tricky base is invalid: %v", err)
			}
			got := roundTrip(t, want, format)
			if format == FormatCSV {
				want.Synonyms = nil // CSV has no place for them
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), ignoreTimes); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// And once more: what was read back writes the same file.
			if first, second := export(t, want, format), export(t, got, format); format != FormatCSV && !bytes.Equal(first, second) {
				t.Errorf("a second export differs:\n%s\n----\n%s", first, second)
			}
		})
	}
	t.Run("yaml through nlpclient", func(t *testing.T) {
		b := trickyBase()
		Validate(b, DefaultLimits)
		kb, err := nlpclient.ParseKB(export(t, b, FormatYAML))
		if err != nil {
			t.Fatalf("nlpclient.ParseKB(Export(yaml)) = %v", err)
		}
		if diff := cmp.Diff(b.KB(""), kb, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("nlpclient.ParseKB(Export(yaml)) (-want +got):\n%s", diff)
		}
	})
}

func TestExport(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	b := &Base{Language: "en", Entries: []Entry{{ID: "a", Question: "q?", Answer: "<b>&</b>", UpdatedAt: at}}}

	t.Run("content types", func(t *testing.T) {
		for format, want := range map[string]string{
			"yaml": "application/yaml", "YML": "application/yaml",
			"json": "application/json", "csv": "text/csv; charset=utf-8",
		} {
			var buf bytes.Buffer
			got, err := Export(&buf, b, format)
			if err != nil || got != want {
				t.Errorf("Export(%s) = %q, %v; want %q", format, got, err, want)
			}
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		var buf bytes.Buffer
		if _, err := Export(&buf, b, "xml"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Export(xml) = %v, want ErrUnsupported", err)
		}
	})
	t.Run("json shape", func(t *testing.T) {
		var got map[string]any
		if err := json.Unmarshal(export(t, b, FormatJSON), &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"language": "en",
			"entries": []any{map[string]any{
				"id": "a", "question": "q?", "alternates": []any{}, "answer": "<b>&</b>", "tags": []any{},
				"updated_at": "2026-03-01T09:30:00Z",
			}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("JSON (-want +got):\n%s", diff)
		}
	})
	t.Run("json keeps updated_at, which parsing ignores", func(t *testing.T) {
		got := mustParse(t, jsonType, string(export(t, b, FormatJSON)), "")
		if !got.Entries[0].UpdatedAt.IsZero() {
			t.Errorf("parsed updated_at %v, want zero", got.Entries[0].UpdatedAt)
		}
	})
	t.Run("csv", func(t *testing.T) {
		b := &Base{Language: "zh", Synonyms: [][]string{{"a", "b"}}, Entries: []Entry{
			{ID: "a", Question: "问,题", Alternates: []string{`x|y`, `z\`}, Answer: "第一行\n第二行", Tags: []string{"t1", "t2"}},
		}}
		got := string(export(t, b, FormatCSV))
		want := "\ufeffid,question,alternates,answer,tags\n" + `a,"问,题",x\|y|z\\,"第一行` + "\n" + `第二行",t1|t2` + "\n"
		if got != want {
			t.Errorf("CSV:\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		b := &Base{Language: "zh", Synonyms: [][]string{{"挂失", "冻结"}}, Entries: []Entry{
			{ID: "a", Question: "怎么挂失?", Alternates: []string{"卡丢了"}, Answer: "第一行\n第二行", Tags: []string{"card"}},
		}}
		got := string(export(t, b, FormatYAML))
		want := `language: zh
synonyms:
  - [挂失, 冻结]
entries:
  - id: a
    question: 怎么挂失?
    alternates:
      - 卡丢了
    answer: |-
      第一行
      第二行
    tags: [card]
`
		if got != want {
			t.Errorf("YAML:\n%s\nwant\n%s", got, want)
		}
	})
}

func TestParseFormat(t *testing.T) {
	tests := []struct{ in, want string }{
		{"yaml", FormatYAML}, {"YAML", FormatYAML}, {"yml", FormatYAML}, {" json ", FormatJSON}, {"CSV", FormatCSV},
		{"application/x-yaml", FormatYAML}, {"text/csv; charset=utf-8", FormatCSV}, {"application/json", FormatJSON},
		{"xml", ""}, {"", ""}, {"text/plain", ""},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		switch {
		case tt.want == "" && !errors.Is(err, ErrUnsupported):
			t.Errorf("ParseFormat(%q) = %q, %v; want ErrUnsupported", tt.in, got, err)
		case tt.want != "" && (got != tt.want || err != nil):
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// parseCase is a file and what Parse makes of it: its entries, or its problems.
type parseCase struct {
	name    string
	data    string
	lang    string       // the tenant's language
	want    *Base        // nil when invalid
	invalid []FieldError // the problems, when invalid
}

func runParseCases(t *testing.T, contentType string, tests []parseCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(contentType, []byte(tt.data), tt.lang, DefaultLimits)
			if tt.want != nil {
				if err != nil {
					var inv *InvalidError
					errors.As(err, &inv)
					t.Fatalf("Parse = %v %+v, want a base", err, inv)
				}
				if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("base (-want +got):\n%s", diff)
				}
				return
			}
			if diff := cmp.Diff(tt.invalid, problems(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseYAML(t *testing.T) {
	one := []Entry{{ID: "a", Question: "q", Answer: "a"}}
	runParseCases(t, yamlType, []parseCase{
		{name: "minimal", data: "language: en\nentries:\n  - id: a\n    question: q\n    answer: a\n", want: &Base{Language: "en", Entries: one}},
		{name: "tenant and version ignored", data: "tenant: t\nversion: 7\nlanguage: en\nentries: [{id: a, question: q, answer: a}]\n", want: &Base{Language: "en", Entries: one}},
		{name: "the tenant's language when none", data: "entries: [{id: a, question: q, answer: a}]\n", lang: "zh", want: &Base{Language: "zh", Entries: one}},
		{name: "its own language first", data: "language: en\nentries: [{id: a, question: q, answer: a}]\n", lang: "zh", want: &Base{Language: "en", Entries: one}},
		{name: "byte order mark", data: "\ufefflanguage: en\nentries: [{id: a, question: q, answer: a}]\n", want: &Base{Language: "en", Entries: one}},
		{name: "numbers and nulls as text", data: "language: en\nentries:\n  - id: 42\n    question: 3.14\n    alternates: [~, yes]\n    answer: true\n    tags: null\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "42", Question: "3.14", Alternates: []string{"yes"}, Answer: "true"}}}},
		{name: "normalised", data: "language: en\nentries:\n  - id: a\n    question: \"  q  \"\n    alternates: [\" x \", \"\"]\n    answer: |\n      one\n      two\n    tags: [\"\", t]\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "a", Question: "q", Alternates: []string{"x"}, Answer: "one\ntwo", Tags: []string{"t"}}}}},
		{name: "aliases", data: "language: en\nentries:\n  - id: a\n    question: q\n    answer: &ans shared\n    tags: &t [x, y]\n  - id: b\n    question: q2\n    answer: *ans\n    tags: *t\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "a", Question: "q", Answer: "shared", Tags: []string{"x", "y"}}, {ID: "b", Question: "q2", Answer: "shared", Tags: []string{"x", "y"}}}}},
		{name: "synonyms", data: "language: zh\nsynonyms:\n  - [挂失, 冻结]\n  - [\" 退款 \", 退钱, \"\"]\nentries: [{id: a, question: q, answer: a}]\n",
			want: &Base{Language: "zh", Synonyms: [][]string{{"挂失", "冻结"}, {"退款", "退钱"}}, Entries: one}},

		{name: "empty", data: "", invalid: []FieldError{{Message: "the file is empty"}}},
		{name: "only a comment", data: "# nothing\n", invalid: []FieldError{{Message: "the file is empty"}}},
		{name: "no entries", data: "language: en\n", invalid: []FieldError{{Field: "entries", Message: "no entries"}}},
		{name: "empty entries", data: "language: en\nentries: []\n", invalid: []FieldError{{Field: "entries", Message: "no entries"}}},
		{name: "not a mapping", data: "- a\n- b\n", invalid: []FieldError{{Line: 1, Message: "the file is not a mapping of language, synonyms and entries"}}},
		{name: "two documents", data: "language: en\n---\nlanguage: zh\n", invalid: []FieldError{{Line: 2, Message: "more than one YAML document"}}},
		{name: "syntax", data: "language: en\nentries:\n  - id: a\n   question: q\n", invalid: []FieldError{{Line: 2, Message: "did not find expected '-' indicator"}}},
		{name: "tab indentation", data: "language: en\nentries:\n\t- id: a\n", invalid: []FieldError{{Line: 3, Message: "found character that cannot start any token"}}},
		{name: "not UTF-8", data: "language: en\nentries: [{id: a, question: \"\xff\", answer: a}]\n", invalid: []FieldError{{Message: "invalid leading UTF-8 octet"}}},
		{name: "unknown top key", data: "language: en\nfaq: []\nentries: [{id: a, question: q, answer: a}]\n",
			invalid: []FieldError{{Line: 2, Field: "faq", Message: `unknown key "faq"`}}},
		{name: "unknown entry key", data: "language: en\nentries:\n  - id: a\n    question: q\n    answer: a\n    answers: b\n",
			invalid: []FieldError{{Line: 6, Field: "answers", Message: `entry 1: unknown key "answers"`}}},
		{name: "entry key at the top", data: "language: en\nid: a\nentries: [{id: a, question: q, answer: a}]\n",
			invalid: []FieldError{{Line: 2, Field: "id", Message: `unknown key "id"`}}},
		{name: "key written twice", data: "language: en\nentries:\n  - id: a\n    question: q\n    question: r\n    answer: a\n",
			invalid: []FieldError{{Line: 5, Field: "question", Message: `entry 1: key "question" is written twice (first at line 4)`}}},
		{name: "wrong types", data: "language: [en]\nsynonyms: x\nentries:\n  - id: {a: 1}\n    question: q\n    alternates: x\n    answer: [a]\n    tags: [[t]]\n  - b\n",
			invalid: []FieldError{
				{Line: 1, Field: "language", Message: "language must be a string"},
				{Line: 2, Field: "synonyms", Message: "synonyms must be a list of lists of words"},
				{Line: 4, Field: "id", Message: "entry 1: id must be a string"},
				{Line: 6, Field: "alternates", Message: "entry 1: alternates must be a list of strings"},
				{Line: 7, Field: "answer", Message: "entry 1: answer must be a string"},
				{Line: 8, Field: "tags", Message: "entry 1: tags must be a list of strings"},
				{Line: 9, Message: "entry 2: not a mapping of id, question, alternates, answer and tags"},
			}},
		{name: "no language anywhere", data: "entries: [{id: a, question: q, answer: a}]\n",
			invalid: []FieldError{{Field: "language", Message: "language is missing (want zh or en)"}}},
		{name: "synonym group of one", data: "language: zh\nsynonyms:\n  - [挂失, 冻结]\n  - [退款]\nentries: [{id: a, question: q, answer: a}]\n",
			invalid: []FieldError{{Line: 4, Field: "synonyms", Message: "synonym group 2: needs at least two words"}}},
	})
}

func TestParseYAMLAliases(t *testing.T) {
	// Aliases that name a list again and again, but no more items than bytes.
	var ok strings.Builder
	ok.WriteString("language: en\nsynonyms:\n  - &w [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p]\n")
	ok.WriteString(strings.Repeat("  - *w\n", 200))
	ok.WriteString("entries:\n")
	for i := range 500 {
		fmt.Fprintf(&ok, "  - {id: e%d, question: q, answer: a, alternates: *w}\n", i)
	}
	b, err := Parse(yamlType, []byte(ok.String()), "en", DefaultLimits)
	if err != nil {
		t.Fatalf("Parse(aliases within the budget) = %v", err)
	}
	if len(b.Synonyms) != 201 || len(b.Entries[499].Alternates) != 16 {
		t.Errorf("%d synonym groups, last entry's alternates %q", len(b.Synonyms), b.Entries[1999].Alternates)
	}

	// A million words from 10 kB.
	bomb := "language: en\nsynonyms:\n  - &w [" + strings.Repeat("a, ", 999) + "a]\n" +
		strings.Repeat("  - *w\n", 1000) + "entries: [{id: a, question: q, answer: a}]\n"
	if _, err := Parse(yamlType, []byte(bomb), "en", DefaultLimits); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse(alias bomb) = %v, want ErrTooLarge", err)
	}

	// One long answer named by many entries is too large as JSON, which is judged
	// before it is written out.
	long := "language: en\nentries:\n  - {id: a, question: q, answer: &a " + strings.Repeat("x", 64<<10) + "}\n"
	for i := range 100 {
		long += fmt.Sprintf("  - {id: b%d, question: q, answer: *a}\n", i)
	}
	lim := DefaultLimits
	lim.MaxBytes = 1 << 20
	lim.MaxAnswerChars = 64 << 10
	if _, err := Parse(yamlType, []byte(long), "en", lim); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse(one answer named 100 times) = %v, want ErrTooLarge", err)
	}
}

func TestParseJSON(t *testing.T) {
	one := []Entry{{ID: "a", Question: "q", Answer: "a"}}
	runParseCases(t, jsonType, []parseCase{
		{name: "minimal", data: `{"language":"en","entries":[{"id":"a","question":"q","answer":"a"}]}`, want: &Base{Language: "en", Entries: one}},
		{name: "export fields ignored", data: `{"tenant":"t","version":3,"updated_at":"x","language":"en","entries":[{"id":"a","question":"q","alternates":[],"answer":"a","tags":null,"updated_at":"2026-01-01T00:00:00Z"}]}`,
			want: &Base{Language: "en", Entries: one}},
		{name: "the tenant's language when none", data: `{"entries":[{"id":"a","question":"q","answer":"a"}]}`, lang: "zh", want: &Base{Language: "zh", Entries: one}},
		{name: "byte order mark", data: "\ufeff" + `{"language":"en","entries":[{"id":"a","question":"q","answer":"a"}]}`, want: &Base{Language: "en", Entries: one}},
		{name: "synonyms and everything", data: `{"language":"zh","synonyms":[["挂失","冻结"]],"entries":[{"id":"a","question":"怎么挂失?","alternates":["卡丢了"," "],"answer":"第一行\n第二行","tags":["card"]}]}`,
			want: &Base{Language: "zh", Synonyms: [][]string{{"挂失", "冻结"}}, Entries: []Entry{{ID: "a", Question: "怎么挂失?", Alternates: []string{"卡丢了"}, Answer: "第一行\n第二行", Tags: []string{"card"}}}}},

		{name: "empty", data: "", invalid: []FieldError{{Line: 1, Message: "unexpected end of JSON input"}}},
		{name: "not an object", data: "[]", invalid: []FieldError{{Line: 1, Message: "the file is not an object of language, synonyms and entries"}}},
		{name: "no entries", data: `{"language":"en","entries":[]}`, invalid: []FieldError{{Field: "entries", Message: "no entries"}}},
		{name: "syntax", data: "{\n\"language\": \"en\",\n\"entries\": [\n{\"id\": \"a\",\n\"question\": \"q\"\n\"answer\": \"a\"}]}",
			invalid: []FieldError{{Line: 6, Message: "invalid character '\"' after object key:value pair"}}},
		{name: "cut short", data: "{\n\"language\": \"en\",\n\"entries\": [\n{\"id\": \"a\",",
			invalid: []FieldError{{Line: 4, Message: "unexpected end of JSON input"}}},
		{name: "more after the object", data: "{\"language\":\"en\",\"entries\":[{\"id\":\"a\",\"question\":\"q\",\"answer\":\"a\"}]}\n{}",
			invalid: []FieldError{{Line: 2, Message: "more after the end of the object"}}},
		{name: "unknown top member", data: "{\"language\":\"en\",\n\"faq\":[],\n\"entries\":[{\"id\":\"a\",\"question\":\"q\",\"answer\":\"a\"}]}",
			invalid: []FieldError{{Line: 2, Field: "faq", Message: `unknown member "faq"`}}},
		{name: "unknown entry member", data: "{\"language\":\"en\",\"entries\":[\n{\"id\":\"a\",\"question\":\"q\",\"answer\":\"a\"},\n{\"id\":\"b\",\"question\":\"q\",\"answer\":\"a\",\"answers\":\"b\"}]}",
			invalid: []FieldError{{Line: 3, Field: "answers", Message: `entry 2: unknown member "answers"`}}},
		{name: "member written twice", data: "{\"language\":\"en\",\n\"language\":\"zh\",\"entries\":[{\"id\":\"a\",\"question\":\"q\",\"answer\":\"a\"}]}",
			invalid: []FieldError{{Line: 2, Field: "language", Message: `member "language" is written twice (first at line 1)`}}},
		{name: "wrong types", data: "{\"language\": 1,\n\"synonyms\": \"x\",\n\"entries\": [\n{\"id\": \"a\",\n\"question\": 5,\n\"answer\": \"a\",\n\"tags\": [1]},\n7,\n{\"id\": \"c\", \"question\": \"q\", \"answer\": [\"a\"]}]}",
			invalid: []FieldError{
				{Line: 1, Field: "language", Message: "language must be a string, not number"},
				{Line: 2, Field: "synonyms", Message: "synonyms must be a list of lists, not string"},
				{Line: 5, Field: "question", Message: "entry 1: question must be a string, not number"},
				{Line: 8, Message: "entry 2: must be an object, not number"},
				{Line: 9, Field: "answer", Message: "entry 3: answer must be a string, not array"},
			}},
		{name: "entries not a list", data: "{\"language\":\"en\",\n\"entries\":{\"id\":\"a\"}}",
			invalid: []FieldError{{Line: 2, Field: "entries", Message: "entries must be a list"}}},
	})
}

func TestParseCSV(t *testing.T) {
	runParseCases(t, csvType, []parseCase{
		{name: "with ids", lang: "en", data: "id,question,alternates,answer,tags\npay,How do I pay?,paying|payment,Like this.,billing|orders\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "pay", Question: "How do I pay?", Alternates: []string{"paying", "payment"}, Answer: "Like this.", Tags: []string{"billing", "orders"}}}}},
		{name: "columns in any order and case", lang: "en", data: "Tags, ANSWER ,question,Id,alternates\nt,a,q,x,\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "x", Question: "q", Answer: "a", Tags: []string{"t"}}}}},
		{name: "only question and answer", lang: "en", data: "question,answer\nq,a\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "q", Question: "q", Answer: "a"}}}},
		{name: "byte order mark and CRLF", lang: "zh", data: "\ufeffquestion,alternates,answer,tags\r\n怎么挂失银行卡?,卡丢了,\"第一行\r\n第二行\",card\r\n",
			want: &Base{Language: "zh", Entries: []Entry{{ID: "q-d3121efe", Question: "怎么挂失银行卡?", Alternates: []string{"卡丢了"}, Answer: "第一行\n第二行", Tags: []string{"card"}}}}},
		{name: "escaped pipes", lang: "en", data: `question,alternates,answer,tags` + "\n" + `q,a\|b|c\\|d\e|\\\|,x,t\|1` + "\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "q", Question: "q", Alternates: []string{"a|b", `c\`, `d\e`, `\|`}, Answer: "x", Tags: []string{"t|1"}}}}},
		{name: "blank items dropped", lang: "en", data: "question,alternates,answer,tags\nq, x || y |,a,|\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "q", Question: "q", Alternates: []string{"x", "y"}, Answer: "a"}}}},
		{name: "blank rows skipped", lang: "en", data: "question,answer\n\nq,a\n,\n  ,\t\n",
			want: &Base{Language: "en", Entries: []Entry{{ID: "q", Question: "q", Answer: "a"}}}},
		{name: "derived ids", lang: "en", data: "question,answer\nHow do I reset my password?,a\nHow do I reset my password?,b\n\"How, do I: reset my password!\",c\n怎么挂失银行卡?,d\nCafé opening hours?,e\n???,f\n",
			want: &Base{Language: "en", Entries: []Entry{
				{ID: "how-do-i-reset-my-password", Question: "How do I reset my password?", Answer: "a"},
				{ID: "how-do-i-reset-my-password-2", Question: "How do I reset my password?", Answer: "b"},
				{ID: "how-do-i-reset-my-password-3", Question: "How, do I: reset my password!", Answer: "c"},
				{ID: "q-d3121efe", Question: "怎么挂失银行卡?", Answer: "d"},
				{ID: "q-1b2f4bf5", Question: "Café opening hours?", Answer: "e"},
				{ID: "q-a03b221c", Question: "???", Answer: "f"},
			}}},
		{name: "derived ids avoid given ones", lang: "en", data: "id,question,answer\n,Pay,a\npay,Other,b\n , Pay ,c\n",
			want: &Base{Language: "en", Entries: []Entry{
				{ID: "pay-2", Question: "Pay", Answer: "a"},
				{ID: "pay", Question: "Other", Answer: "b"},
				{ID: "pay-3", Question: "Pay", Answer: "c"},
			}}},

		{name: "empty", lang: "en", data: "", invalid: []FieldError{{Message: "the file is empty"}}},
		{name: "header only", lang: "en", data: "question,answer\n", invalid: []FieldError{{Field: "entries", Message: "no entries"}}},
		{name: "no language", data: "question,answer\nq,a\n", invalid: []FieldError{{Field: "language", Message: "language is missing (want zh or en)"}}},
		{name: "bad header", lang: "en", data: "question,reply,question,notes\nq,a,q,n\n", invalid: []FieldError{
			{Line: 1, Field: "reply", Message: `unknown column "reply" (want id, question, alternates, answer and tags)`},
			{Line: 1, Field: "question", Message: "column question is written twice"},
			{Line: 1, Field: "notes", Message: `unknown column "notes" (want id, question, alternates, answer and tags)`},
			{Line: 1, Field: "answer", Message: "no column answer"},
		}},
		{name: "wrong widths", lang: "en", data: "question,answer\nq1,a\nq2\nq3,a,extra\n\"q4\nstill q4\",a\nq5\n",
			invalid: []FieldError{
				{Line: 3, Message: "1 fields, but the header has 2"},
				{Line: 4, Message: "3 fields, but the header has 2"},
				{Line: 5, Field: "question", Message: "entry 4: question holds the control character U+000A"},
				{Line: 7, Message: "1 fields, but the header has 2"},
			}},
		{name: "syntax ends the reading", lang: "en", data: "question,answer\nq1,\nq2,\"a\"b\nq3,\n",
			invalid: []FieldError{{Line: 3, Message: `extraneous or missing " in quoted-field`}}},
		{name: "not UTF-8", lang: "en", data: "question,answer\nq\xff,a\n", invalid: []FieldError{
			{Line: 2, Field: "question", Message: "entry 1: question is not valid UTF-8"},
		}},
	})
}

// A file with many problems lists them all, each at its line, in line order.
func TestParseListsEveryProblem(t *testing.T) {
	t.Run("yaml", func(t *testing.T) {
		data := `tenant: t
language: zh
synonyms:
  - [挂失]
entries:
  - id: ok
    question: 好的问题
    answer: 好的回答
  - id: "bad id"
    question: "  "
    answer: 回答
  - id: ok
    question: 问题
    alternates:
      - "` + strings.Repeat("长", 501) + `"
    answer: "\x00"
    tags: [a, b]
    color: red
  - question: 问题
    answer: 回答
`
		got := problems(t, func() error { _, err := Parse(yamlType, []byte(data), "", DefaultLimits); return err }())
		want := []FieldError{
			{Line: 4, Field: "synonyms", Message: "synonym group 1: needs at least two words"},
			{Line: 9, Field: "id", Message: `entry 2: id "bad id" may hold only A-Z, a-z, 0-9, _ and -`},
			{Line: 10, Field: "question", Message: "entry 2: question is empty"},
			{Line: 12, Field: "id", Message: `entry 3: id "ok" is also entry 1's`},
			{Line: 14, Field: "alternates", Message: "entry 3: alternate 1 is 501 characters, at most 500"},
			{Line: 16, Field: "answer", Message: "entry 3: answer holds the control character U+0000"},
			{Line: 18, Field: "color", Message: `entry 3: unknown key "color"`},
			{Line: 19, Field: "id", Message: "entry 4: id is empty"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
	})
	t.Run("json", func(t *testing.T) {
		data := `{
  "language": "zh",
  "entries": [
    {"id": "ok", "question": "好的问题", "answer": "好的回答"},
    {"id": "bad id", "question": "  ", "answer": "回答"},
    {"id": "ok", "question": "问题", "answer": "", "color": "red"}
  ]
}`
		got := problems(t, func() error { _, err := Parse(jsonType, []byte(data), "", DefaultLimits); return err }())
		want := []FieldError{
			{Line: 5, Field: "id", Message: `entry 2: id "bad id" may hold only A-Z, a-z, 0-9, _ and -`},
			{Line: 5, Field: "question", Message: "entry 2: question is empty"},
			{Line: 6, Field: "color", Message: `entry 3: unknown member "color"`},
			{Line: 6, Field: "answer", Message: "entry 3: answer is empty"},
			{Line: 6, Field: "id", Message: `entry 3: id "ok" is also entry 1's`},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
	})
	t.Run("csv", func(t *testing.T) {
		data := "id,question,alternates,answer,tags\n" +
			"ok,好的问题,,好的回答,\n" +
			"bad id,  ,,回答,\n" +
			"ok,问题,,\"多行\n回答\x00\",\n" +
			"x,问题,,回答\n" +
			"y,问题,,回答," + strings.Repeat("a|", 21) + "\n"
		got := problems(t, func() error { _, err := Parse(csvType, []byte(data), "zh", DefaultLimits); return err }())
		want := []FieldError{
			{Line: 3, Field: "id", Message: `entry 2: id "bad id" may hold only A-Z, a-z, 0-9, _ and -`},
			{Line: 3, Field: "question", Message: "entry 2: question is empty"},
			{Line: 4, Field: "answer", Message: "entry 3: answer holds the control character U+0000"},
			{Line: 4, Field: "id", Message: `entry 3: id "ok" is also entry 1's`},
			{Line: 6, Message: "4 fields, but the header has 5"},
			{Line: 7, Field: "tags", Message: "entry 5: 21 tags, at most 20"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("problems (-want +got):\n%s", diff)
		}
	})
}

func TestDeriveID(t *testing.T) {
	tests := []struct {
		question string
		max      int
		want     string
	}{
		{"How do I reset my password?", 64, "how-do-i-reset-my-password"},
		{"  What's   the WiFi password?? ", 64, "what-s-the-wifi-password"},
		{"Can I change the items in my order after I've placed it and paid?", 64, "can-i-change-the-items-in-my-order-after"},
		{"Supercalifragilisticexpialidocious-and-more-and-more-and-more", 64, "supercalifragilisticexpialidocious-and"},
		{strings.Repeat("x", 50), 64, strings.Repeat("x", 40)},
		{"How do I reset my password?", 12, "how-do-i"},
		{"怎么挂失银行卡?", 64, "q-d3121efe"},
		{"  怎么挂失银行卡? ", 64, "q-d3121efe"},
		{"Café opening hours?", 64, "q-1b2f4bf5"},
		{"???", 64, "q-a03b221c"},
	}
	for _, tt := range tests {
		if got := deriveID(tt.question, tt.max); got != tt.want {
			t.Errorf("deriveID(%q, %d) = %q, want %q", tt.question, tt.max, got, tt.want)
		}
		if got := deriveID(tt.question, tt.max); len(got) > tt.max || strings.ContainsFunc(got, func(r rune) bool { return !isIDRune(r) }) {
			t.Errorf("deriveID(%q) = %q, not a valid id", tt.question, got)
		}
	}
}

func TestPipes(t *testing.T) {
	tests := []struct {
		cell  string
		items []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a|b", []string{"a", "b"}},
		{`a\|b`, []string{"a|b"}},
		{`a\\|b`, []string{`a\`, "b"}},
		{`a\\\|b`, []string{`a\|b`}},
		{`|`, []string{"", ""}},
		{`\|`, []string{"|"}},
		{`a\`, []string{`a\`}},
	}
	for _, tt := range tests {
		if got := splitPipes(tt.cell); !cmp.Equal(got, tt.items) {
			t.Errorf("splitPipes(%q) = %q, want %q", tt.cell, got, tt.items)
		}
	}
	// Whatever the items, joining and splitting gives them back.
	for _, items := range [][]string{{"a"}, {`a\`, "b"}, {"|", `\`, `\\|`, "x|y|"}, {`\a`, "中|文"}} {
		if got := splitPipes(joinPipes(items)); !cmp.Equal(got, items) {
			t.Errorf("splitPipes(joinPipes(%q)) = %q", items, got)
		}
	}
}

// fuzzParse checks that Parse of data never panics, and that what it accepts is valid
// and comes back the same from every format.
func fuzzParse(t *testing.T, contentType string, data []byte) {
	lim := DefaultLimits
	lim.MaxBytes = 1 << 20
	b, err := Parse(contentType, data, "en", lim)
	if err != nil {
		var inv *InvalidError
		if !errors.As(err, &inv) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Parse = %v, want an *InvalidError or ErrTooLarge", err)
		}
		if inv != nil && len(inv.Errors) == 0 {
			t.Fatal("an *InvalidError without problems")
		}
		return
	}
	if err := Validate(b, lim); err != nil {
		t.Fatalf("Validate(Parse(…)) = %v", err)
	}
	for _, format := range []string{FormatYAML, FormatJSON, FormatCSV} {
		var buf bytes.Buffer
		if _, err := Export(&buf, b, format); err != nil {
			t.Fatalf("Export(%s) = %v", format, err)
		}
		got, err := Parse(formatTypes[format], buf.Bytes(), b.Language, DefaultLimits)
		if err != nil {
			t.Fatalf("Parse(Export(%s)) = %v; the file:\n%q", format, err, buf.Bytes())
		}
		want := b
		if format == FormatCSV {
			w := *b
			w.Synonyms = nil
			want = &w
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), ignoreTimes); diff != "" {
			t.Fatalf("%s round trip (-want +got):\n%s\nthe file:\n%q", format, diff, buf.Bytes())
		}
		if format == FormatYAML {
			if _, err := nlpclient.ParseKB(buf.Bytes()); err != nil {
				t.Fatalf("nlpclient.ParseKB(Export(yaml)) = %v; the file:\n%q", err, buf.Bytes())
			}
		}
	}
}

// fuzzSeeds adds to f the tricky base in format, a few broken files, and the kb/ files
// when the format is YAML.
func fuzzSeeds(f *testing.F, format string, broken ...string) {
	b := trickyBase()
	Validate(b, DefaultLimits)
	var buf bytes.Buffer
	if _, err := Export(&buf, b, format); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	for _, s := range broken {
		f.Add([]byte(s))
	}
}

func FuzzParseYAML(f *testing.F) {
	fuzzSeeds(f, FormatYAML,
		"language: en\nentries: [{id: a, question: q, answer: a}]\n",
		"language: en\nentries:\n  - id: a\n    question: &q q\n    answer: *q\n    tags: [x]\n",
		"language: zh\nsynonyms: [[a, b]]\nentries:\n  - id: a\n    question: q\n    answer: |\n      a\n       b\n",
		"entries: [{id: 1, question: 2, answer: 3}]\n",
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, yamlType, data) })
}

func FuzzParseJSON(f *testing.F) {
	fuzzSeeds(f, FormatJSON,
		`{"language":"en","entries":[{"id":"a","question":"q","answer":"a"}]}`,
		`{"entries":[{"id":"a","question":"q\u0000","answer":"a\r\nb","tags":["\u2028"]}]}`,
		`{"language":"zh","synonyms":[["a","b"]],"entries":[{"id":"a","question":"q","answer":"a","updated_at":null}]}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, jsonType, data) })
}

func FuzzParseCSV(f *testing.F) {
	fuzzSeeds(f, FormatCSV,
		"question,answer\nq,a\n",
		"question,alternates,answer,tags\n\"q,1\",a\\|b|c,\"x\ny\",t\n",
		"id,question,answer\n,Pay,a\npay,Pay,b\n",
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzParse(t, csvType, data) })
}
