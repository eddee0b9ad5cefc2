package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fengda-ai/fengda/dialogue"
)

// sseEvent is one parsed server-sent event; comment lines count as event ":".
type sseEvent struct {
	name string
	data string
}

// readEvents parses SSE from body until it ends, or until an event named in stop.
func readEvents(t testing.TB, body io.Reader, stop ...string) []sseEvent {
	t.Helper()
	var evs []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur != (sseEvent{}) {
				evs = append(evs, cur)
				for _, s := range stop {
					if cur.name == s {
						return evs
					}
				}
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, ":"):
			cur = sseEvent{name: ":", data: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Errorf("unexpected SSE line %q", line)
		}
	}
	return evs
}

// newHTTPServer serves s over a real connection, for streaming tests.
func newHTTPServer(t testing.TB, s *Server) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// postStream opens a streamed chat turn.
func postStream(t testing.TB, ctx context.Context, client *http.Client, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat", strings.NewReader(`{"message":"When are you open?"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tokenAcme)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestChatStream(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), &fakeDialogue{}, nil)
	srv := newHTTPServer(t, s)
	resp := postStream(t, t.Context(), srv.Client(), srv.URL)
	if got, want := resp.StatusCode, 200; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	got := readEvents(t, resp.Body)
	want := []sseEvent{
		{"meta", `{"session_id":"sess-0001","turn_id":"turn-0001"}`},
		{"token", `{"delta":"Opening "}`},
		{"token", `{"delta":"hours"}`},
		{"done", `{"session_id":"sess-0001","turn_id":"turn-0001","answer":"Opening hours are 9 to 5.","source":"faq","confidence":0.92,` +
			`"citations":[{"id":"faq-7","question":"When are you open?"}],"suggestions":[],"latency_ms":1.5}`},
	}
	if diff := cmp.Diff(got, want, cmp.AllowUnexported(sseEvent{})); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
}

