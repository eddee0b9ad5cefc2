package handoff

import (
	"strings"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// The built-in notices, by the widget's language.
var notices = map[string]struct{ waiting, closed, offline string }{
	tenant.LangZH: {
		waiting: "正在为您转接人工客服,请稍候。",
		closed:  "现在不在人工客服的服务时间。您的留言已保留,人工客服将于 {opens} 上班后尽快回复您。",
		offline: "目前没有在线的人工客服。您的留言已保留,客服上线后会尽快回复您。",
	},
	tenant.LangEN: {
		waiting: "I'm connecting you to a person; an agent will be with you shortly.",
		closed:  "Our agents are away right now. Your message is kept, and an agent will reply after the desk opens at {opens}.",
		offline: "No agent is online right now. Your message is kept, and an agent will reply as soon as one is available.",
	},
}

func texts(tn *tenant.Tenant) struct{ waiting, closed, offline string } {
	if t, ok := notices[tn.Widget.Lang]; ok {
		return t
	}
	return notices[tenant.LangZH]
}

func noticeWaiting(tn *tenant.Tenant) string {
	if m := tn.Handoff.Messages.Waiting; m != "" {
		return m
	}
	return texts(tn).waiting
}

func noticeClosed(tn *tenant.Tenant, opens time.Time) string {
	when := opens.Format("2006-01-02 15:04 MST")
	if opens.IsZero() {
		when = "—"
	}
	if m := tn.Handoff.Messages.Closed; m != "" {
		return strings.ReplaceAll(m, "{opens}", when)
	}
	return strings.ReplaceAll(texts(tn).closed, "{opens}", when)
}

func noticeOffline(tn *tenant.Tenant) string {
	if m := tn.Handoff.Messages.Offline; m != "" {
		return m
	}
	return texts(tn).offline
}
