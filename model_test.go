package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/nlpclient/openai/openaitest"
)

// vendor stands in for an OpenAI-compatible model API. Its behaviour is chosen per
// request by behave, from the request's system prompt (which names the tenant).
type vendor struct {
	srv      *httptest.Server
	calls    atomic.Int64
	canceled atomic.Int64
	mu       sync.Mutex
	behave   func(n int64, system string) string // "json", "stream", "sleep", "503", "400", "cut"
	lastReq  map[string]any
	lastAuth string
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{behave: func(int64, string) string { return "json" }}
	v.srv = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) set(f func(n int64, system string) string) {
	v.mu.Lock()
	v.behave = f
	v.mu.Unlock()
}

func (v *vendor) serve(w http.ResponseWriter, r *http.Request) {
	n := v.calls.Add(1)
	if r.URL.Path != "/v1/chat/completions" {
		http.Error(w, "no such path", http.StatusNotFound)
		return
	}
	var req openaitest.Request
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &req)
	system := ""
	if len(req.Messages) > 0 {
		system = req.Messages[0].Content
	}
	v.mu.Lock()
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	v.lastReq, v.lastAuth = raw, r.Header.Get("Authorization")
	mode := v.behave(n, system)
	v.mu.Unlock()

	switch mode {
	case "sleep":
		select {
		case <-r.Context().Done():
			v.canceled.Add(1)
		case <-time.After(5 * time.Second):
		}
		return
	case "503":
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
		return
	case "400":
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	if !req.Stream {
		openaitest.WriteAnswer(w, fmt.Sprintf("model answer %d", n))
		return
	}
	st := openaitest.NewStream(w)
	for i, tok := range []string{"one ", "two ", "three ", "four ", "five"} {
		if mode == "cut" && i == 3 {
			return // the connection ends without [DONE]
		}
		_ = st.Delta(tok)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-r.Context().Done():
			v.canceled.Add(1)
			return
		}
	}
	st.Done()
}

// modelServer runs the program with examples/openai.yaml against v.
func modelServer(t *testing.T, v *vendor) string {
	return testServerWith(t, map[string]string{
		"FENGDA_LLM_BASE_URL": v.srv.URL + "/v1",
		"FENGDA_LLM_MODEL":    "test-model",
		"FENGDA_LLM_API_KEY":  "sk-test-key",
	}, []string{"-config", "examples/openai.yaml"}, nil)
}

// sseEvent is one server-sent event with the time it arrived.
type sseEvent struct {
	name, data string
	at         time.Time
}

// streamChat posts a streaming chat turn and returns its events.
func streamChat(t *testing.T, base, token, body string) []sseEvent {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: status %d %s", resp.StatusCode, b)
	}
	var out []sseEvent
	sc := bufio.NewScanner(resp.Body)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			out = append(out, sseEvent{name: name, data: strings.TrimPrefix(line, "data: "), at: time.Now()})
		}
	}
	return out
}

