package knowledge

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// goodEntry is a valid entry; tests change one thing of it.
func goodEntry(id string) Entry {
	return Entry{
		ID:         id,
		Question:   "怎么挂失银行卡?",
		Alternates: []string{"卡丢了怎么办", "card lost"},
		Answer:     "请拨打客服热线。\n\t24 小时服务。",
		Tags:       []string{"card"},
	}
}

func goodBase() *Base {
	return &Base{
		Language: "zh",
		Synonyms: [][]string{{"挂失", "冻结", "止付"}},
		Entries:  []Entry{goodEntry("card-lost"), goodEntry("card_lost_2")},
	}
}

func TestValidateAcceptsGoodBase(t *testing.T) {
	for _, lang := range []string{"zh", "en"} {
		b := goodBase()
		b.Language = lang
		if err := Validate(b, DefaultLimits); err != nil {
			t.Errorf("Validate(language %s) = %v, want nil", lang, err)
		}
	}
}

func TestValidateEntryRules(t *testing.T) {
	lim := DefaultLimits
	tests := []struct {
		name   string
		change func(e *Entry)
		want   []FieldError // nil: valid
	}{
		{"valid", func(e *Entry) {}, nil},
		{"id at the limit", func(e *Entry) { e.ID = strings.Repeat("a", 64) }, nil},
		{"id of every allowed character", func(e *Entry) { e.ID = "AZaz09_-" }, nil},
		{"empty id", func(e *Entry) { e.ID = "" }, []FieldError{{Field: "id", Message: "id is empty"}}},
		{"id too long", func(e *Entry) { e.ID = strings.Repeat("a", 65) }, []FieldError{
			{Field: "id", Message: `id "` + strings.Repeat("a", 64) + `"… is longer than 64 characters`},
		}},
		{"id with a space", func(e *Entry) { e.ID = "card lost" }, []FieldError{
			{Field: "id", Message: `id "card lost" may hold only A-Z, a-z, 0-9, _ and -`},
		}},
		{"id with a dot", func(e *Entry) { e.ID = "card.lost" }, []FieldError{
			{Field: "id", Message: `id "card.lost" may hold only A-Z, a-z, 0-9, _ and -`},
		}},
		{"id in Chinese", func(e *Entry) { e.ID = "挂失" }, []FieldError{
			{Field: "id", Message: `id "挂失" may hold only A-Z, a-z, 0-9, _ and -`},
		}},
		{"empty question", func(e *Entry) { e.Question = "" }, []FieldError{{Field: "question", Message: "question is empty"}}},
		{"blank question", func(e *Entry) { e.Question = " \t\n " }, []FieldError{{Field: "question", Message: "question is empty"}}},
		{"question of 500 Chinese characters", func(e *Entry) { e.Question = strings.Repeat("问", 500) }, nil},
		{"question of 501 characters", func(e *Entry) { e.Question = strings.Repeat("问", 501) }, []FieldError{
			{Field: "question", Message: "question is 501 characters, at most 500"},
		}},
		{"question far too long", func(e *Entry) { e.Question = strings.Repeat("a", 2001) }, []FieldError{
			{Field: "question", Message: "question is longer than 500 characters"},
		}},
		{"question not UTF-8", func(e *Entry) { e.Question = "ab\xffc" }, []FieldError{
			{Field: "question", Message: "question is not valid UTF-8"},
		}},
		{"question with NUL", func(e *Entry) { e.Question = "a\x00b" }, []FieldError{
			{Field: "question", Message: "question holds the control character U+0000"},
		}},
		{"question with a newline", func(e *Entry) { e.Question = "a\nb" }, []FieldError{
			{Field: "question", Message: "question holds the control character U+000A"},
		}},
		{"question with a C1 control", func(e *Entry) { e.Question = "a\u0085b" }, []FieldError{
			{Field: "question", Message: "question holds the control character U+0085"},
		}},
		{"alternates at the limit", func(e *Entry) { e.Alternates = make([]string, 50); fill(e.Alternates, "x") }, nil},
		{"too many alternates", func(e *Entry) { e.Alternates = make([]string, 51); fill(e.Alternates, "x") }, []FieldError{
			{Field: "alternates", Message: "51 alternates, at most 50"},
		}},
		{"alternate too long", func(e *Entry) { e.Alternates[1] = strings.Repeat("é", 501) }, []FieldError{
			{Field: "alternates", Message: "alternate 2 is 501 characters, at most 500"},
		}},
		{"alternate not UTF-8", func(e *Entry) { e.Alternates[0] = "\xc3" }, []FieldError{
			{Field: "alternates", Message: "alternate 1 is not valid UTF-8"},
		}},
		{"alternate with a tab", func(e *Entry) { e.Alternates[0] = "a\tb" }, []FieldError{
			{Field: "alternates", Message: "alternate 1 holds the control character U+0009"},
		}},
		{"empty answer", func(e *Entry) { e.Answer = "  " }, []FieldError{{Field: "answer", Message: "answer is empty"}}},
		{"answer with newlines and tabs", func(e *Entry) { e.Answer = "a\n\tb\n\nc" }, nil},
		{"answer with NUL", func(e *Entry) { e.Answer = "a\x00b" }, []FieldError{
			{Field: "answer", Message: "answer holds the control character U+0000"},
		}},
		{"answer with a lone carriage return", func(e *Entry) { e.Answer = "a\rb" }, []FieldError{
			{Field: "answer", Message: "answer holds the control character U+000D"},
		}},
		{"answer with DEL", func(e *Entry) { e.Answer = "a\x7fb" }, []FieldError{
			{Field: "answer", Message: "answer holds the control character U+007F"},
		}},
		{"answer not UTF-8", func(e *Entry) { e.Answer = "\xed\xa0\x80" }, []FieldError{
			{Field: "answer", Message: "answer is not valid UTF-8"},
		}},
		{"answer of 8000 characters", func(e *Entry) { e.Answer = strings.Repeat("答", 8000) }, nil},
		{"answer of 8001 characters", func(e *Entry) { e.Answer = strings.Repeat("答", 8001) }, []FieldError{
			{Field: "answer", Message: "answer is 8001 characters, at most 8000"},
		}},
		{"tags at the limit", func(e *Entry) { e.Tags = make([]string, 20); fill(e.Tags, "t") }, nil},
		{"too many tags", func(e *Entry) { e.Tags = make([]string, 21); fill(e.Tags, "t") }, []FieldError{
			{Field: "tags", Message: "21 tags, at most 20"},
		}},
		{"tag too long", func(e *Entry) { e.Tags = []string{"ok", strings.Repeat("标", 51)} }, []FieldError{
			{Field: "tags", Message: "tag 2 is 51 characters, at most 50"},
		}},
		{"tag with a control character", func(e *Entry) { e.Tags = []string{"a\x1bb"} }, []FieldError{
			{Field: "tags", Message: "tag 1 holds the control character U+001B"},
		}},
		{"tag not UTF-8", func(e *Entry) { e.Tags = []string{"\x80"} }, []FieldError{
			{Field: "tags", Message: "tag 1 is not valid UTF-8"},
		}},
		{"time out of range", func(e *Entry) { e.UpdatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, []FieldError{
			{Field: "updated_at", Message: "updated_at year 10000 is outside 0 to 9999"},
		}},
		{"every field wrong", func(e *Entry) {
			*e = Entry{ID: "a/b", Question: "\x01", Alternates: []string{"\xff"}, Answer: "", Tags: []string{"\x00"}}
		}, []FieldError{
			{Field: "id", Message: `id "a/b" may hold only A-Z, a-z, 0-9, _ and -`},
			{Field: "question", Message: "question holds the control character U+0001"},
			{Field: "alternates", Message: "alternate 1 is not valid UTF-8"},
			{Field: "answer", Message: "answer is empty"},
			{Field: "tags", Message: "tag 1 holds the control character U+0000"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := goodEntry("card-lost")
			tt.change(&e)
			got := ValidateEntry(&e, lim)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ValidateEntry problems (-want +got):\n%s", diff)
			}
		})
	}
}

func fill(l []string, prefix string) {
	for i := range l {
		l[i] = prefix + strings.Repeat("x", i)
	}
}

func TestValidateEntryNormalises(t *testing.T) {
	e := Entry{
		ID:         "a",
		Question:   "  How do I pay? \n",
		Alternates: []string{" one ", "", "   ", "two", "\tthree"},
		Answer:     "\r\n Line one\r\nline two\n\t\r\n",
		Tags:       []string{"", " billing ", "orders"},
	}
	if errs := ValidateEntry(&e, DefaultLimits); len(errs) > 0 {
		t.Fatalf("ValidateEntry = %v, want none", errs)
	}
	want := Entry{
		ID:         "a",
		Question:   "How do I pay?",
		Alternates: []string{"one", "two", "three"},
		Answer:     "Line one\nline two",
		Tags:       []string{"billing", "orders"},
	}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("normalised entry (-want +got):\n%s", diff)
	}

	empty := Entry{ID: "a", Question: "q", Answer: "a", Alternates: []string{" ", ""}, Tags: []string{""}}
	ValidateEntry(&empty, DefaultLimits)
	if empty.Alternates != nil || empty.Tags != nil {
		t.Errorf("alternates %q, tags %q: want both nil once the blank ones are dropped", empty.Alternates, empty.Tags)
	}
}

