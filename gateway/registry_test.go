package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

// TestRealRegistryRoundTrip mints a token with the real registry through POST
// /v1/tokens and uses it for a chat turn, then checks that a token of another tenant's
// key cannot be passed off.
func TestRealRegistryRoundTrip(t *testing.T) {
	const apiKey = "test-only-api-key-0123456789abcdef"
	reg, err := tenant.NewRegistry([]tenant.Config{
		{
			ID:        "bank-a",
			Keys:      []tenant.KeyConfig{{KID: "a1", Alg: "HS256", Secret: tenant.Secret{Value: "test-only-secret-a-0123456789abcdef"}}},
			APIKeys:   []tenant.Secret{{Value: apiKey}},
			RateLimit: tenant.RateLimit{RPS: 100, Burst: 100},
			Engine:    tenant.Engine{Kind: "faq"},
		},
		{
			ID:     "shop-b",
			Keys:   []tenant.KeyConfig{{KID: "b1", Alg: "HS256", Secret: tenant.Secret{Value: "test-only-secret-b-0123456789abcdef"}}},
			Engine: tenant.Engine{Kind: "faq"},
		},
	}, func(string) string { return "" })
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	d := &fakeDialogue{}
	s, err := New(testConfig(), testDeps(t, d, reg, ratelimit.Config{}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/tokens", header: map[string]string{"X-API-Key": apiKey}, body: `{"user_id":"u-42","ttl_seconds":600}`})
	if got, want := w.Code, http.StatusCreated; got != want {
		t.Fatalf("tokens: status = %d, want %d; body %s", got, want, w.Body)
	}
	var tok tokenJSON
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || tok.Token == "" || tok.ExpiresAt == "" {
		t.Fatalf("tokens: body %s (%v)", w.Body, err)
	}

	w = do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tok.Token), body: `{"message":"hi"}`})
	if got, want := w.Code, http.StatusOK; got != want {
		t.Fatalf("chat: status = %d, want %d; body %s", got, want, w.Body)
	}
	if got := d.lastTurn(); got.Tenant != "bank-a" || got.User != "u-42" {
		t.Errorf("turn tenant, user = %q, %q; want bank-a, u-42", got.Tenant, got.User)
	}

	// The same token with one flipped signature character is refused.
	forged := tok.Token[:len(tok.Token)-2] + flip(tok.Token[len(tok.Token)-2:])
	w = do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(forged), body: `{"message":"hi"}`})
	if got, want := w.Code, http.StatusUnauthorized; got != want {
		t.Errorf("forged: status = %d, want %d", got, want)
	}
}

func flip(s string) string {
	if strings.HasPrefix(s, "A") {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}
