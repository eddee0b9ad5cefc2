package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// demoToken asks POST /v1/demo/token for a token of tenant, renewing prev when given.
func demoToken(t *testing.T, base, tenantID, prev string, header map[string]string) (token string, status int) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/demo/token", strings.NewReader(`{"tenant":"`+tenantID+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if prev != "" {
		req.Header.Set("Authorization", "Bearer "+prev)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
			t.Fatalf("demo token: %v", err)
		}
		if _, err := time.Parse(time.RFC3339, out.ExpiresAt); err != nil {
			t.Errorf("expires_at %q: %v", out.ExpiresAt, err)
		}
	}
	return out.Token, resp.StatusCode
}

// claimsOf reads a JWT's claims without checking it: the server under test does that.
func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDemoMode(t *testing.T) {
	base := testServer(t, nil) // the shipped config.yaml: demo mode on

	first, status := demoToken(t, base, "qinghe-bank", "", nil)
	if status != 200 {
		t.Fatalf("demo token: status %d", status)
	}
	c := claimsOf(t, first)
	user, _ := c["sub"].(string)
	if c["tid"] != "qinghe-bank" || !strings.HasPrefix(user, "demo-") {
		t.Fatalf("claims %v: want tid qinghe-bank and an anonymous demo- user", c)
	}
	if life := c["exp"].(float64) - c["iat"].(float64); life != 1800 {
		t.Errorf("token life %vs, want demo.token_ttl 30m", life)
	}

	// The token chats like any other.
	bank := client{t: t, base: base, token: first}
	var reply struct {
		SessionID string `json:"session_id"`
		Source    string `json:"source"`
	}
	if res := bank.do("POST", "/v1/chat", map[string]string{"message": "借记卡丢了怎么挂失?"}, &reply); res.StatusCode != 200 || reply.Source != "faq" {
		t.Fatalf("chat with a demo token: %d, source %q", res.StatusCode, reply.Source)
	}

	// Renewed, it is the same user: the history is still theirs.
	renewed, _ := demoToken(t, base, "qinghe-bank", first, nil)
	if got := claimsOf(t, renewed)["sub"]; got != user {
		t.Fatalf("renewed token's user %v, want %s", got, user)
	}
	var hist struct {
		Messages []struct{ Role, Content string } `json:"messages"`
	}
	if res := (client{t: t, base: base, token: renewed}).do("GET", "/v1/sessions/"+reply.SessionID+"/messages", nil, &hist); res.StatusCode != 200 || len(hist.Messages) != 2 {
		t.Fatalf("history with the renewed token: %d, %d messages; want 200 and 2", res.StatusCode, len(hist.Messages))
	}
	// Another visitor, and the same visitor at the other tenant, cannot read it.
	other, _ := demoToken(t, base, "qinghe-bank", "", nil)
	shop, _ := demoToken(t, base, "northwind-shop", first, nil)
	if claimsOf(t, shop)["sub"] == user {
		t.Errorf("a bank demo token renewed a shop user")
	}
	for name, tok := range map[string]string{"another visitor": other, "the shop": shop} {
		if res := (client{t: t, base: base, token: tok}).do("GET", "/v1/sessions/"+reply.SessionID+"/messages", nil, nil); res.StatusCode != 404 {
			t.Errorf("%s reads the session: %d, want 404", name, res.StatusCode)
		}
	}
	// A real user's token is never renewed by the demo endpoint.
	realUser := tokenFor(t, base, bankAPIKey, "u1")
	if tok, _ := demoToken(t, base, "qinghe-bank", realUser, nil); claimsOf(t, tok)["sub"] == "u1" {
		t.Errorf("the demo endpoint renewed a real user's token")
	}

	// Pages of the demo tenants' allowed origins may ask; others may not.
	if _, status := demoToken(t, base, "qinghe-bank", "", map[string]string{"Origin": "http://localhost:8000"}); status != 200 {
		t.Errorf("from an allowed origin: %d", status)
	}
	if _, status := demoToken(t, base, "qinghe-bank", "", map[string]string{"Origin": "https://evil.example"}); status != 403 {
		t.Errorf("from another origin: %d, want 403", status)
	}
	if _, status := demoToken(t, base, "no-such-tenant", "", nil); status != 404 {
		t.Errorf("unknown tenant: %d, want 404", status)
	}

	// The page: the chooser, and each tenant's chat framed only by its own origins.
	res, err := http.Get(base + "/?tenant=qinghe-bank")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `data-tenant="qinghe-bank"`) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'self' http://localhost:8000 http://127.0.0.1:8000") {
		t.Errorf("bank page: CSP %q, body %s", res.Header.Get("Content-Security-Policy"), body)
	}
}

func TestDemoModeOff(t *testing.T) {
	base := testServer(t, map[string]string{"FENGDA_DEMO_ENABLED": "false"})
	if _, status := demoToken(t, base, "qinghe-bank", "", nil); status != 404 {
		t.Errorf("POST /v1/demo/token with demo mode off: %d, want 404", status)
	}
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || strings.Contains(string(body), "?tenant=") {
		t.Errorf("GET / with demo mode off: %d, and it offers tenants: %s", res.StatusCode, body)
	}
	if res, err := http.Get(base + "/widget.js"); err != nil || res.StatusCode != 200 {
		t.Errorf("GET /widget.js with demo mode off: %v %v", res, err)
	} else {
		res.Body.Close()
	}
}
