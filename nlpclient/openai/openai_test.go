package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadStream(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []string
		protocol bool // want a *protocolError
	}{
		{
			name: "openai",
			in: "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n" +
				"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n" +
				"data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n" +
				"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
				"data: [DONE]\n\n",
			want: []string{"Hel", "lo"},
		},
		{
			name: "comments, other fields, CRLF, no space, usage",
			in: ": keep-alive\r\n\r\nevent: message\r\nid: 1\r\nretry: 100\r\n" +
				"data:{\"choices\":[{\"delta\":{\"content\":\"你好\"}}]}\r\n\r\n" +
				"data: {\"choices\":[{\"delta\":{\"content\":\"\"}}]}\r\n\r\n" +
				"data: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\r\n\r\n" +
				"data: [DONE]\r\n",
			want: []string{"你好"},
		},
		{
			name:     "end without [DONE]",
			in:       "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
			want:     []string{"a"},
			protocol: true,
		},
		{
			name:     "error event",
			in:       "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n",
			want:     []string{"a"},
			protocol: true,
		},
		{
			name:     "malformed event",
			in:       "data: {\"choices\":\n\n",
			protocol: true,
		},
		{
			name:     "line too long",
			in:       "data: " + strings.Repeat("x", maxEventLine) + "\n",
			protocol: true,
		},
		{
			name: "nothing after [DONE] is read",
			in:   "data: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := readStream(strings.NewReader(tt.in), func(d []byte) error {
				got = append(got, string(d))
				return nil
			})
			var pe *protocolError
			if errors.As(err, &pe) != tt.protocol || !tt.protocol && err != nil {
				t.Errorf("err %v, want a protocol error: %v", err, tt.protocol)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("deltas (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadStreamStopsOnDeltaError(t *testing.T) {
	stop := errors.New("stop")
	in := strings.Repeat("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", 3)
	n := 0
	err := readStream(strings.NewReader(in), func([]byte) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("err %v after %d deltas, want stop after 1", err, n)
	}
}

func FuzzReadStream(f *testing.F) {
	f.Add("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n")
	f.Add(": ping\r\n\r\ndata:{\"error\":{\"message\":\"x\"}}\r\n")
	f.Add("data: {\"choices\":[{\"delta\":null}]}\n")
	f.Add("data: [DONE")
	f.Fuzz(func(t *testing.T, in string) {
		var joined strings.Builder
		err := readStream(strings.NewReader(in), func(d []byte) error {
			if len(d) == 0 {
				t.Fatal("empty delta")
			}
			joined.Write(d)
			return nil
		})
		var pe *protocolError
		if err != nil && !errors.As(err, &pe) {
			t.Fatalf("error %v from a string reader is not a protocol error", err)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"2"}}, 2 * time.Second},
		{"zero", http.Header{"Retry-After": {"0"}}, 0},
		{"negative", http.Header{"Retry-After": {"-3"}}, 0},
		{"date", http.Header{"Retry-After": {now.Add(1500 * time.Millisecond).Format(http.TimeFormat)}}, time.Second}, // whole seconds
		{"date passed", http.Header{"Retry-After": {now.Add(-time.Minute).Format(http.TimeFormat)}}, 0},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"huge", http.Header{"Retry-After": {"99999999999999"}}, time.Hour},
		{"milliseconds first", http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"1"}}, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryAfter(tt.h, now); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStatusErrorReadsTheMessage(t *testing.T) {
	for _, tt := range []struct {
		status  int
		body    string
		outcome string
		msg     string
		retry   bool
	}{
		{503, `{"error":{"message":"Service overloaded","type":"server_error"}}`, outcome5xx, "Service overloaded", true},
		{429, `{"error":{"message":"Rate limit reached"}}`, outcome429, "Rate limit reached", true},
		{401, `{"error":{"message":"Invalid API key"}}`, outcome4xx, "Invalid API key", false},
		{404, "<html>not found</html>", outcome4xx, "<html>not found</html>", false},
		{500, strings.Repeat("很长", 1000), outcome5xx, strings.Repeat("很长", 50) + "…", true},
	} {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tt.body))}
		e := statusError(resp, time.Now())
		if e.outcome != tt.outcome || e.msg != tt.msg || e.retry != tt.retry {
			t.Errorf("%d: got %s %q retry %v, want %s %q retry %v", tt.status, e.outcome, e.msg, e.retry, tt.outcome, tt.msg, tt.retry)
		}
	}
}

func TestNewHTTPClientSpeaksHTTP2(t *testing.T) {
	noLeaks(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	c := NewHTTPClient()
	defer c.CloseIdleConnections()
	tr := c.Transport.(*http.Transport)
	if c.Timeout != 0 || tr.MaxIdleConnsPerHost < 512 || !tr.ForceAttemptHTTP2 || tr.TLSHandshakeTimeout == 0 {
		t.Errorf("client %+v, transport not tuned", c)
	}
	tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig // trust the test certificate
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	proto, _ := io.ReadAll(resp.Body)
	if string(proto) != "HTTP/2.0" {
		t.Errorf("spoke %s, want HTTP/2.0", proto)
	}
}
