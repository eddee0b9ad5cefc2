package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// The servers below run as child processes of the bench (-role NAME), each alone in its
// process as Fengda is, so every server in a comparison pays for its own runtime.

// helloBody is about the size of a Fengda reply.
var helloBody = []byte(`{"session_id":"s-0123456789abcdef","turn_id":"t-0123456789abcdef","answer":"您可以通过手机银行或拨打客服热线挂失信用卡,挂失后原卡立即失效。","source":"faq","confidence":0.9,"citations":[{"id":"card-lost","question":"信用卡丢了怎么办?"}],"latency_ms":0}` + "\n")

// serveHello is the floor: a bare net/http handler that reads the request and writes
// a fixed reply of a Fengda reply's size.
func serveHello(ln net.Listener) error {
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(helloBody)
	}))
}

// serveProxy is a minimal reverse proxy in front of the model stand-in: what Fengda's
// model path costs at the least, without auth, limits, history or storing.
func serveProxy(ln net.Listener, upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil {
		return err
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	p.FlushInterval = -1 // streams pass each chunk at once
	return http.Serve(ln, p)
}

// model is an OpenAI-compatible chat completions stand-in: it waits Latency before
// answering, then sends Tokens tokens spread evenly over Over when streaming (the
// first one at once), or the whole answer as JSON.
type model struct {
	Latency time.Duration
	Tokens  int
	Over    time.Duration
}

// modelToken is one token of a model answer.
const modelToken = "您好"

func (m model) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/chat/completions") || r.Method != http.MethodPost {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
		return
	}
	if !sleepCtx(r, m.Latency) {
		return
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`+"\n",
			strings.Repeat(modelToken, m.Tokens))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	var gap time.Duration
	if m.Tokens > 1 {
		gap = m.Over / time.Duration(m.Tokens-1)
	}
	for i := range m.Tokens {
		if i > 0 && !sleepCtx(r, gap) {
			return
		}
		fmt.Fprintf(w, "data: {\"id\":\"cmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", modelToken)
		if rc.Flush() != nil {
			return
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// sleepCtx waits d, or less when the client leaves; it says whether the client is
// still there.
func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func serveModel(ln net.Listener, m model) error {
	srv := &http.Server{Handler: m, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}
