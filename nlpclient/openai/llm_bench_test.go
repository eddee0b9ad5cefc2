package openai

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
)

// benchToken is one token of the benchmarks' model answers, which have benchTokens:
// the bench's model stand-in answers the same.
const (
	benchToken  = "您好"
	benchTokens = 20
)

// benchPrompt is a tenant's system prompt that the leak guard protects.
const benchPrompt = "你是青禾银行的在线客服。请用简洁、礼貌的中文回答客户的问题。"

// benchAnswerBody is a complete answer of benchTokens tokens, as vendors write it.
var benchAnswerBody = fmt.Appendf(nil, `{"id":"cmpl-1","object":"chat.completion","created":1700000000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":412,"completion_tokens":20,"total_tokens":432}}`+"\n",
	strings.Repeat(benchToken, benchTokens))

// benchStreamBody is a streamed answer of benchTokens tokens, as vendors write it.
var benchStreamBody = func() []byte {
	var b bytes.Buffer
	b.WriteString(`data: {"id":"cmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
	for range benchTokens {
		fmt.Fprintf(&b, `data: {"id":"cmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`+"\n\n", benchToken)
	}
	b.WriteString(`data: {"id":"cmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.Bytes()
}()

// cannedTransport answers every request with a fixed body, without a network: what
// the client spends on a call, and nothing of a server.
type cannedTransport struct {
	contentType string
	body        []byte
}

func (t cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {t.contentType}},
		Body:          io.NopCloser(bytes.NewReader(t.body)),
		ContentLength: int64(len(t.body)),
		Request:       r,
	}, nil
}

// benchLLM returns an LLM of the bank's knowledge base that calls client.
func benchLLM(b testing.TB, baseURL string, client *http.Client, prompt string) *LLM {
	b.Helper()
	l, err := NewLLM(Config{BaseURL: baseURL, Model: "bench-model", SystemPrompt: prompt}, LLMDeps{Client: client, FAQ: served(newTestFAQ(b, "bank-zh"))})
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// benchRequest is a turn with one earlier exchange.
var benchRequest = nlpclient.Request{Message: confidentMsg, History: []nlpclient.Exchange{{User: "你好", Assistant: "您好,请问有什么可以帮您?"}}}

func benchLLMAnswer(b *testing.B, l *LLM) {
	ctx := context.Background()
	want := strings.Repeat(benchToken, benchTokens)
	b.ReportAllocs()
	for b.Loop() {
		a, err := l.Answer(ctx, benchRequest)
		if err != nil || a.Source != nlpclient.SourceLLM || a.Text != want {
			b.Fatal(a, err)
		}
	}
}

func benchLLMStream(b *testing.B, l *LLM) {
	ctx := context.Background()
	want := strings.Repeat(benchToken, benchTokens)
	emitted := 0
	emit := func(d string) error {
		emitted += len(d)
		return nil
	}
	b.ReportAllocs()
	for b.Loop() {
		emitted = 0
		a, err := l.Stream(ctx, benchRequest, emit)
		if err != nil || a.Source != nlpclient.SourceLLM || a.Text != want || emitted != len(want) {
			b.Fatal(a, err)
		}
	}
}

// BenchmarkLLMCanned measures the client's side of a model call: the prompt, the
// request, the response read and decoded, the guard.
func BenchmarkLLMCanned(b *testing.B) {
	answer := &http.Client{Transport: cannedTransport{"application/json", benchAnswerBody}}
	stream := &http.Client{Transport: cannedTransport{"text/event-stream", benchStreamBody}}
	b.Run("answer", func(b *testing.B) { benchLLMAnswer(b, benchLLM(b, "http://model.test/v1", answer, "")) })
	b.Run("answer-guarded", func(b *testing.B) { benchLLMAnswer(b, benchLLM(b, "http://model.test/v1", answer, benchPrompt)) })
	b.Run("stream", func(b *testing.B) { benchLLMStream(b, benchLLM(b, "http://model.test/v1", stream, "")) })
	b.Run("stream-guarded", func(b *testing.B) { benchLLMStream(b, benchLLM(b, "http://model.test/v1", stream, benchPrompt)) })
}

// BenchmarkLLMStream measures a streamed answer of benchTokens tokens from an httptest
// model server.
func BenchmarkLLMStream(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write(benchStreamBody)
	}))
	defer srv.Close()
	client := NewHTTPClient()
	defer client.CloseIdleConnections()
	b.Run("plain", func(b *testing.B) { benchLLMStream(b, benchLLM(b, srv.URL, client, "")) })
	b.Run("guarded", func(b *testing.B) { benchLLMStream(b, benchLLM(b, srv.URL, client, benchPrompt)) })
}

func BenchmarkPrepare(b *testing.B) {
	l := benchLLM(b, "http://model.test/v1", http.DefaultClient, benchPrompt)
	faq := l.faq()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.prepare(faq, benchRequest, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAnswer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseAnswer(benchAnswerBody); err != nil {
			b.Fatal(err)
		}
	}
}
