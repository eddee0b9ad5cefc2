package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

// Revoke records nothing: the fake registry's tokens are fixed.
func (f *fakeTenants) Revoke(context.Context, tenant.Revocation, time.Time) error { return nil }

// realRegistry is two tenants of the real registry, bank-a with apiKeyA.
func realRegistry(t testing.TB, opts ...tenant.Option) *tenant.Registry {
	t.Helper()
	reg, err := tenant.NewRegistry([]tenant.Config{
		{
			ID:        "bank-a",
			Keys:      []tenant.KeyConfig{{KID: "a1", Alg: "HS256", Secret: tenant.Secret{Value: "test-only-secret-a-0123456789abcdef"}}},
			APIKeys:   []tenant.Secret{{Value: apiKeyA}},
			RateLimit: tenant.RateLimit{RPS: 1000, Burst: 1000},
		},
		{
			ID:        "shop-b",
			Keys:      []tenant.KeyConfig{{KID: "b1", Alg: "HS256", Secret: tenant.Secret{Value: "test-only-secret-b-0123456789abcdef"}}},
			APIKeys:   []tenant.Secret{{Value: apiKeyB}},
			RateLimit: tenant.RateLimit{RPS: 1000, Burst: 1000},
		},
	}, func(string) string { return "" }, opts...)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return reg
}

const (
	apiKeyA = "test-only-api-key-a-0123456789abcdef"
	apiKeyB = "test-only-api-key-b-0123456789abcdef"
)

func chatStatus(t *testing.T, h http.Handler, token string) int {
	t.Helper()
	return do(t, h, request{method: "POST", path: "/v1/chat", header: bearer(token), body: `{"message":"hi"}`}).Code
}

func revoke(t *testing.T, h http.Handler, apiKey, body string) (int, revocationJSON, errorDetail) {
	t.Helper()
	w := do(t, h, request{method: "POST", path: "/v1/admin/revocations",
		header: map[string]string{"X-API-Key": apiKey, "Content-Type": "application/json"}, body: body})
	var out revocationJSON
	var e errorDetail
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("revocation reply %s: %v", w.Body, err)
		}
	} else {
		e = errorOf(t, w.Body.Bytes())
	}
	return w.Code, out, e
}

func TestRevocationAPI(t *testing.T) {
	reg := realRegistry(t)
	d := &fakeDialogue{}
	s, err := New(testConfig(), testDeps(t, d, reg, ratelimit.Config{}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	now := time.Now()
	mint := func(id tenant.ID, user string) (string, tenant.Principal) {
		tok, _, err := reg.Mint(id, user, time.Hour, now.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		p, err := reg.Verify(tok, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok, p
	}
	tokA1, pA1 := mint("bank-a", "u1")
	tokA1b, _ := mint("bank-a", "u1")
	tokA2, _ := mint("bank-a", "u2")
	tokB2, pB2 := mint("shop-b", "u2")
	for _, tok := range []string{tokA1, tokA1b, tokA2, tokB2} {
		if got := chatStatus(t, h, tok); got != http.StatusOK {
			t.Fatalf("before revoking: status %d", got)
		}
	}

	// One token.
	code, out, _ := revoke(t, h, apiKeyA, fmt.Sprintf(`{"jti":%q}`, pA1.TokenID))
	if code != http.StatusOK || out.Revoked != "token" || out.JTI != pA1.TokenID {
		t.Fatalf("revoke jti: %d %+v", code, out)
	}
	if got := chatStatus(t, h, tokA1); got != http.StatusUnauthorized {
		t.Errorf("revoked token: status %d, want 401", got)
	}
	if got := chatStatus(t, h, tokA1b); got != http.StatusOK {
		t.Errorf("the user's other token: status %d, want 200", got)
	}

	// A tenant cannot revoke another tenant's tokens: its key names its own users.
	code, _, _ = revoke(t, h, apiKeyA, `{"user_id":"u2"}`)
	if code != http.StatusOK {
		t.Fatalf("revoke user: %d", code)
	}
	if got := chatStatus(t, h, tokA2); got != http.StatusUnauthorized {
		t.Errorf("bank-a's revoked user: status %d, want 401", got)
	}
	if got := chatStatus(t, h, tokB2); got != http.StatusOK {
		t.Errorf("shop-b's user of the same id: status %d, want 200", got)
	}
	code, _, _ = revoke(t, h, apiKeyA, fmt.Sprintf(`{"jti":%q}`, pB2.TokenID))
	if code != http.StatusOK {
		t.Fatalf("revoke a jti of another tenant: %d (accepted as a jti of bank-a's)", code)
	}
	if got := chatStatus(t, h, tokB2); got != http.StatusOK {
		t.Errorf("bank-a revoking shop-b's jti reached shop-b: status %d", got)
	}
	// 4 before, then tokA1b, then tokB2 twice: the refused tokens never reached it.
	if n := len(d.recorded()); n != 7 {
		t.Errorf("the engine saw %d turns, want 7: refused tokens must not reach it", n)
	}
}

func TestRevocationAPIRefuses(t *testing.T) {
	s, err := New(testConfig(), testDeps(t, &fakeDialogue{}, realRegistry(t), ratelimit.Config{}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	for _, tt := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"no key", "", `{"jti":"x"}`, 401, "unauthenticated"},
		{"wrong key", "not-a-key-of-anyone-0123456789", `{"jti":"x"}`, 401, "unauthenticated"},
		{"a user token as the key", "eyJhbGciOiJIUzI1NiJ9.e30.x", `{"jti":"x"}`, 401, "unauthenticated"},
		{"neither", apiKeyA, `{}`, 400, "invalid_request"},
		{"both", apiKeyA, `{"jti":"x","user_id":"u"}`, 400, "invalid_request"},
		{"unknown field", apiKeyA, `{"jti":"x","tenant":"shop-b"}`, 400, "invalid_request"},
		{"empty jti", apiKeyA, `{"jti":""}`, 400, "invalid_request"},
		{"long jti", apiKeyA, `{"jti":"` + strings.Repeat("j", tenant.MaxTokenID+1) + `"}`, 400, "invalid_request"},
		{"control character", apiKeyA, `{"user_id":"u\u0007"}`, 400, "invalid_request"},
		{"malformed", apiKeyA, `{"jti":`, 400, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, e := revoke(t, h, tt.key, tt.body)
			if code != tt.status || e.Code != tt.code {
				t.Errorf("got %d %q, want %d %q", code, e.Code, tt.status, tt.code)
			}
		})
	}
}

// A revocation that could not be shared is in force here, and the caller is told to
// send it again.
func TestRevocationNotShared(t *testing.T) {
	reg := realRegistry(t, tenant.WithBroadcast(func(context.Context, string, []byte) error {
		return errors.New("nats: no servers available")
	}))
	s, err := New(testConfig(), testDeps(t, &fakeDialogue{}, reg, ratelimit.Config{}, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := reg.Mint("bank-a", "u1", time.Hour, time.Now().Add(-time.Minute))
	code, _, e := revoke(t, s.Handler(), apiKeyA, `{"user_id":"u1"}`)
	if code != http.StatusServiceUnavailable || e.Code != "unavailable" || strings.Contains(e.Message, "nats") {
		t.Errorf("got %d %q %q, want 503 unavailable without internals", code, e.Code, e.Message)
	}
	if got := chatStatus(t, s.Handler(), tok); got != http.StatusUnauthorized {
		t.Errorf("after the revocation: status %d, want 401", got)
	}
}
