package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

// BenchmarkChatHandler measures the gateway's own cost of one JSON chat turn: request
// id, limits, auth (fake verification), rate limit, decoding, validation, encoding,
// metrics and the access line (to a no-op logger), with an engine that answers at once.
func BenchmarkChatHandler(b *testing.B) {
	turn := chatTurn(b)
	b.ReportAllocs()
	for b.Loop() {
		turn()
	}
}

// chatTurn returns a function that sends one JSON chat turn through the gateway's
// handler, with an engine that answers at once and a rate limit that never runs dry
// (still taken from), and fails tb unless it is answered 200.
func chatTurn(tb testing.TB) func() {
	tenants := &acmeLimited{limit: tenant.RateLimit{RPS: 1e9, Burst: 1e9}}
	s, err := New(testConfig(), testDeps(tb, &fakeDialogue{quiet: true}, tenants, ratelimit.Config{}, nil, nil))
	if err != nil {
		tb.Fatal(err)
	}
	h := s.Handler()
	body := `{"message":"信用卡丢了怎么办?","session_id":"sess-0001","client_msg_id":"m-1"}`
	base := httptest.NewRequest("POST", "/v1/chat", nil)
	base.Header.Set("Authorization", "Bearer "+tokenAcme)
	base.Header.Set("Content-Type", "application/json")
	base.ContentLength = int64(len(body))
	return func() {
		r := *base // the handler only reads headers, so requests may share them
		r.Body = io.NopCloser(strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, &r)
		if w.Code != http.StatusOK {
			tb.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
