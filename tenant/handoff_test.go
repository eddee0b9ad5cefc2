package tenant

import (
	"strings"
	"testing"
	"time"
)

func TestHandoffStaffed(t *testing.T) {
	h := Handoff{Hours: Hours{Timezone: "Asia/Shanghai", Days: []string{"mon", "tue", "wed", "thu", "fri"}, Open: "09:00", Close: "18:00"}}
	if err := h.validate("tenants[0]", nil); err != nil {
		t.Fatal(err)
	}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	for _, tt := range []struct {
		at    time.Time
		open  bool
		opens time.Time
	}{
		{time.Date(2026, 12, 7, 10, 0, 0, 0, sh), true, time.Time{}},                             // Monday 10:00
		{time.Date(2026, 12, 7, 8, 59, 0, 0, sh), false, time.Date(2026, 12, 7, 9, 0, 0, 0, sh)}, // before opening
		{time.Date(2026, 12, 7, 18, 0, 0, 0, sh), false, time.Date(2026, 12, 8, 9, 0, 0, 0, sh)}, // closing time
		{time.Date(2026, 12, 11, 19, 0, 0, 0, sh), false, time.Date(2026, 12, 14, 9, 0, 0, 0, sh)},
		{time.Date(2026, 12, 12, 12, 0, 0, 0, sh), false, time.Date(2026, 12, 14, 9, 0, 0, 0, sh)}, // Saturday
		{time.Date(2026, 12, 7, 1, 30, 0, 0, time.UTC), true, time.Time{}},                         // 09:30 in Shanghai
	} {
		open, opens := h.Staffed(tt.at)
		if open != tt.open || !opens.Equal(tt.opens) {
			t.Errorf("Staffed(%s) = %v, %s; want %v, %s", tt.at, open, opens, tt.open, tt.opens)
		}
	}
	var always Handoff
	if err := always.validate("t", nil); err != nil {
		t.Fatal(err)
	}
	if open, _ := always.Staffed(time.Now()); !open {
		t.Error("no hours: not staffed")
	}
}

func TestHandoffValidate(t *testing.T) {
	for _, tt := range []struct {
		h    Handoff
		want string
	}{
		{Handoff{AfterUnresolved: -2}, "t.handoff.after_unresolved"},
		{Handoff{Phrases: []string{" "}}, "t.handoff.phrases[0]"},
		{Handoff{Hours: Hours{Timezone: "Mars/Olympus", Open: "09:00", Close: "10:00"}}, "t.handoff.hours.timezone"},
		{Handoff{Hours: Hours{Days: []string{"someday"}, Open: "09:00", Close: "10:00"}}, "t.handoff.hours.days"},
		{Handoff{Hours: Hours{Open: "9am", Close: "10:00"}}, "t.handoff.hours.open"},
		{Handoff{Hours: Hours{Open: "18:00", Close: "09:00"}}, "t.handoff.hours: close"},
		{Handoff{WebhookURL: "ftp://x"}, "t.handoff.webhook_url"},
		{Handoff{WebhookURL: "https://desk.example/h"}, "t.handoff.webhook_secret: required"},
		{Handoff{WebhookURL: "https://desk.example/h", WebhookSecret: Secret{Value: "short"}}, "t.handoff.webhook_secret: 5 bytes"},
	} {
		err := tt.h.validate("t", func(string) string { return "" })
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("validate(%+v) = %v, want %q…", tt.h, err, tt.want)
		}
	}
}
