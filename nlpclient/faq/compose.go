package faq

import (
	"math"
	"strconv"
	"strings"

	"github.com/fengda-ai/fengda/nlpclient"
)

// Replies in each language.
var replies = map[string]struct{ clarify, rephrase string }{
	nlpclient.LangZH: {
		clarify:  "抱歉,我没有完全理解您的问题。您是想问:",
		rephrase: "抱歉,我暂时无法回答这个问题。请换个说法再问一次,或联系人工客服。",
	},
	nlpclient.LangEN: {
		clarify:  "Sorry, I'm not sure I understood. Did you mean:",
		rephrase: "Sorry, I can't answer that yet. Please try rephrasing your question, or contact a member of our support team.",
	},
}

// compose turns a search result into the answer: the best entry's when confident,
// else a clarify with up to maxSuggestions questions, or none when nothing plausible
// was found or the message addressed the bot.
func (f *FAQ) compose(r result) nlpclient.Answer {
	conf := math.Round(r.conf*1000) / 1000
	if len(r.cands) > 0 && r.conf >= f.minConf {
		e := f.kb.Entries[r.cands[0].ent]
		return nlpclient.Answer{
			Text:       e.Answer,
			Source:     nlpclient.SourceFAQ,
			Confidence: conf,
			Citations:  []nlpclient.Citation{{ID: e.ID, Question: e.Question}},
		}
	}
	text := replies[f.kb.Language]
	a := nlpclient.Answer{Source: nlpclient.SourceClarify, Confidence: conf, Text: text.rephrase}
	if len(r.cands) == 0 || r.feat.Coverage < plausibleCoverage || r.directive {
		return a
	}
	n, size := 0, len(text.clarify)
	for i, c := range r.cands {
		if i == maxSuggestions || c.score < suggestRatio*r.cands[0].score {
			break
		}
		n++
		size += len("\n1. ") + len(f.kb.Entries[c.ent].Question)
	}
	var b strings.Builder
	b.Grow(size)
	b.WriteString(text.clarify)
	if n > 0 {
		a.Suggestions = make([]nlpclient.Citation, 0, n)
	}
	for i, c := range r.cands[:n] {
		e := f.kb.Entries[c.ent]
		a.Suggestions = append(a.Suggestions, nlpclient.Citation{ID: e.ID, Question: e.Question})
		b.WriteString("\n")
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteString(". ")
		b.WriteString(e.Question)
	}
	a.Text = b.String()
	return a
}
