package faq

import (
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
)

// confidentMsg is a question the bank's knowledge base answers confidently.
const confidentMsg = "怎么开立青禾银行的借记卡账户?"

func TestReferences(t *testing.T) {
	f := newTestFAQ(t, "bank-zh")
	tests := []struct {
		name    string
		req     nlpclient.Request
		k       int
		wantLen int
		first   string
	}{
		{"best first", nlpclient.Request{Message: confidentMsg}, 3, 3, "account-open"},
		{"one", nlpclient.Request{Message: confidentMsg}, 1, 1, "account-open"},
		{"none asked", nlpclient.Request{Message: confidentMsg}, 0, 0, ""},
		{"a search keeps five", nlpclient.Request{Message: confidentMsg}, 10, topK, "account-open"},
		{"nothing matches", nlpclient.Request{Message: "zzzz qqqq"}, 3, 0, ""},
		{"follow-up uses history", nlpclient.Request{
			Message: "那要带什么证件?",
			History: []nlpclient.Exchange{{User: confidentMsg, Assistant: "请到网点办理。", Citations: []nlpclient.Citation{{ID: "account-open"}}}},
		}, 3, 3, "account-open-docs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := f.References(tt.req, tt.k)
			if len(got) != tt.wantLen {
				t.Fatalf("%d references %v, want %d", len(got), got, tt.wantLen)
			}
			if tt.first != "" && got[0].ID != tt.first {
				t.Errorf("first reference %s, want %s", got[0].ID, tt.first)
			}
			seen := map[string]bool{}
			for _, r := range got {
				e, ok := f.Entry(r.ID)
				if !ok || e.Question != r.Question || e.Answer != r.Answer || seen[r.ID] {
					t.Errorf("reference %+v does not match its entry, or repeats", r)
				}
				seen[r.ID] = true
			}
		})
	}
}