func TestChatStreamFirstEventError(t *testing.T) {
	tests := []struct {
		name       string
		stream     func(context.Context, dialogue.Turn) (<-chan dialogue.Event, error)
		wantStatus int
		wantCode   string
	}{
		{
			name: "refused at once",
			stream: func(context.Context, dialogue.Turn) (<-chan dialogue.Event, error) {
				return nil, dialogue.ErrOverloaded
			},
			wantStatus: 503, wantCode: "overloaded",
		},
		{
			name:       "error event first",
			stream:     streamOf(0, dialogue.Event{Kind: dialogue.EventError, Err: dialogue.ErrNotFound}),
			wantStatus: 404, wantCode: "not_found",
		},
		{
			name:       "closed without events",
			stream:     streamOf(0),
			wantStatus: 500, wantCode: "internal",
		},
		{
			name:       "nothing before the deadline",
			stream:     streamOf(time.Hour, metaEvent()),
			wantStatus: 504, wantCode: "timeout",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, testConfig(func(c *Config) { c.RequestTimeout = 50 * time.Millisecond }), &fakeDialogue{stream: tt.stream}, nil)
			srv := newHTTPServer(t, s)
			resp := postStream(t, t.Context(), srv.Client(), srv.URL)
			if got := resp.StatusCode; got != tt.wantStatus {
				t.Fatalf("status = %d, want %d", got, tt.wantStatus)
			}
			if got, want := resp.Header.Get("Content-Type"), "application/json; charset=utf-8"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			body, _ := io.ReadAll(resp.Body)
			if got := errorOf(t, body).Code; got != tt.wantCode {
				t.Errorf("code = %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestChatStreamLaterErrors(t *testing.T) {
	tests := []struct {
		name     string
		stream   func(context.Context, dialogue.Turn) (<-chan dialogue.Event, error)
		wantLast sseEvent
	}{
		{
			name:     "engine error",
			stream:   streamOf(0, metaEvent(), deltaEvent("a"), dialogue.Event{Kind: dialogue.EventError, Err: dialogue.ErrUnavailable}),
			wantLast: sseEvent{"error", `"code":"unavailable"`},
		},
		{
			name:     "deadline",
			stream:   streamOf(0, metaEvent(), dialogue.Event{}, deltaEvent("never sent")),
			wantLast: sseEvent{"error", `"code":"timeout"`},
		},
		{
			name:     "closed early",
			stream:   streamOf(0, metaEvent(), deltaEvent("a")),
			wantLast: sseEvent{"error", `"code":"internal"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.stream
			if tt.name == "deadline" {
				stream = func(ctx context.Context, turn dialogue.Turn) (<-chan dialogue.Event, error) {
					ch := make(chan dialogue.Event, 1)
					ch <- metaEvent()
					go func() { <-ctx.Done(); close(ch) }()
					return ch, nil
				}
			}
			s, _ := newTestServer(t, testConfig(func(c *Config) { c.RequestTimeout = 100 * time.Millisecond }), &fakeDialogue{stream: stream}, nil)
			srv := newHTTPServer(t, s)
			resp := postStream(t, t.Context(), srv.Client(), srv.URL)
			evs := readEvents(t, resp.Body)
			if len(evs) < 2 || evs[0].name != "meta" {
				t.Fatalf("events = %v, want meta first and an error last", evs)
			}
			last := evs[len(evs)-1]
			if last.name != tt.wantLast.name || !strings.Contains(last.data, tt.wantLast.data) {
				t.Errorf("last event = %v, want %v", last, tt.wantLast)
			}
		})
	}
}

func TestChatStreamHeartbeat(t *testing.T) {
	cfg := testConfig(func(c *Config) { c.SSEHeartbeat = 20 * time.Millisecond })
	d := &fakeDialogue{stream: streamOf(120*time.Millisecond, metaEvent(), doneEvent())}
	s, _ := newTestServer(t, cfg, d, nil)
	srv := newHTTPServer(t, s)
	resp := postStream(t, t.Context(), srv.Client(), srv.URL)
	evs := readEvents(t, resp.Body)
	pings := 0
	for _, ev := range evs {
		if ev == (sseEvent{":", "ping"}) {
			pings++
		}
	}
	if pings < 2 {
		t.Errorf("%d pings in %v, want at least 2", pings, evs)
	}
	if last := evs[len(evs)-1]; last.name != "done" {
		t.Errorf("last event = %v, want done", last)
	}
}

// startRun runs s on a loopback listener until the returned cancel is called; stop waits
// for Run to return and gives its error.
func startRun(t *testing.T, s *Server) (url string, client *http.Client, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	stopped := false
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5s of its context ending")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), &http.Client{Transport: tr}, stop
}

// TestRunShutdownOrder stops Run while a stream and a JSON turn are in flight: /readyz
// answers 503 at once while the server still serves for DrainDelay, then the listener
// closes, and both turns finish: the JSON one with its answer, the stream with done and
// then a shutdown event. Run returns nil.
func TestRunShutdownOrder(t *testing.T) {
	gate := make(chan struct{})
	d := &fakeDialogue{
		stream: func(ctx context.Context, _ dialogue.Turn) (<-chan dialogue.Event, error) {
			ch := make(chan dialogue.Event, 1)
			ch <- metaEvent()
			go func() {
				defer close(ch)
				select {
				case <-gate:
				case <-ctx.Done():
					return
				}
				for _, ev := range []dialogue.Event{deltaEvent("Opening hours"), doneEvent()} {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
			}()
			return ch, nil
		},
		submit: func(ctx context.Context, _ dialogue.Turn) (dialogue.Reply, error) {
			select {
			case <-gate:
				return fixedReply, nil
			case <-ctx.Done():
				return dialogue.Reply{}, ctx.Err()
			}
		},
	}
	const drainDelay = time.Second
	s, _ := newTestServer(t, testConfig(func(c *Config) { c.DrainDelay = drainDelay }), d, nil)
	url, client, stop := startRun(t, s)

	resp := postStream(t, t.Context(), client, url)
	br := bufio.NewReader(resp.Body)
	if got := readEvents(t, br, "meta"); len(got) != 1 {
		t.Fatalf("events before shutdown = %v, want one meta", got)
	}
	jsonStatus := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", url+"/v1/chat", strings.NewReader(`{"message":"When are you open?"}`))
		req.Header.Set("Authorization", "Bearer "+tokenAcme)
		resp, err := client.Do(req)
		if err != nil {
			jsonStatus <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		jsonStatus <- resp.StatusCode
	}()
	waitFor(t, "the JSON turn to reach the engine", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.turns) == 2
	})

	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, "/readyz to answer 503", func() bool {
		resp, err := fresh.Get(url + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz while draining: %v (the listener closed before the drain delay)", err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	if resp, err := client.Get(url + "/healthz"); err != nil {
		t.Errorf("GET /healthz during the drain delay: %v, want it still served", err)
	} else {
		resp.Body.Close()
		if !resp.Close {
			t.Error("a response while draining does not close its connection")
		}
	}
	waitFor(t, "the listener to close after the drain delay", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	close(gate)

	evs := readEvents(t, br)
	var names []string
	for _, ev := range evs {
		if ev.name != ":" {
			names = append(names, ev.name)
		}
	}
	if diff := cmp.Diff(names, []string{"token", "done", "shutdown"}); diff != "" {
		t.Errorf("events after the shutdown began (-got +want):\n%s", diff)
	}
	if last := evs[len(evs)-1]; last.data != `{"status":"shutting_down"}` {
		t.Errorf("shutdown event data = %s", last.data)
	}
	if got := <-jsonStatus; got != http.StatusOK {
		t.Errorf("JSON turn in flight: status %d, want 200", got)
	}
	if err := <-errc; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// TestRunShutdownCutsWaitingStream: a stream whose turn never ends is told so shortly
// before the shutdown timeout, with an unavailable error and the shutdown event, and Run
// still returns nil within the timeout.
func TestRunShutdownCutsWaitingStream(t *testing.T) {
	hang := func(ctx context.Context, _ dialogue.Turn) (<-chan dialogue.Event, error) {
		ch := make(chan dialogue.Event, 1)
		ch <- metaEvent()
		go func() { <-ctx.Done(); close(ch) }() // never answers: only the shutdown ends it
		return ch, nil
	}
	const shutdownTimeout = 2 * time.Second
	cfg := testConfig(func(c *Config) {
		c.RequestTimeout = time.Minute
		c.ShutdownTimeout = shutdownTimeout
	})
	s, _ := newTestServer(t, cfg, &fakeDialogue{stream: hang}, nil)
	url, client, stop := startRun(t, s)

	resp := postStream(t, t.Context(), client, url)
	br := bufio.NewReader(resp.Body)
	if got := readEvents(t, br, "meta"); len(got) != 1 {
		t.Fatalf("events before shutdown = %v, want one meta", got)
	}
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- stop() }()
	evs := readEvents(t, br)
	if len(evs) != 2 || evs[0].name != "error" || !strings.Contains(evs[0].data, `"code":"unavailable"`) || evs[1].name != "shutdown" {
		t.Errorf("events after shutdown = %v, want an unavailable error, then shutdown", evs)
	}
	if err := <-errc; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if d := time.Since(start); d > shutdownTimeout {
		t.Errorf("shutdown took %v, want within ShutdownTimeout %v", d, shutdownTimeout)
	}
	if !s.draining.Load() {
		t.Error("not draining after shutdown")
	}
}

// waitFor polls cond every 10ms until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunReadTimeoutDoesNotCutStream(t *testing.T) {
	cfg := testConfig(func(c *Config) {
		c.ReadTimeout = 100 * time.Millisecond
		c.SSEHeartbeat = 50 * time.Millisecond
	})
	d := &fakeDialogue{stream: streamOf(150*time.Millisecond, metaEvent(), deltaEvent("a"), deltaEvent("b"), doneEvent())}
	s, _ := newTestServer(t, cfg, d, nil)
	url, client, stop := startRun(t, s)
	resp := postStream(t, t.Context(), client, url)
	evs := readEvents(t, resp.Body)
	if len(evs) == 0 || evs[len(evs)-1].name != "done" {
		t.Errorf("events = %v, want the stream to reach done", evs)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestRunRefusesHugeHeader(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	url, client, stop := startRun(t, s)
	for _, size := range []int{9 << 10, 20 << 10} {
		req, _ := http.NewRequest("GET", url+"/healthz", nil)
		req.Header.Set("X-Padding", strings.Repeat("p", size))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got, want := resp.StatusCode, http.StatusRequestHeaderFieldsTooLarge; got != want {
			t.Errorf("%d-byte header: status = %d, want %d", size, got, want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestRunServesAndReturnsNil(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	url, client, stop := startRun(t, s)
	resp, err := client.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if err := s.Run(t.Context(), nil); err == nil {
		t.Error("second Run = nil, want an error")
	}
}

func TestRunListenerFailure(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := s.Run(t.Context(), ln); err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Run on a closed listener = %v, want an error", err)
	}
}

func TestMetricsExposition(t *testing.T) {
	s, _ := newTestServer(t, testConfig(), nil, nil)
	h := s.Handler()
	do(t, h, request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"hi"}`})
	do(t, h, request{method: "GET", path: "/v1/sessions/sess-0001/messages", header: bearer(tokenBank)})
	do(t, h, request{method: "POST", path: "/v1/chat", header: bearer("forged"), body: `{"message":"hi"}`})
	do(t, h, request{method: "GET", path: "/v1/sessions/sess-secret-path/oops"})
	s.metrics.ObserveStage("acme", dialogue.StageAnswer, 3*time.Millisecond)
	w := do(t, h, request{method: "GET", path: "/metrics"})
	body := w.Body.String()
	for _, want := range []string{
		`fengda_stage_duration_seconds_bucket{stage="auth",tenant="acme",le="5e-05"}`,
		`fengda_stage_duration_seconds_bucket{stage="auth",tenant="acme",le="5"} 1`,
		`fengda_stage_duration_seconds_count{stage="answer",tenant="acme"} 1`,
		`fengda_stage_duration_seconds_count{stage="auth",tenant=""} 1`,
		`fengda_http_requests_total{code="200",route="/v1/chat",tenant="acme"} 1`,
		`fengda_http_requests_total{code="401",route="/v1/chat",tenant=""} 1`,
		`fengda_http_requests_total{code="404",route="/v1/sessions/{id}/messages",tenant="bank"} 1`,
		`fengda_http_requests_total{code="404",route="unmatched",tenant=""} 1`,
		`fengda_http_request_duration_seconds_count{route="/v1/chat",tenant="acme"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(body, "sess-secret-path") || strings.Contains(body, "sess-0001") {
		t.Error("metrics hold a raw path")
	}
}

// observedLogger returns a logger whose entries the test can inspect.
func observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func TestAccessLog(t *testing.T) {
	log, logs := observedLogger()
	d := &fakeDialogue{submit: func(context.Context, dialogue.Turn) (dialogue.Reply, error) {
		return dialogue.Reply{}, errors.New("secret internals")
	}}
	s, _ := newTestServer(t, testConfig(), d, log)
	secret := "my card is 6222021234567890123"
	do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: map[string]string{
		"Authorization": "Bearer " + tokenAcme, "X-Request-ID": "req-1",
	}, body: `{"message":"` + secret + `"}`})

	access := logs.FilterMessage("request").All()
	if len(access) != 1 {
		t.Fatalf("%d access lines, want 1", len(access))
	}
	fields := access[0].ContextMap()
	delete(fields, "latency")
	want := map[string]any{"request_id": "req-1", "method": "POST", "route": "/v1/chat", "status": int64(500), "tenant": "acme"}
	if diff := cmp.Diff(fields, want); diff != "" {
		t.Errorf("access line (-got +want):\n%s", diff)
	}
	internal := logs.FilterMessage("internal error").All()
	if len(internal) != 1 {
		t.Fatalf("%d internal error lines, want 1", len(internal))
	}
	if got := internal[0].ContextMap()["request_id"]; got != "req-1" {
		t.Errorf("internal error request_id = %v, want req-1", got)
	}
	for _, e := range logs.All() {
		b, _ := json.Marshal(e.ContextMap())
		if strings.Contains(string(b), "6222021234567890123") || strings.Contains(string(b), tokenAcme) {
			t.Errorf("log line %q %s holds message text or a token", e.Message, b)
		}
	}
	if got := d.lastTurn().RequestID; got != "req-1" {
		t.Errorf("the turn's request id = %q, want req-1: the engine's lines about it would not carry it", got)
	}
	if got := access[0].LoggerName; got != "gateway" {
		t.Errorf("logger name = %q, want gateway", got)
	}
}