func TestModelEngineEndToEnd(t *testing.T) {
	v := newVendor(t)
	base := modelServer(t, v)
	bank := client{t, base, tokenFor(t, base, bankAPIKey, "u1")}
	shop := client{t, base, tokenFor(t, base, shopAPIKey, "u1")}

	t.Run("json answer, grounded", func(t *testing.T) {
		var r chatReply
		if resp := bank.do("POST", "/v1/chat", map[string]string{"message": "借记卡丢了怎么挂失?"}, &r); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if r.Source != "llm" || !strings.HasPrefix(r.Answer, "model answer") || len(r.Citations) == 0 {
			t.Fatalf("reply %+v, want an llm answer with citations", r)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		sys, _ := json.Marshal(v.lastReq["messages"])
		if v.lastAuth != "Bearer sk-test-key" || v.lastReq["model"] != "test-model" || !strings.Contains(string(sys), citedID(r)) {
			t.Errorf("vendor saw auth %q model %v, prompt without reference %s", v.lastAuth, v.lastReq["model"], citedID(r))
		}
	})

	t.Run("stream tokens as they arrive", func(t *testing.T) {
		v.set(func(int64, string) string { return "stream" })
		evs := streamChat(t, base, shop.token, `{"message":"how long does shipping take?"}`)
		var tokens []sseEvent
		var text strings.Builder
		for _, e := range evs {
			if e.name == "token" {
				var d struct{ Delta string }
				_ = json.Unmarshal([]byte(e.data), &d)
				text.WriteString(d.Delta)
				tokens = append(tokens, e)
			}
		}
		if len(evs) == 0 || evs[len(evs)-1].name != "done" || text.String() != "one two three four five" {
			t.Fatalf("events %+v, text %q", evs, text.String())
		}
		if gap := tokens[len(tokens)-1].at.Sub(tokens[0].at); gap < 300*time.Millisecond {
			t.Errorf("first to last token %v, want the 400ms the vendor took: tokens were buffered", gap)
		}
	})

	t.Run("vendor sleeps: fallback at the deadline", func(t *testing.T) {
		v.set(func(int64, string) string { return "sleep" })
		before := v.canceled.Load()
		start := time.Now()
		var r chatReply
		bank.do("POST", "/v1/chat", map[string]string{"message": "今天天气怎么样"}, &r)
		took := time.Since(start)
		if took < 1450*time.Millisecond || took > 1700*time.Millisecond {
			t.Errorf("answered after %v, want the 1.5s deadline", took)
		}
		if r.Source != "fallback" || r.Answer != "系统繁忙,请稍后再试" {
			t.Errorf("reply %+v, want the tenant's fallback", r)
		}
		waitFor(t, func() bool { return v.canceled.Load() > before })
	})

	t.Run("503 503 200: one answer, three calls, one stored turn", func(t *testing.T) {
		start := v.calls.Load()
		v.set(func(n int64, _ string) string {
			if n-start <= 2 {
				return "503"
			}
			return "json"
		})
		var r chatReply
		bank.do("POST", "/v1/chat", map[string]string{"message": "信用卡年费怎么收?"}, &r)
		if r.Source != "llm" || v.calls.Load()-start != 3 {
			t.Fatalf("reply %+v after %d calls, want an llm answer after 3", r, v.calls.Load()-start)
		}
		var h struct {
			Messages []struct{ Role, Content string } `json:"messages"`
		}
		bank.do("GET", "/v1/sessions/"+r.SessionID+"/messages", nil, &h)
		if len(h.Messages) != 2 || h.Messages[1].Content != r.Answer {
			t.Errorf("history %+v, want the one turn", h.Messages)
		}
	})

	t.Run("400 is not retried", func(t *testing.T) {
		v.set(func(int64, string) string { return "400" })
		start := v.calls.Load()
		var r chatReply
		bank.do("POST", "/v1/chat", map[string]string{"message": "信用卡年费怎么收?"}, &r)
		if n := v.calls.Load() - start; n != 1 || r.Source == "llm" {
			t.Errorf("%d calls, reply %+v; want 1 call and a fallback", n, r)
		}
	})

	t.Run("cut stream: error event, partial stored incomplete", func(t *testing.T) {
		v.set(func(int64, string) string { return "cut" })
		evs := streamChat(t, base, bank.token, `{"message":"借记卡丢了怎么挂失?"}`)
		var session string
		var text strings.Builder
		for _, e := range evs {
			switch e.name {
			case "meta":
				var m struct {
					SessionID string `json:"session_id"`
				}
				_ = json.Unmarshal([]byte(e.data), &m)
				session = m.SessionID
			case "token":
				var d struct{ Delta string }
				_ = json.Unmarshal([]byte(e.data), &d)
				text.WriteString(d.Delta)
			}
		}
		last := evs[len(evs)-1]
		if last.name != "error" || !strings.Contains(last.data, `"incomplete"`) || text.String() != "one two three " {
			t.Fatalf("events %+v, text %q; want three tokens then an incomplete error", evs, text.String())
		}
		var h struct {
			Messages []struct {
				Role, Content string
				Incomplete    bool `json:"incomplete"`
			} `json:"messages"`
		}
		bank.do("GET", "/v1/sessions/"+session+"/messages", nil, &h)
		if len(h.Messages) != 2 || h.Messages[1].Content != "one two three " || !h.Messages[1].Incomplete {
			t.Errorf("history %+v, want the partial answer marked incomplete", h.Messages)
		}
	})

	t.Run("one tenant's open breaker leaves the other alone", func(t *testing.T) {
		v.set(func(_ int64, system string) string {
			if strings.Contains(system, "青禾") {
				return "503"
			}
			return "json"
		})
		for range 3 { // 3 calls each (2 retries): the 5th failure opens the bank's breaker
			bank.do("POST", "/v1/chat", map[string]string{"message": "信用卡年费怎么收?"}, nil)
		}
		start := v.calls.Load()
		t0 := time.Now()
		var r chatReply
		bank.do("POST", "/v1/chat", map[string]string{"message": "信用卡年费怎么收?"}, &r)
		if n := v.calls.Load() - start; n != 0 || r.Source == "llm" || time.Since(t0) > 200*time.Millisecond {
			t.Errorf("open breaker: %d calls, reply %+v after %v; want an immediate fallback", n, r, time.Since(t0))
		}
		shop.do("POST", "/v1/chat", map[string]string{"message": "how long does shipping take?"}, &r)
		if r.Source != "llm" {
			t.Errorf("shop reply %+v while the bank's breaker is open, want llm", r)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, want := range []string{
			`fengda_upstream_duration_seconds_count{outcome="ok",tenant="qinghe-bank",upstream="127.0.0.1"}`,
			`fengda_upstream_first_token_seconds_count{tenant="northwind-shop",upstream="127.0.0.1"}`,
			`fengda_upstream_retries_total{tenant="qinghe-bank",upstream="127.0.0.1"}`,
			`fengda_upstream_breaker_state{tenant="qinghe-bank",upstream="127.0.0.1"} 2`,
			`fengda_upstream_breaker_state{tenant="northwind-shop",upstream="127.0.0.1"} 0`,
			`fengda_fallbacks_total{reason="timeout",tenant="qinghe-bank",upstream="127.0.0.1"}`,
			`fengda_fallbacks_total{reason="breaker_open",tenant="qinghe-bank",upstream="127.0.0.1"}`,
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}
