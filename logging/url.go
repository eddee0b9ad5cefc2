package logging

import "strings"

// RedactURLs masks the credentials of each URL of a comma-separated list (Redis, NATS,
// a model's base URL), for logs and error messages: what lies between an entry's
// scheme and its last @ becomes xxxxx, user name included. It parses nothing, so an
// entry too broken to parse loses its password too.
func RedactURLs(list string) string {
	if !strings.Contains(list, "@") {
		return list
	}
	parts := strings.Split(list, ",")
	for i, p := range parts {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		start := 0
		if s := strings.Index(p, "://"); s >= 0 && s < at {
			start = s + len("://")
		}
		parts[i] = p[:start] + "xxxxx" + p[at:]
	}
	return strings.Join(parts, ",")
}
