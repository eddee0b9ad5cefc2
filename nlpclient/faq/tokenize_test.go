package faq

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/internal/fold"
	"github.com/google/go-cmp/cmp"
)

func texts(toks []token) []string {
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		out = append(out, t.text)
	}
	return out
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		name     string
		synonyms [][]string
		in       string
		want     []string
	}{
		{name: "chinese unigrams and bigrams", in: "挂失银行卡", want: []string{"挂", "失", "挂失", "银", "失银", "行", "银行", "卡", "行卡"}},
		{name: "punctuation splits runs", in: "转账,限额", want: []string{"转", "账", "转账", "限", "额", "限额"}},
		{name: "stop characters only in bigrams", in: "卡的", want: []string{"卡", "卡的"}},
		{name: "full-width folded", in: "ＡＴＭ取款１２３", want: []string{"atm", "取", "款", "取款", "123"}},
		{name: "ascii word inside chinese", in: "U盾丢了", want: []string{"u", "盾", "丢", "盾丢", "失", "丢失"}},
		{name: "english stop words and stems", in: "Where are my packages shipping?", want: []string{"package", "ship"}},
		{name: "english apostrophes", in: "I don’t see what's wrong", want: []string{"see", "wrong"}},
		{name: "stems", in: "replies boxes shipped returns", want: []string{"reply", "box", "ship", "return"}},
		{name: "word synonyms", synonyms: [][]string{{"refund", "money back"}}, in: "get my money back", want: []string{"refund"}},
		{name: "cjk synonyms", synonyms: [][]string{{"挂失", "止付"}}, in: "止付", want: []string{"挂", "失", "挂失"}},
		{name: "invalid utf-8", in: "x\xffbc", want: []string{"x", "bc"}},
		{name: "empty", in: "", want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			syn := tt.synonyms
			if syn == nil {
				syn = builtinSynonyms[nlpclient.LangZH]
			}
			got := texts(newTokenizer(syn).tokenize(tt.in))
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("tokenize(%q) (-got +want):\n%s", tt.in, diff)
			}
		})
	}
}

func TestStem(t *testing.T) {
	tests := []struct{ in, want string }{
		{"deliveries", "delivery"}, {"charges", "charge"}, {"address", "address"}, {"status", "status"},
		{"shipping", "ship"}, {"ordered", "order"}, {"refunding", "refund"}, {"bus", "bus"},
	}
	for _, tt := range tests {
		if got := stem(tt.in); got != tt.want {
			t.Errorf("stem(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCorrect(t *testing.T) {
	f := newTestFAQ(t, "shop-en")
	tests := []struct{ in, want string }{
		{"acount", "account"}, {"adjustmnet", "adjustment"}, {"wokr", "work"}, {"zzzzzz", ""},
	}
	for _, tt := range tests {
		got := ""
		if id := f.ix.correct(tt.in); id >= 0 {
			got = f.ix.text[id]
		}
		if got != tt.want {
			t.Errorf("correct(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"挂失银行卡", "ＡＴＭ取款１２３", "U盾丢了", "Where are my packages?", "a\xffbc", "", "money back!!", "　", "I'''m", "ß"} {
		f.Add(s)
	}
	tok := newTokenizer(append(builtinSynonyms[nlpclient.LangZH], builtinSynonyms[nlpclient.LangEN]...))
	f.Fuzz(func(t *testing.T, s string) {
		for _, tk := range tok.tokenize(s) {
			if tk.text == "" || !utf8.ValidString(tk.text) {
				t.Fatalf("tokenize(%q): bad token %q", s, tk.text)
			}
			if strings.ContainsFunc(tk.text, func(r rune) bool { return r == ' ' || r == '\'' }) {
				t.Fatalf("tokenize(%q): token %q holds a separator", s, tk.text)
			}
			if n := utf8.RuneCountInString(tk.text); (tk.kind == kindUnigram && n != 1) || (tk.kind == kindBigram && n != 2) {
				t.Fatalf("tokenize(%q): token %q of kind %d has %d runes", s, tk.text, tk.kind, n)
			}
		}
	})
}

func TestTraditionalFolds(t *testing.T) {
	bank := newTestFAQ(t, "bank-zh")
	for _, tt := range []struct{ trad, simp string }{
		{"借記卡丟了怎麼掛失", "借记卡丢了怎么挂失"},
		{"轉帳手續費", "转账手续费"},
		{"ＡＴＭ取錢", "atm取钱"},
	} {
		if got := fold.String(tt.trad); got != tt.simp {
			t.Errorf("fold.String(%q) = %q, want %q", tt.trad, got, tt.simp)
		}
	}
	got, err := bank.Answer(t.Context(), nlpclient.Request{Message: "借記卡丟了怎麼掛失?"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != nlpclient.SourceFAQ || got.Citations[0].ID != "debit-card-lost" {
		t.Errorf("traditional question: %s %v, want faq debit-card-lost", got.Source, got.Citations)
	}
}
