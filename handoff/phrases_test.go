package handoff

import (
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/tenant"
)

func TestMatcherDefaults(t *testing.T) {
	m := newMatcher(tenant.DefaultHandoffPhrases)
	tests := []struct {
		message string
		want    bool
	}{
		// Chinese: phrases found anywhere in the message.
		{"转人工", true},
		{"我要转人工", true},
		{"请帮我转人工,谢谢", true},
		{"找人工", true},
		{"能不能找真人聊聊", true},
		{"真人客服在吗", true},
		// Chinese: words too common to look for inside a message, only on their own.
		{"人工", true},
		{"人工客服", true},
		{"人工服务", true},
		{"真人", true},
		{"客服", true},
		{"人工客服!", true},
		{" 人工服务。", true},
		{"人工智能是什么?", false},
		{"你们用人工智能吗", false},
		{"人工服务几点上班", false},
		{"真人秀", false},
		{"客服电话是多少", false},
		// English.
		{"human", true},
		{"Human please", true},
		{"I want to talk to someone", true},
		{"can I speak to a person?", true},
		{"I need a real person", true},
		{"get me a live agent", true},
		{"I'd like an agent", true},
		{"agent", true},
		{"Agent!", true},
		{"operator", true},
		{"person", true},
		// Whole words only, and the bare words only on their own.
		{"agentic workflows", false},
		{"humanity", false},
		{"is this humane?", false},
		{"superhuman support", false},
		{"my agent id is 42", false},
		{"which person signs the form?", false},
		{"travel agents", false},
		{"hello", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := m.match(tt.message); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.message, got, tt.want)
		}
	}
}

func TestMatcherNormalises(t *testing.T) {
	m := newMatcher(tenant.DefaultHandoffPhrases)
	for _, message := range []string{
		"HUMAN",
		"HuMaN PlEaSe",
		"ｈｕｍａｎ", // full-width letters
		"ＴＡＬＫ　ＴＯ　ＳＯＭＥＯＮＥ", // full-width letters and space
		"talk   to\tsomeone",
		"talk-to-someone!!!",
		"...talk, to someone?",
		"转人工！",
		"「转人工」",
		"  人工 ", // spaces around a whole-message phrase
		"人工？？",
		"ＡＧＥＮＴ",
		"=agent", // a customer typing the marker is still just the word
	} {
		if !m.match(message) {
			t.Errorf("match(%q) = false, want true", message)
		}
	}
	for _, message := range []string{
		"talktosomeone",
		"humans",
		"human's",
		"ｈｕｍａｎｉｔｙ",
	} {
		if m.match(message) {
			t.Errorf("match(%q) = true, want false", message)
		}
	}
}

func TestMatcherLongMessageIsAQuestion(t *testing.T) {
	m := newMatcher(tenant.DefaultHandoffPhrases)
	short := "human " + strings.Repeat("a", maxMatchedRunes-len("human "))
	if !m.match(short) {
		t.Errorf("a message of %d characters with a phrase: no match, want one", maxMatchedRunes)
	}
	long := short + "a"
	if m.match(long) {
		t.Errorf("a message of %d characters: matched, want none (a question, not a request)", maxMatchedRunes+1)
	}
	cjk := "转人工" + strings.Repeat("啊", maxMatchedRunes)
	if m.match(cjk) {
		t.Errorf("a long Chinese message: matched, want none")
	}
}

func TestMatcherTenantPhrases(t *testing.T) {
	m := newMatcher([]string{"agent please", "=help", "找客服经理", " ", "="})
	tests := []struct {
		message string
		want    bool
	}{
		{"Agent, please!", true},
		{"I said AGENT PLEASE", true},
		{"help", true},
		{"Help!", true},
		{"help me with my card", false}, // "=help" is only a message of its own
		{"我想找客服经理", true},
		// The defaults are replaced, not extended.
		{"转人工", false},
		{"human", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := m.match(tt.message); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.message, got, tt.want)
		}
	}
}

// TestDeskAsks checks the rule of handoff.phrases end to end: a tenant that sets none
// gets the defaults, one that sets some gets only those, and one that turns handoff
// off is never matched.
func TestDeskAsks(t *testing.T) {
	f := newFixture(t, options{tenants: []tenant.Config{
		{ID: string(bank)},
		{ID: string(shop), Widget: tenant.Widget{Lang: tenant.LangEN},
			Handoff: tenant.Handoff{Phrases: []string{"Speak to a banker", "=desk"}}},
		{ID: "off-c", Handoff: tenant.Handoff{Disabled: true}},
	}})
	bankT, shopT, offT := f.tenant(t, bank), f.tenant(t, shop), f.tenant(t, "off-c")
	tests := []struct {
		tn      *tenant.Tenant
		message string
		want    bool
	}{
		{bankT, "转人工", true},
		{bankT, "a real person please", true},
		{bankT, "speak to a banker", false},
		{shopT, "Can I speak to a banker?", true},
		{shopT, "DESK", true},
		{shopT, "where is the desk?", false},
		{shopT, "转人工", false},
		{shopT, "human", false},
		{offT, "转人工", false},
		{offT, "human", false},
	}
	for _, tt := range tests {
		if got := f.desk.Asks(tt.tn, tt.message); got != tt.want {
			t.Errorf("Asks(%s, %q) = %v, want %v", tt.tn.ID, tt.message, got, tt.want)
		}
	}
	// A tenant the desk was not made with has no phrases.
	stranger := &tenant.Tenant{ID: "stranger-d", Handoff: tenant.Handoff{Phrases: tenant.DefaultHandoffPhrases}}
	if f.desk.Asks(stranger, "转人工") {
		t.Error("Asks of a tenant unknown to the desk = true, want false")
	}
}

func TestDeskAfterUnresolved(t *testing.T) {
	f := newFixture(t, options{tenants: []tenant.Config{
		{ID: string(bank)},
		{ID: string(shop), Handoff: tenant.Handoff{AfterUnresolved: -1}},
		{ID: "three-c", Handoff: tenant.Handoff{AfterUnresolved: 3}},
		{ID: "off-d", Handoff: tenant.Handoff{Disabled: true, AfterUnresolved: 3}},
	}})
	for id, want := range map[tenant.ID]int{bank: 2, shop: 0, "three-c": 3, "off-d": 0} {
		if got := f.desk.AfterUnresolved(f.tenant(t, id)); got != want {
			t.Errorf("AfterUnresolved(%s) = %d, want %d", id, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, s := range []string{"转人工", "human", "ｈｕｍａｎ", "talk to someone", "人工智能", "\xff", "a'b"} {
		f.Add(s)
	}
	m := newMatcher(tenant.DefaultHandoffPhrases)
	f.Fuzz(func(t *testing.T, s string) {
		got := m.match(s)
		// Surrounding a message with spaces or punctuation changes nothing.
		if padded := " " + s + "!"; len(padded) <= 4*maxMatchedRunes && got != m.match(padded) && len([]rune(s)) < maxMatchedRunes-1 {
			t.Errorf("match(%q) = %v but match(%q) = %v", s, got, padded, !got)
		}
		n := normalize(s)
		if normalize(n) != n {
			t.Errorf("normalize is not idempotent on %q: %q then %q", s, n, normalize(n))
		}
	})
}
