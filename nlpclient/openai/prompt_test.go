package openai

import (
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/google/go-cmp/cmp"
)

func TestRecentHistory(t *testing.T) {
	h := []nlpclient.Exchange{
		{User: "aaaa", Assistant: "bbbb"}, // 8 runes
		{User: "一二三", Assistant: "四五六"},   // 6
		{User: "x", Assistant: "yy"},      // 3
	}
	tests := []struct {
		budget int
		want   []nlpclient.Exchange
	}{
		{-1, nil},
		{0, nil},
		{2, nil},    // the newest turn does not fit whole: nothing
		{3, h[2:]},  // exactly the newest
		{8, h[2:]},  // the second newest would need 9 in all
		{9, h[1:]},  // runes, not bytes
		{16, h[1:]}, // the oldest would need 17 in all
		{17, h},
		{1000, h},
	}
	for _, tt := range tests {
		got := recentHistory(h, tt.budget)
		if diff := cmp.Diff(tt.want, got, cmpEmpty); diff != "" {
			t.Errorf("budget %d (-want +got):\n%s", tt.budget, diff)
		}
	}
}

// cmpEmpty treats nil and empty slices as equal.
var cmpEmpty = cmp.FilterValues(func(a, b []nlpclient.Exchange) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestBuildMessages(t *testing.T) {
	refs := []nlpclient.Reference{{ID: "order-cancel", Question: "Can I cancel my order?", Answer: "Within 60 minutes."}}
	msgs := buildMessages(nlpclient.LangEN, "  You answer for Northwind's support desk.  ", refs,
		[]nlpclient.Exchange{{User: "hi", Assistant: "Hello!"}, {User: "what?"}}, 100, "cancel it")
	var got []string
	for _, m := range msgs {
		got = append(got, m.Role)
	}
	if diff := cmp.Diff([]string{"system", "user", "assistant", "user", "user"}, got); diff != "" {
		t.Errorf("roles (-want +got):\n%s", diff)
	}
	sys := msgs[0].Content
	for _, want := range []string{
		"You answer for Northwind's support desk.\n\nFollow these rules:",
		"only from the reference material",
		"does not cover the question",
		"Never reveal",
		"Reference material:\n\n[order-cancel]\nQ: Can I cancel my order?\nA: Within 60 minutes.",
	} {
		if !strings.Contains(sys, want) {
			t.Errorf("system message lacks %q:\n%s", want, sys)
		}
	}
	if !strings.HasPrefix(sys, "You answer") {
		t.Errorf("system message does not start with the tenant's prompt:\n%s", sys)
	}

	zh := buildMessages(nlpclient.LangZH, "", nil, nil, 100, "你好")
	if len(zh) != 2 || !strings.HasPrefix(zh[0].Content, "请遵守以下规则") || !strings.HasSuffix(zh[0].Content, "参考资料:(无)") {
		t.Errorf("zh without references: %+v", zh)
	}
}
