package nlpclient

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKB(t *testing.T) {
	const ok = `tenant: t
language: zh
version: 1
synonyms:
  - [挂失, 冻结, 止付]
entries:
  - id: a
    question: 怎么挂失?
    alternates: [卡丢了]
    answer: 打电话。
    tags: [card]
`
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{name: "valid", in: ok},
		{name: "unknown key", in: strings.Replace(ok, "version: 1", "version: 1\ncolour: red", 1), wantErr: "colour"},
		{name: "unknown entry key", in: strings.Replace(ok, "    tags: [card]", "    tag: [card]", 1), wantErr: "tag"},
		{name: "bad language", in: strings.Replace(ok, "language: zh", "language: fr", 1), wantErr: `language "fr"`},
		{name: "missing language", in: strings.Replace(ok, "language: zh\n", "", 1), wantErr: "language is missing"},
		{name: "no entries", in: "tenant: t\nlanguage: en\nentries: []\n", wantErr: "no entries"},
		{name: "empty id", in: strings.Replace(ok, "id: a", `id: ""`, 1), wantErr: "empty id"},
		{name: "empty question", in: strings.Replace(ok, "question: 怎么挂失?", `question: " "`, 1), wantErr: "empty question"},
		{name: "empty answer", in: strings.Replace(ok, "answer: 打电话。", `answer: ""`, 1), wantErr: "empty answer"},
		{name: "duplicate id", in: ok + "  - {id: a, question: q, answer: x}\n", wantErr: `duplicate id "a"`},
		{name: "one-word synonym group", in: strings.Replace(ok, "[挂失, 冻结, 止付]", "[挂失]", 1), wantErr: "synonym group 1"},
		{name: "empty document", in: "", wantErr: "empty document"},
		{name: "not yaml", in: "{", wantErr: "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kb, err := ParseKB([]byte(tt.in))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKB: %v", err)
				}
				if got, want := len(kb.Entries), 1; got != want {
					t.Errorf("entries = %d, want %d", got, want)
				}
				if got, want := len(kb.Synonyms), 1; got != want {
					t.Errorf("synonym groups = %d, want %d", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseKB: no error, want one containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidKB) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseKB error = %v, want ErrInvalidKB containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadKB(t *testing.T) {
	for _, name := range []string{"bank-zh", "shop-en"} {
		kb, err := LoadKB("../kb/" + name + ".yaml")
		if err != nil {
			t.Fatalf("LoadKB(%s): %v", name, err)
		}
		if len(kb.Entries) == 0 || kb.Tenant == "" {
			t.Errorf("LoadKB(%s) = %d entries, tenant %q", name, len(kb.Entries), kb.Tenant)
		}
	}
	if _, err := LoadKB("testdata/missing.yaml"); err == nil {
		t.Error("LoadKB(missing file): no error")
	}
}
