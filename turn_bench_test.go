package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// BenchmarkChatTurn is one whole JSON chat turn through the running program (built-in
// FAQ engine, JWT, rate limit, access log at info) over keep-alive HTTP, in
// conversations of ten turns as the faq bench scenario sends them: here to profile
// (-cpuprofile, -memprofile) and to hold an allocation budget (-benchmem). The
// client's cost is in the figures too.
func BenchmarkChatTurn(b *testing.B) {
	b.Run("store=memory", func(b *testing.B) { benchChatTurn(b, nil) })
	b.Run("store=redis", func(b *testing.B) {
		requireRedis(b)
		benchChatTurn(b, redisEnv(b))
	})
}

// BenchmarkChatTurnModel is BenchmarkChatTurn with the model engine
// (examples/openai.yaml) in front of a stand-in that answers at once, and the Redis
// store: the llm bench scenario's turn.
func BenchmarkChatTurnModel(b *testing.B) {
	requireRedis(b)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"您好,信用卡挂失请拨打客服热线或在手机银行办理。"},"finish_reason":"stop"}]}`)
	}))
	b.Cleanup(model.Close)
	env := redisEnv(b)
	env["FENGDA_LLM_BASE_URL"] = model.URL + "/v1"
	env["FENGDA_LLM_MODEL"] = "bench-model"
	env["FENGDA_LLM_API_KEY"] = "sk-bench"
	benchChatTurnWith(b, "examples/openai.yaml", env)
}

func benchChatTurn(b *testing.B, env map[string]string) {
	benchChatTurnWith(b, "config.yaml", env)
}

func benchChatTurnWith(b *testing.B, config string, env map[string]string) {
	// The config, with the bank's rate limit out of the way (still checked).
	raw, err := os.ReadFile(config)
	if err != nil {
		b.Fatal(err)
	}
	cfgPath := filepath.Join(b.TempDir(), "config.yaml")
	raw = bytes.ReplaceAll(raw, []byte("rate_limit: {rps: 20, burst: 40}"), []byte("rate_limit: {rps: 10000000, burst: 10000000}"))
	raw = bytes.ReplaceAll(raw, []byte("max_concurrent: 16 "), []byte("max_concurrent: 1000 "))
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	all := map[string]string{"FENGDA_QUEUE_MODE": "off", "FENGDA_LOG_LEVEL": "info"}
	for k, v := range env {
		all[k] = v
	}
	p := startProgram(b, all, []string{"-config", cfgPath}, nil)
	cfg, _, err := loadConfig(cfgPath, func(k string) string { return all[k] })
	if err != nil {
		b.Fatal(err)
	}
	reg, err := tenant.NewRegistry(cfg.Tenants, func(k string) string { return all[k] })
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := reg.Mint("qinghe-bank", "bench-user", time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	questions := []string{"信用卡丢了怎么办?", "手机银行一天能转多少钱", "给他行转账要手续费吗", "怎么买你们的理财", "忘记登录密码了怎么办"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var session string
		for n := 0; pb.Next(); n++ {
			if n%10 == 0 {
				session = ""
			}
			body := `{"message":"` + questions[n%len(questions)] + `"`
			if session != "" {
				body += `,"session_id":"` + session + `"`
			}
			body += "}"
			req, _ := http.NewRequest("POST", p.base+"/v1/chat", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d: %s", resp.StatusCode, reply)
			}
			if session == "" {
				_, rest, _ := bytes.Cut(reply, []byte(`"session_id":"`))
				id, _, _ := bytes.Cut(rest, []byte(`"`))
				session = string(id)
			}
		}
	})
}
