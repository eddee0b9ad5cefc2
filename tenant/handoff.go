package tenant

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Handoff is how a tenant's customers reach a person: which messages ask for one, when
// the bot gives up, the desk's opening hours, and the tenant's own helpdesk webhook.
type Handoff struct {
	// Phrases are the messages that ask for a person: a message containing one (whole
	// words, any case) is handed off. Default: DefaultHandoffPhrases, Chinese and
	// English. Set them to replace the defaults; an empty list keeps the defaults,
	// Disabled turns the phrases, the button and after_unresolved off.
	Phrases []string `yaml:"phrases"`
	// AfterUnresolved is how many clarify or fallback answers in a row hand the
	// session to a person. Default 2; 0 keeps the default; -1 never.
	AfterUnresolved int `yaml:"after_unresolved"`
	// Disabled turns handoff off for the tenant: the bot answers every message.
	Disabled bool `yaml:"disabled"`
	// Hours are when the desk is staffed; outside them a handoff still queues, and
	// the customer is told when it opens. Empty: always open.
	Hours Hours `yaml:"hours"`
	// WebhookURL, when set, receives every status change and message as a signed POST.
	WebhookURL string `yaml:"webhook_url"`
	// WebhookSecret signs the webhook's body (HMAC-SHA256); required with WebhookURL.
	WebhookSecret Secret `yaml:"webhook_secret"`
	// Messages replace the notices the customer is given, in the widget's language.
	Messages HandoffMessages `yaml:"messages"`

	// webhookKey is WebhookSecret resolved.
	webhookKey []byte
	// location is Hours.Timezone loaded.
	location *time.Location
	days     [7]bool
	open     int // minutes after midnight
	close    int
}

// HandoffMessages are a tenant's own notices; "" keeps the built-in text of its
// language (the widget's). {opens} is replaced by the desk's next opening time.
type HandoffMessages struct {
	Waiting string `yaml:"waiting"` // a person is coming
	Closed  string `yaml:"closed"`  // outside hours: "{opens}"
	Offline string `yaml:"offline"` // in hours, no agent online
}

// Hours is one weekly opening window in a time zone.
type Hours struct {
	Timezone string   `yaml:"timezone"` // IANA name, e.g. Asia/Shanghai; default UTC
	Days     []string `yaml:"days"`     // mon … sun; default every day
	Open     string   `yaml:"open"`     // "09:00"
	Close    string   `yaml:"close"`    // "18:00", after Open
}

// DefaultAfterUnresolved is the default of handoff.after_unresolved.
const DefaultAfterUnresolved = 2

// DefaultHandoffPhrases are the messages that ask for a person when a tenant sets none.
// A phrase matches where it appears in a message (Latin letters as whole words, any
// case); a phrase that starts with "=" matches a message that is only that phrase,
// for words too common to match inside a longer message.
var DefaultHandoffPhrases = []string{
	"转人工", "找人工", "接人工", "要人工", "转接人工", "人工坐席", "找真人", "真人客服",
	"=人工", "=人工客服", "=人工服务", "=真人", "=客服", "=agent", "=person", "=operator",
	"human", "real person", "talk to someone", "speak to someone", "talk to a person",
	"speak to a person", "live agent", "human agent", "an agent", "a representative",
}

