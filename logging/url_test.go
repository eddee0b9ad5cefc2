package logging

import "testing"

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:s3cret@127.0.0.1:6379/0", "redis://xxxxx@127.0.0.1:6379/0"},
		{"rediss://fengda:s3cret@redis.internal:6380", "rediss://xxxxx@redis.internal:6380"},
		{"redis://:pa/ss@w0rd@host:6379", "redis://xxxxx@host:6379"}, // not a valid URL
		{"nats://u:p@a:4222,nats://b:4222", "nats://xxxxx@a:4222,nats://b:4222"},
		{"redis://:p@a:7000, b:7001, u:p@c:7002", "redis://xxxxx@a:7000, b:7001,xxxxx@c:7002"},
	} {
		if got := RedactURLs(tc.in); got != tc.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