func TestValidateDoesNotWriteIntoSharedSlices(t *testing.T) {
	orig := goodBase()
	orig.Entries[0].Alternates = []string{" spaced ", ""}
	orig.Synonyms = [][]string{{" 挂失 ", "冻结", ""}}
	clone := *orig
	clone.Entries = append([]Entry(nil), orig.Entries...)
	if err := Validate(&clone, DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if got := orig.Entries[0].Alternates; !cmp.Equal(got, []string{" spaced ", ""}) {
		t.Errorf("the original's alternates are %q after validating a clone", got)
	}
	if got := orig.Synonyms[0]; !cmp.Equal(got, []string{" 挂失 ", "冻结", ""}) {
		t.Errorf("the original's synonyms are %q after validating a clone", got)
	}
	if got := clone.Synonyms[0]; !cmp.Equal(got, []string{"挂失", "冻结"}) {
		t.Errorf("the clone's synonyms are %q, want them trimmed", got)
	}
}

// Validating a normal base only reads it, so replicas may validate a version they
// share; the race detector checks.
func TestValidateOnlyReadsNormalBase(t *testing.T) {
	b := goodBase()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := Validate(b, DefaultLimits); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestValidateBaseRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(b *Base)
		want   []FieldError
	}{
		{"no language", func(b *Base) { b.Language = "" }, []FieldError{
			{Field: "language", Message: "language is missing (want zh or en)"},
		}},
		{"another language", func(b *Base) { b.Language = "fr" }, []FieldError{
			{Field: "language", Message: `language "fr" is not supported (want zh or en)`},
		}},
		{"upper-case language", func(b *Base) { b.Language = "ZH" }, []FieldError{
			{Field: "language", Message: `language "ZH" is not supported (want zh or en)`},
		}},
		{"no entries", func(b *Base) { b.Entries = nil }, nil},
		{"no synonyms", func(b *Base) { b.Synonyms = nil }, nil},
		{"synonym group of one", func(b *Base) { b.Synonyms = append(b.Synonyms, []string{"退款"}) }, []FieldError{
			{Field: "synonyms", Message: "synonym group 2: needs at least two words"},
		}},
		{"synonym group of one and a blank", func(b *Base) { b.Synonyms = [][]string{{"退款", "  "}} }, []FieldError{
			{Field: "synonyms", Message: "synonym group 1: needs at least two words"},
		}},
		{"empty synonym group", func(b *Base) { b.Synonyms = [][]string{{}} }, []FieldError{
			{Field: "synonyms", Message: "synonym group 1: needs at least two words"},
		}},
		{"synonym not UTF-8", func(b *Base) { b.Synonyms = [][]string{{"a", "\xff"}} }, []FieldError{
			{Field: "synonyms", Message: "synonym group 1: word 2 is not valid UTF-8"},
		}},
		{"synonym with a control character", func(b *Base) { b.Synonyms = [][]string{{"a\x00", "b"}} }, []FieldError{
			{Field: "synonyms", Message: "synonym group 1: word 1 holds the control character U+0000"},
		}},
		{"duplicate id", func(b *Base) { b.Entries = append(b.Entries, goodEntry("card-lost")) }, []FieldError{
			{Field: "id", Message: `entry 3: id "card-lost" is also entry 1's`},
		}},
		{"two empty ids are not duplicates", func(b *Base) { b.Entries[0].ID, b.Entries[1].ID = "", "" }, []FieldError{
			{Field: "id", Message: "entry 1: id is empty"},
			{Field: "id", Message: "entry 2: id is empty"},
		}},
		{"ids differing in case are distinct", func(b *Base) { b.Entries[0].ID, b.Entries[1].ID = "a", "A" }, nil},
		{"every problem, in order", func(b *Base) {
			b.Language = "de"
			b.Synonyms = [][]string{{"x"}}
			b.Entries[0].Question = ""
			b.Entries[1].ID = "card-lost"
			b.Entries[1].Answer = "\x00"
		}, []FieldError{
			{Field: "language", Message: `language "de" is not supported (want zh or en)`},
			{Field: "synonyms", Message: "synonym group 1: needs at least two words"},
			{Field: "question", Message: "entry 1: question is empty"},
			{Field: "answer", Message: "entry 2: answer holds the control character U+0000"},
			{Field: "id", Message: `entry 2: id "card-lost" is also entry 1's`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := goodBase()
			tt.change(b)
			err := Validate(b, DefaultLimits)
			var got []FieldError
			var inv *InvalidError
			if errors.As(err, &inv) {
				got = inv.Errors
			} else if err != nil {
				t.Fatalf("Validate = %v, want nil or *InvalidError", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Validate problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateTooLarge(t *testing.T) {
	small := DefaultLimits
	small.MaxEntries = 2
	small.MaxBytes = 2000

	t.Run("entries", func(t *testing.T) {
		b := goodBase()
		b.Entries = append(b.Entries, goodEntry("third"))
		// Invalid too, but the size is judged first.
		b.Entries[0].Question = ""
		if err := Validate(b, small); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Validate(3 entries, at most 2) = %v, want ErrTooLarge", err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		b := goodBase()
		b.Entries[0].Answer = strings.Repeat("a", 1900)
		if err := Validate(b, small); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Validate(over 2000 bytes) = %v, want ErrTooLarge", err)
		}
	})
	t.Run("bytes of escaped JSON", func(t *testing.T) {
		// 300 "<" are 300 bytes as text but 1800 as JSON, which escapes them.
		b := goodBase()
		b.Entries[0].Answer = strings.Repeat("<", 300)
		if err := Validate(b, small); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Validate(over 2000 bytes as JSON) = %v, want ErrTooLarge", err)
		}
	})
	t.Run("bytes within", func(t *testing.T) {
		if err := Validate(goodBase(), small); err != nil {
			t.Errorf("Validate(small base) = %v, want nil", err)
		}
	})
	t.Run("zero limits are the defaults", func(t *testing.T) {
		b := goodBase()
		b.Entries[0].Answer = strings.Repeat("答", 8001)
		var inv *InvalidError
		if err := Validate(b, Limits{}); !errors.As(err, &inv) || inv.Errors[0].Message != "entry 1: answer is 8001 characters, at most 8000" {
			t.Errorf("Validate(zero limits) = %v, want the default answer limit", err)
		}
	})
}