const (
	maxHandoffPhrases  = 200
	maxPhraseChars     = 40
	maxHandoffMessage  = 500
	handoffWebhookPath = "handoff.webhook_url"
)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func (h *Handoff) validate(at string, getenv func(string) string) error {
	if len(h.Phrases) > maxHandoffPhrases {
		return fmt.Errorf("%s.handoff.phrases: at most %d", at, maxHandoffPhrases)
	}
	for i, p := range h.Phrases {
		p = strings.TrimSpace(p)
		if p == "" || utf8.RuneCountInString(p) > maxPhraseChars || !printableText(p) {
			return fmt.Errorf("%s.handoff.phrases[%d]: 1 to %d characters of text", at, i, maxPhraseChars)
		}
		h.Phrases[i] = p
	}
	if len(h.Phrases) == 0 {
		h.Phrases = DefaultHandoffPhrases
	}
	switch {
	case h.AfterUnresolved == 0:
		h.AfterUnresolved = DefaultAfterUnresolved
	case h.AfterUnresolved < -1 || h.AfterUnresolved > 100:
		return fmt.Errorf("%s.handoff.after_unresolved: %d out of range 1..100 (-1: never)", at, h.AfterUnresolved)
	}
	for name, m := range map[string]string{"waiting": h.Messages.Waiting, "closed": h.Messages.Closed, "offline": h.Messages.Offline} {
		if utf8.RuneCountInString(m) > maxHandoffMessage || !printableText(m) {
			return fmt.Errorf("%s.handoff.messages.%s: at most %d characters of text", at, name, maxHandoffMessage)
		}
	}
	if err := h.validateHours(at); err != nil {
		return err
	}
	if h.WebhookURL != "" {
		u, err := url.Parse(h.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s.%s: %q is not an http(s) URL", at, handoffWebhookPath, h.WebhookURL)
		}
		if h.WebhookSecret == (Secret{}) {
			return fmt.Errorf("%s.handoff.webhook_secret: required with webhook_url", at)
		}
		key, err := ResolveSecret(h.WebhookSecret, getenv)
		if err != nil {
			return fmt.Errorf("%s.handoff.webhook_secret: %w", at, err)
		}
		if len(key) < 16 {
			return fmt.Errorf("%s.handoff.webhook_secret: %d bytes, need at least 16", at, len(key))
		}
		h.webhookKey = key
	}
	return nil
}

func (h *Handoff) validateHours(at string) error {
	hr := h.Hours
	if hr.Open == "" && hr.Close == "" && hr.Timezone == "" && len(hr.Days) == 0 {
		return nil // always open
	}
	loc, err := time.LoadLocation(hr.Timezone) // "" is UTC
	if err != nil {
		return fmt.Errorf("%s.handoff.hours.timezone: %w", at, err)
	}
	h.location = loc
	if len(hr.Days) == 0 {
		h.days = [7]bool{true, true, true, true, true, true, true}
	}
	for _, d := range hr.Days {
		wd, ok := weekdays[strings.ToLower(strings.TrimSpace(d))]
		if !ok {
			return fmt.Errorf("%s.handoff.hours.days: %q is not one of mon, tue, wed, thu, fri, sat, sun", at, d)
		}
		h.days[wd] = true
	}
	if h.open, err = clock(hr.Open); err != nil {
		return fmt.Errorf("%s.handoff.hours.open: %w", at, err)
	}
	if h.close, err = clock(hr.Close); err != nil {
		return fmt.Errorf("%s.handoff.hours.close: %w", at, err)
	}
	if h.close <= h.open {
		return fmt.Errorf("%s.handoff.hours: close %s is not after open %s", at, hr.Close, hr.Open)
	}
	return nil
}

// clock parses "HH:MM" into minutes after midnight; "24:00" is the end of the day.
func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if s == "24:00" {
		return 24 * 60, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// WebhookKey is the resolved webhook secret, nil without a webhook.
func (h Handoff) WebhookKey() []byte { return h.webhookKey }

// Staffed reports whether the desk is open at now, and when not, when it opens next
// (in the hours' time zone). Without hours it is always open.
func (h Handoff) Staffed(now time.Time) (open bool, opens time.Time) {
	if h.location == nil {
		return true, time.Time{}
	}
	local := now.In(h.location)
	minute := local.Hour()*60 + local.Minute()
	if h.days[local.Weekday()] && minute >= h.open && minute < h.close {
		return true, time.Time{}
	}
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, h.location)
	for i := range 8 {
		d := day.AddDate(0, 0, i)
		at := d.Add(time.Duration(h.open) * time.Minute)
		if h.days[d.Weekday()] && at.After(local) {
			return false, at
		}
	}
	return false, time.Time{} // no open day: never staffed
}
