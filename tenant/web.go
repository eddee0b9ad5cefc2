package tenant

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// Widget is how the tenant's chat widget greets its users on the demo page; a page that
// embeds the widget can set the same with data attributes.
type Widget struct {
	// Lang is the widget's language: zh-CN or en. Default: zh-CN.
	Lang string `yaml:"lang"`
	// Greeting is the first message the widget shows; "" shows none.
	Greeting string `yaml:"greeting"`
}

// Widget languages.
const (
	LangZH = "zh-CN"
	LangEN = "en"
)

// maxGreetingChars caps Widget.Greeting, in characters.
const maxGreetingChars = 500

func (w *Widget) validate(at string) error {
	switch w.Lang {
	case "":
		w.Lang = LangZH
	case LangZH, LangEN:
	default:
		return fmt.Errorf("%s.lang: %q is not zh-CN or en", at, w.Lang)
	}
	if n := utf8.RuneCountInString(w.Greeting); n > maxGreetingChars || !printableText(w.Greeting) {
		return fmt.Errorf("%s.greeting: at most %d characters of text", at, maxGreetingChars)
	}
	return nil
}

// printableText reports whether s is valid UTF-8 without control characters other
// than newlines.
func printableText(s string) bool {
	return printable(strings.ReplaceAll(s, "\n", " "))
}

// AnyOrigin, in AllowedOrigins, allows every origin.
const AnyOrigin = "*"

// parseOrigins validates and normalises a tenant's allowed origins: "*", or
// scheme://host[:port] with scheme http or https and nothing after the authority.
func parseOrigins(in []string, at string) ([]string, error) {
	var out []string
	for i, o := range in {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", at, i, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// normalizeOrigin returns origin as browsers send it in the Origin header (lower-case
// scheme and host, no default port), or an error when it is not a web origin.
func normalizeOrigin(origin string) (string, error) {
	if origin == AnyOrigin {
		return origin, nil
	}
	u, err := url.Parse(origin)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL", origin)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: an origin is http:// or https:// and a host", origin)
	case u.Host == "" || u.User != nil || u.Opaque != "":
		return "", fmt.Errorf("%q: an origin is scheme://host[:port]", origin)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(origin, "?") || strings.HasSuffix(origin, "#"):
		return "", fmt.Errorf("%q: an origin has no path, query or fragment (not even a trailing /)", origin)
	case strings.ContainsAny(u.Host, "*"):
		return "", fmt.Errorf("%q: wildcards are not allowed in a host; list each origin, or \"*\" alone", origin)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if u.Scheme == "http" && port == "80" || u.Scheme == "https" && port == "443" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host, nil
}

// AllowsOrigin reports whether a browser page of origin (as sent in the Origin header)
// may call the API for t.
func (t *Tenant) AllowsOrigin(origin string) bool {
	for _, o := range t.AllowedOrigins {
		if o == AnyOrigin || o == origin {
			return true
		}
	}
	return false
}
