package tenant

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// mustVerify verifies tok at now, failing the test on an error.
func mustVerify(t *testing.T, r *Registry, tok string, now time.Time) Principal {
	t.Helper()
	p, err := r.Verify(tok, now)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return p
}

func wantRevoked(t *testing.T, r *Registry, tok string, now time.Time) {
	t.Helper()
	_, err := r.Verify(tok, now)
	if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, errRevoked) {
		t.Fatalf("Verify = %v, want %v wrapping %v", err, ErrUnauthenticated, errRevoked)
	}
}

// Revoking a token refuses it, including from the verified-token cache, and nothing else.
func TestRevokeToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok1, _, _ := f.reg.Mint("bank-a", "u1", time.Hour, testNow)
	tok2, _, _ := f.reg.Mint("bank-a", "u1", time.Hour, testNow)
	p1 := mustVerify(t, f.reg, tok1, testNow) // now in the cache
	mustVerify(t, f.reg, tok2, testNow)

	if err := f.reg.Revoke(ctx, Revocation{Tenant: "bank-a", TokenID: p1.TokenID}, testNow.Add(time.Minute)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	wantRevoked(t, f.reg, tok1, testNow.Add(2*time.Minute))
	mustVerify(t, f.reg, tok2, testNow.Add(2*time.Minute)) // same user, another token
}

// Revoking a user refuses every token of theirs issued up to now, and none issued
// later, nor another user's, nor the same user id of another tenant.
func TestRevokeUser(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old, _, _ := f.reg.Mint("bank-a", "u1", time.Hour, testNow)
	sameSecond, _, _ := f.reg.Mint("bank-a", "u1", time.Hour, testNow.Add(10*time.Second))
	other, _, _ := f.reg.Mint("bank-a", "u2", time.Hour, testNow)
	otherTenant, _, _ := f.reg.Mint("shop-b", "u1", time.Hour, testNow)
	noIAT := sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) {
		c["sub"] = "u1"
		delete(c, "iat")
	}))
	mustVerify(t, f.reg, old, testNow.Add(10*time.Second))

	revokedAt := testNow.Add(10 * time.Second)
	if err := f.reg.Revoke(ctx, Revocation{Tenant: "bank-a", User: "u1"}, revokedAt); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	later, _, _ := f.reg.Mint("bank-a", "u1", time.Hour, revokedAt.Add(time.Second))
	at := revokedAt.Add(2 * time.Second)
	wantRevoked(t, f.reg, old, at)
	wantRevoked(t, f.reg, sameSecond, at)
	wantRevoked(t, f.reg, noIAT, at) // cannot show it was issued after
	mustVerify(t, f.reg, later, at)
	mustVerify(t, f.reg, other, at)
	mustVerify(t, f.reg, otherTenant, at)

	// An older cut arriving late does not bring revoked tokens back.
	if err := f.reg.Revoke(ctx, Revocation{Tenant: "bank-a", User: "u1", Before: testNow.Add(-time.Hour)}, at); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, f.reg, sameSecond, at)
}

// What Revoke broadcasts, ApplyRevocation on another replica applies: the same tokens
// are refused there. No raw jti or user id travels.
func TestRevocationBroadcast(t *testing.T) {
	type record struct {
		key   string
		value []byte
	}
	var mu sync.Mutex
	var sent []record
	// Two replicas with the same configuration.
	b := newFixture(t)
	a := newFixture(t, WithBroadcast(func(_ context.Context, key string, value []byte) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, record{key, value})
		return b.reg.ApplyRevocation(key, value)
	}))
	tok, _, _ := a.reg.Mint("bank-a", "user-with-phone-13812345678", time.Hour, testNow)
	p := mustVerify(t, b.reg, tok, testNow)
	ctx := context.Background()
	if err := a.reg.Revoke(ctx, Revocation{Tenant: "bank-a", TokenID: p.TokenID}, testNow); err != nil {
		t.Fatal(err)
	}
	if err := a.reg.Revoke(ctx, Revocation{Tenant: "bank-a", User: p.User}, testNow); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, b.reg, tok, testNow.Add(time.Second))
	if len(sent) != 2 {
		t.Fatalf("%d records broadcast, want 2", len(sent))
	}
	for _, r := range sent {
		if !strings.HasPrefix(r.key, "bank-a.") {
			t.Errorf("key %q does not start with the tenant", r.key)
		}
		for _, secret := range []string{p.TokenID, p.User, "13812345678"} {
			if strings.Contains(r.key, secret) || strings.Contains(string(r.value), secret) {
				t.Errorf("record %q %s holds %q", r.key, r.value, secret)
			}
		}
	}

	// A failing broadcast still revokes here, and says so.
	c := newFixture(t, WithBroadcast(func(context.Context, string, []byte) error { return errors.New("nats down") }))
	tok2, _, _ := c.reg.Mint("bank-a", "u9", time.Hour, testNow)
	p2 := mustVerify(t, c.reg, tok2, testNow)
	if err := c.reg.Revoke(ctx, Revocation{Tenant: "bank-a", TokenID: p2.TokenID}, testNow); err == nil {
		t.Error("Revoke with a failing broadcast returned nil")
	}
	wantRevoked(t, c.reg, tok2, testNow)
}

func TestRevokeRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name string
		rv   Revocation
		want error
	}{
		{"nothing named", Revocation{Tenant: "bank-a"}, ErrInvalidRevocation},
		{"both named", Revocation{Tenant: "bank-a", TokenID: "j", User: "u"}, ErrInvalidRevocation},
		{"jti too long", Revocation{Tenant: "bank-a", TokenID: strings.Repeat("j", MaxTokenID+1)}, ErrInvalidRevocation},
		{"jti with a newline", Revocation{Tenant: "bank-a", TokenID: "j\n"}, ErrInvalidRevocation},
		{"user too long", Revocation{Tenant: "bank-a", User: strings.Repeat("u", MaxUser+1)}, ErrInvalidRevocation},
		{"unknown tenant", Revocation{Tenant: "nobody", User: "u"}, ErrUnknown},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := f.reg.Revoke(ctx, tt.rv, testNow); !errors.Is(err, tt.want) {
				t.Errorf("Revoke = %v, want %v", err, tt.want)
			}
		})
	}
	for _, rec := range []struct{ key, value string }{
		{"nobody.t.00112233445566778899aabbccddeeff", `{"at":1}`},
		{"bank-a.x.00112233445566778899aabbccddeeff", `{"at":1}`},
		{"bank-a.t.0011", `{"at":1}`},
		{"bank-a.t.00112233445566778899aabbccddeeff", `not json`},
		{"bank-a.t", `{"at":1}`},
		{"../etc.t.00112233445566778899aabbccddeeff", `{"at":1}`},
	} {
		if err := f.reg.ApplyRevocation(rec.key, []byte(rec.value)); err == nil {
			t.Errorf("ApplyRevocation(%q, %q) = nil", rec.key, rec.value)
		}
	}
}

// Revocations are dropped after their retention, so the set cannot grow for ever.
func TestRevocationsPruned(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.reg.Revoke(ctx, Revocation{Tenant: "bank-a", TokenID: "old"}, testNow); err != nil {
		t.Fatal(err)
	}
	later := testNow.Add(RevocationRetention + time.Hour)
	if err := f.reg.Revoke(ctx, Revocation{Tenant: "shop-b", TokenID: "new"}, later); err != nil {
		t.Fatal(err)
	}
	if f.reg.revoked.revoked(Principal{Tenant: "bank-a", User: "u", TokenID: "old"}) {
		t.Error("a revocation older than the retention is still held")
	}
	if !f.reg.revoked.revoked(Principal{Tenant: "shop-b", User: "u", TokenID: "new"}) {
		t.Error("a fresh revocation is gone")
	}
}

// BenchmarkVerifyCached is the cost of a remembered token, with and without revocations
// held for its tenant.
func BenchmarkVerifyCached(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(map[int]string{0: "revocations=0", 1000: "revocations=1000"}[n], func(b *testing.B) {
			f := newFixture(b)
			tok, _, _ := f.reg.Mint("bank-a", "u1", time.Hour, testNow)
			for i := range n {
				_ = f.reg.Revoke(context.Background(), Revocation{Tenant: "bank-a", TokenID: "j" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i%10))}, testNow)
				_ = f.reg.Revoke(context.Background(), Revocation{Tenant: "bank-a", User: "other" + string(rune('a'+i%26))}, testNow)
			}
			if _, err := f.reg.Verify(tok, testNow); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.reg.Verify(tok, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
