package tenant

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/nlpclient/openai"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Test secrets: never used outside these tests.
const (
	secretA = "bank-a-test-secret-0123456789abcdef"
	secretB = "shop-b-test-secret-0123456789abcdef"
	apiKeyA = "bank-a-test-api-key-0123456789"
	apiKeyB = "shop-b-test-api-key-0123456789"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rsaKey is generated once: 2048-bit generation is slow under -race.
var rsaKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// writePEM writes pub as a PEM "PUBLIC KEY" file in a temporary directory.
func writePEM(t testing.TB, pub any) (path string, pemBytes []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path = filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, pemBytes
}

// fixture is a registry of four tenants: two HS256 (bank-a, shop-b), one RS256 (bank-c)
// and one EdDSA (bank-d), with the keys the tests sign with.
type fixture struct {
	reg    *Registry
	edPriv ed25519.PrivateKey
	rsaPEM []byte
}

func newFixture(t testing.TB, opts ...Option) *fixture {
	t.Helper()
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPath, _ := writePEM(t, edPub)
	rsaPath, rsaPEM := writePEM(t, &rsaKey().PublicKey)
	cfgs := []Config{
		{
			ID:      "bank-a",
			Keys:    []KeyConfig{{KID: "a1", Alg: AlgHS256, Secret: Secret{Value: secretA}}},
			APIKeys: []Secret{{Value: apiKeyA}},
		},
		{
			ID:      "shop-b",
			Keys:    []KeyConfig{{KID: "b1", Alg: AlgHS256, Secret: Secret{Env: "SHOP_B_SECRET"}}},
			APIKeys: []Secret{{Env: "SHOP_B_API_KEY"}},
		},
		{
			ID:       "bank-c",
			Issuer:   "https://idp.bank-c.example",
			Audience: "fengda-bank-c",
			Keys:     []KeyConfig{{KID: "idp-1", Alg: AlgRS256, PublicKeyFile: rsaPath}},
		},
		{
			ID:   "bank-d",
			Keys: []KeyConfig{{KID: "ed-1", Alg: AlgEdDSA, PublicKeyFile: edPath}},
		},
	}
	env := map[string]string{"SHOP_B_SECRET": secretB, "SHOP_B_API_KEY": apiKeyB}
	reg, err := NewRegistry(cfgs, func(k string) string { return env[k] }, opts...)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return &fixture{reg: reg, edPriv: edPriv, rsaPEM: rsaPEM}
}

// claims returns valid claims for tenant bank-a, changed by edit.
func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"tid": "bank-a",
		"sub": "user-1",
		"iat": testNow.Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
		"jti": "0123456789abcdef",
		"iss": "fengda",
		"aud": "fengda",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func b64(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"bank-a", false},
		{"a", false},
		{"0shop", false},
		{strings.Repeat("a", 32), false},
		{strings.Repeat("a", 33), true},
		{"", true},
		{"-bank", true},
		{"Bank", true},
		{"bank_a", true},
		{"bank a", true},
		{"bank.a", true},
		{"bank:a", true},
		{"bank-a\n", true},
		{"银行", true},
		{"ｂａｎｋ", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseID(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidID) {
					t.Fatalf("ParseID(%q) = %q, %v; want ErrInvalidID", tt.in, got, err)
				}
				return
			}
			if err != nil || got != ID(tt.in) {
				t.Fatalf("ParseID(%q) = %q, %v; want %q", tt.in, got, err, tt.in)
			}
		})
	}
}

func TestNewRegistryErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPath, _ := writePEM(t, edPub)

	hs := func(kid, secret string) KeyConfig {
		return KeyConfig{KID: kid, Alg: AlgHS256, Secret: Secret{Value: secret}}
	}
	ok := func(id string) Config { return Config{ID: id, Keys: []KeyConfig{hs("k1", secretA)}} }
	tests := []struct {
		name string
		cfgs []Config
		want string // the error starts with this
	}{
		{"no tenants", nil, "tenants: at least one tenant"},
		{"bad id", []Config{ok("Bank A")}, `tenants[0].id: invalid tenant id: "Bank A"`},
		{"duplicate id", []Config{ok("bank-a"), {ID: "bank-a", Keys: []KeyConfig{hs("k1", secretB)}}},
			`tenants[1].id: duplicate "bank-a" (also tenants[0])`},
		{"no keys", []Config{{ID: "bank-a"}}, "tenants[0].keys: at least one key, or a jwks_file, is required"},
		{"alg none", []Config{ok("bank-a"), {ID: "shop-b", Keys: []KeyConfig{{KID: "k", Alg: "none"}}}},
			`tenants[1].keys[0].alg: unsupported "none"`},
		{"alg HS512", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k", Alg: "HS512", Secret: Secret{Value: secretA}}}}},
			`tenants[0].keys[0].alg: unsupported "HS512"`},
		{"alg missing", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k", Secret: Secret{Value: secretA}}}}},
			"tenants[0].keys[0].alg: required"},
		{"kid missing", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("", secretA)}}}, "tenants[0].keys[0].kid: required"},
		{"kid control char", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k\n1", secretA)}}}, "tenants[0].keys[0].kid: at most"},
		{"duplicate kid", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA), hs("k1", secretA+"x")}}},
			`tenants[0].keys[1].kid: duplicate "k1"`},
		{"short secret", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", "short-secret")}}},
			"tenants[0].keys[0].secret: 12 bytes, need at least 32"},
		{"two secret sources", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Env: "X", Value: secretA}}}}},
			"tenants[0].keys[0].secret: set exactly one of env, file, value"},
		{"no secret source", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256}}}},
			"tenants[0].keys[0].secret: set exactly one of env, file, value"},
		{"env unset", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Env: "UNSET_SECRET"}}}}},
			"tenants[0].keys[0].secret: env UNSET_SECRET: empty or unset"},
		{"file missing", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{File: filepath.Join(dir, "nope")}}}}},
			"tenants[0].keys[0].secret: stat "},
		{"HS256 with public key", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Value: secretA}, PublicKeyFile: edPath}}}},
			"tenants[0].keys[0].public_key_file: not used with HS256"},
		{"RS256 without file", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgRS256}}}},
			"tenants[0].keys[0].public_key_file: required for RS256"},
		{"RS256 with secret", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgRS256, Secret: Secret{Value: secretA}}}}},
			"tenants[0].keys[0].secret: not used with RS256"},
		{"RS256 with an Ed25519 key", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgRS256, PublicKeyFile: edPath}}}},
			"tenants[0].keys[0].public_key_file: " + edPath + ": a ed25519.PublicKey key cannot verify RS256"},
		{"not PEM", []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgEdDSA, PublicKeyFile: garbage}}}},
			"tenants[0].keys[0].public_key_file: " + garbage + ": no PEM block"},
		{"shared HMAC secret", []Config{ok("bank-a"), ok("shop-b")},
			"tenants[1].keys[0].secret: same secret as tenants[0].keys[0].secret"},
		{"short API key", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, APIKeys: []Secret{{Value: "short"}}}},
			"tenants[0].api_keys[0]: 5 bytes, need at least 24"},
		{"API key without source", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, APIKeys: []Secret{{}}}},
			"tenants[0].api_keys[0]: set exactly one of env, file, value"},
		{"shared API key", []Config{
			{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, APIKeys: []Secret{{Value: apiKeyA}}},
			{ID: "shop-b", Keys: []KeyConfig{hs("k1", secretB)}, APIKeys: []Secret{{Value: apiKeyB}, {Value: apiKeyA}}},
		}, `tenants[1].api_keys[1]: same key as one of tenant "bank-a"`},
		{"negative history ttl", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, HistoryTTL: -time.Second}},
			"tenants[0].history_ttl: must not be negative"},
		{"negative rps", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, RateLimit: RateLimit{RPS: -1}}},
			"tenants[0].rate_limit.rps:"},
		{"negative burst", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, RateLimit: RateLimit{Burst: -1}}},
			"tenants[0].rate_limit.burst:"},
		{"min confidence above 1", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{MinConfidence: 2}}},
			"tenants[0].engine.min_confidence:"},
		{"unknown engine", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: "gpt"}}},
			`tenants[0].engine.kind: unknown "gpt"`},
		{"openai without base url", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: EngineOpenAI, LLM: LLM{Config: openai.Config{Model: "m"}}}}},
			"tenants[0].engine.llm.base_url: want an absolute http(s) URL"},
		{"openai relative url", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: EngineOpenAI, LLM: LLM{Config: openai.Config{BaseURL: "localhost:11434/v1", Model: "m"}}}}},
			"tenants[0].engine.llm.base_url: want an absolute http(s) URL"},
		{"openai without model", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: EngineOpenAI, LLM: LLM{Config: openai.Config{BaseURL: "http://127.0.0.1:11434/v1"}}}}},
			"tenants[0].engine.llm.model: required"},
		{"openai key env unset", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: EngineOpenAI,
			LLM: LLM{Config: openai.Config{BaseURL: "https://api.example.com/v1", Model: "m"}, APIKey: Secret{Env: "FENGDA_LLM_API_KEY"}}}}},
			"tenants[0].engine.llm.api_key: env FENGDA_LLM_API_KEY: empty or unset"},
		{"openai negative timeout", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: EngineOpenAI,
			LLM: LLM{Config: openai.Config{BaseURL: "https://api.example.com/v1", Model: "m", Timeout: -time.Second}}}}},
			"tenants[0].engine.llm.timeout: must not be negative"},
		{"openai temperature", []Config{{ID: "bank-a", Keys: []KeyConfig{hs("k1", secretA)}, Engine: Engine{Kind: EngineOpenAI,
			LLM: LLM{Config: openai.Config{BaseURL: "https://api.example.com/v1", Model: "m", Temperature: 3}}}}},
			"tenants[0].engine.llm.temperature: must be between 0 and 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := NewRegistry(tt.cfgs, func(string) string { return "" })
			if err == nil {
				t.Fatalf("NewRegistry = %v, nil; want error %q", reg, tt.want)
			}
			got := err.Error()
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("error = %q\nwant prefix %q", got, tt.want)
			}
			for _, secret := range []string{secretA, secretB, apiKeyA, apiKeyB} {
				if strings.Contains(got, secret) {
					t.Errorf("error %q holds a secret", got)
				}
			}
		})
	}
}

func TestNewRegistryDefaults(t *testing.T) {
	f := newFixture(t)
	got, err := f.reg.Get("bank-a")
	if err != nil {
		t.Fatal(err)
	}
	want := &Tenant{
		ID:             "bank-a",
		Name:           "bank-a",
		RateLimit:      RateLimit{RPS: 20, Burst: 40},
		Engine:         Engine{Kind: "faq"},
		FallbackAnswer: DefaultFallbackAnswer,
		Widget:         Widget{Lang: LangZH},
		Handoff:        Handoff{Phrases: DefaultHandoffPhrases, AfterUnresolved: DefaultAfterUnresolved},
		Mints:          true,
	}
	if diff := cmp.Diff(got, want, cmpopts.IgnoreUnexported(Handoff{})); diff != "" {
		t.Errorf("Get(bank-a) mismatch (-got +want):\n%s", diff)
	}

	// Get returns a copy: changing it changes nothing in the registry.
	got.Name = "changed"
	again, _ := f.reg.Get("bank-a")
	if again.Name != "bank-a" {
		t.Errorf("Get after changing a result: Name = %q, want bank-a", again.Name)
	}

	var ids []ID
	for _, tn := range f.reg.Tenants() {
		ids = append(ids, tn.ID)
	}
	if diff := cmp.Diff(ids, []ID{"bank-a", "bank-c", "bank-d", "shop-b"}); diff != "" {
		t.Errorf("Tenants() order (-got +want):\n%s", diff)
	}

	if _, err := f.reg.Get("nobody"); !errors.Is(err, ErrUnknown) {
		t.Errorf("Get(nobody) error = %v, want ErrUnknown", err)
	}
}

func TestNewRegistryConfiguredValues(t *testing.T) {
	reg, err := NewRegistry([]Config{{
		ID:             "bank-a",
		Name:           "Bank A",
		Keys:           []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Value: secretA}}},
		RateLimit:      RateLimit{RPS: 5},
		Engine:         Engine{Kind: EngineOpenAI, KB: "kb/bank-a.yaml", MinConfidence: 0.4, LLM: LLM{Config: openai.Config{BaseURL: "http://127.0.0.1:8000/v1", Model: "qwen2.5"}}},
		FallbackAnswer: "请稍后再试",
		HistoryTTL:     72 * time.Hour,
		AllowedOrigins: []string{"https://www.bank-a.example"},
		Widget:         Widget{Lang: LangEN, Greeting: "Hello"},
		Handoff: Handoff{Phrases: []string{" agent please "}, AfterUnresolved: 3,
			Hours:      Hours{Timezone: "Asia/Shanghai", Days: []string{"mon", "FRI"}, Open: "09:00", Close: "18:00"},
			WebhookURL: "https://desk.bank-a.example/hook", WebhookSecret: Secret{Value: "0123456789abcdef"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := reg.Get("bank-a")
	want := &Tenant{
		ID:             "bank-a",
		Name:           "Bank A",
		RateLimit:      RateLimit{RPS: 5, Burst: 10},
		Engine:         Engine{Kind: EngineOpenAI, KB: "kb/bank-a.yaml", MinConfidence: 0.4, LLM: LLM{Config: openai.Config{BaseURL: "http://127.0.0.1:8000/v1", Model: "qwen2.5"}}},
		FallbackAnswer: "请稍后再试",
		HistoryTTL:     72 * time.Hour,
		AllowedOrigins: []string{"https://www.bank-a.example"},
		Widget:         Widget{Lang: LangEN, Greeting: "Hello"},
		Handoff: Handoff{Phrases: []string{"agent please"}, AfterUnresolved: 3,
			Hours:      Hours{Timezone: "Asia/Shanghai", Days: []string{"mon", "FRI"}, Open: "09:00", Close: "18:00"},
			WebhookURL: "https://desk.bank-a.example/hook", WebhookSecret: Secret{Value: "0123456789abcdef"}},
		Mints: true,
	}
	if diff := cmp.Diff(got, want, cmpopts.IgnoreUnexported(Handoff{})); diff != "" {
		t.Errorf("Get(bank-a) mismatch (-got +want):\n%s", diff)
	}
}

func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(secretA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := NewRegistry([]Config{{
		ID:   "bank-a",
		Keys: []KeyConfig{{KID: "a1", Alg: AlgHS256, Secret: Secret{File: path}}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A token signed with the file's content minus its newline verifies.
	tok := sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(nil))
	if _, err := reg.Verify(tok, testNow); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestMintVerify(t *testing.T) {
	f := newFixture(t)
	for _, id := range []ID{"bank-a", "shop-b"} {
		t.Run(string(id), func(t *testing.T) {
			tok, exp, err := f.reg.Mint(id, "用户-42", 15*time.Minute, testNow)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if want := testNow.Add(15 * time.Minute); !exp.Equal(want) {
				t.Errorf("expires = %v, want %v", exp, want)
			}
			got, err := f.reg.Verify(tok, testNow.Add(time.Minute))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.TokenID == "" {
				t.Error("TokenID is empty")
			}
			want := Principal{Tenant: id, User: "用户-42", TokenID: got.TokenID, IssuedAt: testNow, Role: RoleUser}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Verify mismatch (-got +want):\n%s", diff)
			}

			// The token says what Mint promises.
			parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			c := parsed.Claims.(jwt.MapClaims)
			jti, _ := c["jti"].(string)
			if b, err := hex.DecodeString(jti); err != nil || len(b) != 16 {
				t.Errorf("jti = %q, want 32 hex digits", jti)
			}
			kid := map[ID]string{"bank-a": "a1", "shop-b": "b1"}[id]
			gotHeader := map[string]any{"alg": parsed.Header["alg"], "kid": parsed.Header["kid"]}
			if diff := cmp.Diff(gotHeader, map[string]any{"alg": "HS256", "kid": kid}); diff != "" {
				t.Errorf("header mismatch (-got +want):\n%s", diff)
			}
			delete(c, "jti")
			wantClaims := jwt.MapClaims{
				"tid": string(id), "sub": "用户-42", "iss": "fengda", "aud": "fengda",
				"iat": float64(testNow.Unix()), "exp": float64(testNow.Add(15 * time.Minute).Unix()),
				"role": RoleUser,
			}
			if diff := cmp.Diff(c, wantClaims); diff != "" {
				t.Errorf("claims mismatch (-got +want):\n%s", diff)
			}
		})
	}

	t.Run("unique jti", func(t *testing.T) {
		a, _, _ := f.reg.Mint("bank-a", "u", time.Minute, testNow)
		b, _, _ := f.reg.Mint("bank-a", "u", time.Minute, testNow)
		pa, _ := f.reg.Verify(a, testNow)
		pb, _ := f.reg.Verify(b, testNow)
		if pa.TokenID == pb.TokenID {
			t.Errorf("two tokens share jti %q", pa.TokenID)
		}
	})

	t.Run("expiry and leeway", func(t *testing.T) {
		tok, exp, err := f.reg.Mint("bank-a", "u", time.Minute, testNow)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.reg.Verify(tok, exp.Add(Leeway-time.Second)); err != nil {
			t.Errorf("Verify within leeway: %v", err)
		}
		if _, err := f.reg.Verify(tok, exp.Add(Leeway+time.Second)); !errors.Is(err, errExpired) {
			t.Errorf("Verify after expiry: %v, want %v", err, errExpired)
		}
	})
}

func TestMintErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		id   ID
		user string
		ttl  time.Duration
		want error // nil: any error
	}{
		{"unknown tenant", "nobody", "u", time.Minute, ErrUnknown},
		{"RS256 tenant", "bank-c", "u", time.Minute, ErrNoSigningKey},
		{"EdDSA tenant", "bank-d", "u", time.Minute, ErrNoSigningKey},
		{"empty user", "bank-a", "", time.Minute, nil},
		{"long user", "bank-a", strings.Repeat("u", MaxUser+1), time.Minute, nil},
		{"newline in user", "bank-a", "u\nforged log line", time.Minute, nil},
		{"invalid UTF-8 user", "bank-a", "u\xff", time.Minute, nil},
		{"zero ttl", "bank-a", "u", 0, nil},
		{"negative ttl", "bank-a", "u", -time.Minute, nil},
		{"ttl over a day", "bank-a", "u", MaxTokenTTL + time.Second, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, err := f.reg.Mint(tt.id, tt.user, tt.ttl, testNow)
			if err == nil {
				t.Fatalf("Mint = %q, nil; want an error", tok)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Mint error = %v, want %v", err, tt.want)
			}
		})
	}
	if _, _, err := f.reg.Mint("bank-a", strings.Repeat("u", MaxUser), MaxTokenTTL, testNow); err != nil {
		t.Errorf("Mint at the limits: %v", err)
	}
}

func TestMintRole(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		role, disp string
		wantClaims jwt.MapClaims // role and name as written
	}{
		{"user", RoleUser, "", jwt.MapClaims{"role": RoleUser}},
		{"agent with a name", RoleAgent, "李伟 Li Wei", jwt.MapClaims{"role": RoleAgent, "name": "李伟 Li Wei"}},
		{"agent without a name", RoleAgent, "", jwt.MapClaims{"role": RoleAgent}},
		{"admin", RoleAdmin, "Ops", jwt.MapClaims{"role": RoleAdmin, "name": "Ops"}},
		{"name of 64 runes", RoleAgent, strings.Repeat("名", MaxName), jwt.MapClaims{"role": RoleAgent, "name": strings.Repeat("名", MaxName)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, err := f.reg.MintRole("bank-a", "agent-7", tt.role, tt.disp, time.Hour, testNow)
			if err != nil {
				t.Fatalf("MintRole: %v", err)
			}
			got, err := f.reg.Verify(tok, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Principal{Tenant: "bank-a", User: "agent-7", TokenID: got.TokenID, IssuedAt: testNow, Role: tt.role, Name: tt.disp}
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("Verify mismatch (-got +want):\n%s", diff)
			}
			parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			if err != nil {
				t.Fatal(err)
			}
			c := parsed.Claims.(jwt.MapClaims)
			gotClaims := jwt.MapClaims{}
			for _, k := range []string{"role", "name"} {
				if v, ok := c[k]; ok {
					gotClaims[k] = v
				}
			}
			if diff := cmp.Diff(gotClaims, tt.wantClaims); diff != "" {
				t.Errorf("role and name claims (-got +want):\n%s", diff)
			}
		})
	}

	refused := []struct {
		name       string
		role, disp string
	}{
		{"empty role", "", ""},
		{"unknown role", "root", ""},
		{"role in capitals", "Agent", ""},
		{"name with a newline", RoleAgent, "Li\nWei"},
		{"name with an escape", RoleAgent, "Li\x1b[31mWei"},
		{"name of invalid UTF-8", RoleAgent, "Li\xff"},
		{"name of 65 runes", RoleAgent, strings.Repeat("名", MaxName+1)},
	}
	for _, tt := range refused {
		t.Run("refused/"+tt.name, func(t *testing.T) {
			tok, _, err := f.reg.MintRole("bank-a", "agent-7", tt.role, tt.disp, time.Hour, testNow)
			if !errors.Is(err, ErrInvalidClaim) {
				t.Errorf("MintRole = %q, %v; want %v", tok, err, ErrInvalidClaim)
			}
		})
	}
	if _, _, err := f.reg.MintRole("bank-a", "", RoleAgent, "", time.Hour, testNow); !errors.Is(err, ErrInvalidClaim) {
		t.Errorf("MintRole without a user: %v, want %v", err, ErrInvalidClaim)
	}
	if _, _, err := f.reg.MintRole("bank-c", "u", RoleAgent, "", time.Hour, testNow); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("MintRole for an RS256 tenant: %v, want %v", err, ErrNoSigningKey)
	}
}

func TestValidRole(t *testing.T) {
	for role, want := range map[string]bool{
		RoleUser: true, RoleAgent: true, RoleAdmin: true,
		"": false, "root": false, "User": false, " user": false, "agent\n": false,
	} {
		if got := ValidRole(role); got != want {
			t.Errorf("ValidRole(%q) = %v, want %v", role, got, want)
		}
	}
}

func TestVerifyAccepts(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		token string
		want  Principal
	}{
		{
			"HS256 handmade",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(nil)),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleUser},
		},
		{
			"audience list, sid, no jti",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) {
				c["aud"] = []string{"other", "fengda"}
				c["sid"] = "s-1"
				delete(c, "jti")
			})),
			Principal{Tenant: "bank-a", User: "user-1", IssuedAt: testNow, Role: RoleUser},
		},
		{
			"EdDSA from the tenant's IdP",
			sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed-1", claims(func(c jwt.MapClaims) { c["tid"] = "bank-d" })),
			Principal{Tenant: "bank-d", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleUser},
		},
		{
			"RS256 with the tenant's own iss and aud",
			sign(t, jwt.SigningMethodRS256, rsaKey(), "idp-1", claims(func(c jwt.MapClaims) {
				c["tid"] = "bank-c"
				c["iss"] = "https://idp.bank-c.example"
				c["aud"] = "fengda-bank-c"
			})),
			Principal{Tenant: "bank-c", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleUser},
		},
		{
			"issued a little in the future (skew)",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) { c["iat"] = testNow.Add(20 * time.Second).Unix() })),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow.Add(20 * time.Second), Role: RoleUser},
		},
		{
			"no iat",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) { delete(c, "iat") })),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", Role: RoleUser},
		},
		{
			"role user, said",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) { c["role"] = RoleUser })),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleUser},
		},
		{
			"agent with a name",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) {
				c["role"] = RoleAgent
				c["name"] = "李伟 (Li Wei)"
			})),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleAgent, Name: "李伟 (Li Wei)"},
		},
		{
			"admin, name of 64 runes",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) {
				c["role"] = RoleAdmin
				c["name"] = strings.Repeat("名", MaxName)
			})),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleAdmin, Name: strings.Repeat("名", MaxName)},
		},
		{
			"empty name",
			sign(t, jwt.SigningMethodHS256, []byte(secretA), "a1", claims(func(c jwt.MapClaims) { c["name"] = "" })),
			Principal{Tenant: "bank-a", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleUser},
		},
		{
			"EdDSA agent from the tenant's IdP",
			sign(t, jwt.SigningMethodEdDSA, f.edPriv, "ed-1", claims(func(c jwt.MapClaims) {
				c["tid"] = "bank-d"
				c["role"] = RoleAgent
				c["name"] = "Li Wei"
			})),
			Principal{Tenant: "bank-d", User: "user-1", TokenID: "0123456789abcdef", IssuedAt: testNow, Role: RoleAgent, Name: "Li Wei"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.reg.Verify(tt.token, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Verify mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	hsA := func(kid string, edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodHS256, []byte(secretA), kid, claims(edit))
	}
	valid := hsA("a1", nil)
	parts := strings.Split(valid, ".")

	otherEd := func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}()

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", errEmpty},
		{"garbage", "not a token", errMalformed},
		{"two segments", parts[0] + "." + parts[1], errMalformed},
		{"oversized", valid + strings.Repeat("A", MaxTokenSize), errTooLarge},
		{"many dots", strings.Repeat(".", MaxTokenSize+1), errTooLarge},
		{"expired", hsA("a1", func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Minute).Unix() }), errExpired},
		{"missing exp", hsA("a1", func(c jwt.MapClaims) { delete(c, "exp") }), errNoExp},
		{"exp as a string", hsA("a1", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), errMalformed},
		{"issued in the future", hsA("a1", func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Hour).Unix() }), errFuture},
		{"not valid yet", hsA("a1", func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Hour).Unix() }), errFuture},
		{
			"alg none",
			b64(t, map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(t, claims(nil)) + ".",
			errAlg,
		},
		{
			"alg none with kid",
			b64(t, map[string]string{"alg": "none", "typ": "JWT", "kid": "a1"}) + "." + b64(t, claims(nil)) + ".",
			errAlg,
		},
		{"alg HS512", sign(t, jwt.SigningMethodHS512, []byte(secretA), "a1", claims(nil)), errAlg},
		{"alg unknown", b64(t, map[string]string{"alg": "XS999", "kid": "a1"}) + "." + b64(t, claims(nil)) + ".c2ln", errAlg},
		{"A's key, tid B, B's kid", hsA("b1", func(c jwt.MapClaims) { c["tid"] = "shop-b" }), errSignature},
		{"A's key, tid B, A's kid", hsA("a1", func(c jwt.MapClaims) { c["tid"] = "shop-b" }), errUnknownKID},
		{"unknown kid", hsA("a2", nil), errUnknownKID},
		{"missing kid", hsA("", nil), errNoKID},
		{"unknown tenant", hsA("a1", func(c jwt.MapClaims) { c["tid"] = "nobody" }), errUnknownTenant},
		{"invalid tid", hsA("a1", func(c jwt.MapClaims) { c["tid"] = "Bank A" }), errBadTID},
		{"missing tid", hsA("a1", func(c jwt.MapClaims) { delete(c, "tid") }), errBadTID},
		{"wrong iss", hsA("a1", func(c jwt.MapClaims) { c["iss"] = "someone-else" }), errIssuer},
		{"missing iss", hsA("a1", func(c jwt.MapClaims) { delete(c, "iss") }), errIssuer},
		{"wrong aud", hsA("a1", func(c jwt.MapClaims) { c["aud"] = "someone-else" }), errAudience},
		{"missing aud", hsA("a1", func(c jwt.MapClaims) { delete(c, "aud") }), errAudience},
		{"another tenant's iss", sign(t, jwt.SigningMethodRS256, rsaKey(), "idp-1", claims(func(c jwt.MapClaims) { c["tid"] = "bank-c" })), errIssuer},
		{"missing sub", hsA("a1", func(c jwt.MapClaims) { delete(c, "sub") }), errSubject},
		{"sub with a newline", hsA("a1", func(c jwt.MapClaims) { c["sub"] = "u\nx" }), errSubject},
		{"unknown role", hsA("a1", func(c jwt.MapClaims) { c["role"] = "root" }), errRole},
		{"role in capitals", hsA("a1", func(c jwt.MapClaims) { c["role"] = "Agent" }), errRole},
		{"empty role", hsA("a1", func(c jwt.MapClaims) { c["role"] = "" }), errRole},
		{"null role", hsA("a1", func(c jwt.MapClaims) { c["role"] = nil }), errRole},
		{"role as a number", hsA("a1", func(c jwt.MapClaims) { c["role"] = 1 }), errRole},
		{"role as a list", hsA("a1", func(c jwt.MapClaims) { c["role"] = []string{RoleAgent} }), errRole},
		{"name as a number", hsA("a1", func(c jwt.MapClaims) { c["name"] = 7 }), errName},
		{"null name", hsA("a1", func(c jwt.MapClaims) { c["name"] = nil }), errName},
		{"name with a newline", hsA("a1", func(c jwt.MapClaims) { c["name"] = "Li\nWei" }), errName},
		{"name of 65 runes", hsA("a1", func(c jwt.MapClaims) { c["name"] = strings.Repeat("名", MaxName+1) }), errName},
		{
			"agent role forged into a user token",
			parts[0] + "." + b64(t, claims(func(c jwt.MapClaims) { c["role"] = RoleAgent })) + "." + parts[2],
			errSignature,
		},
		{
			"tampered payload",
			parts[0] + "." + b64(t, claims(func(c jwt.MapClaims) { c["sub"] = "admin" })) + "." + parts[2],
			errSignature,
		},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), errSignature},
		{"signature stripped", parts[0] + "." + parts[1] + ".", errSignature},
		{
			// The RS256 tenant's public key is public: an attacker signs HS256 with its PEM.
			"alg confusion: HS256 with the RSA public key as secret",
			sign(t, jwt.SigningMethodHS256, f.rsaPEM, "idp-1", claims(func(c jwt.MapClaims) {
				c["tid"] = "bank-c"
				c["iss"] = "https://idp.bank-c.example"
				c["aud"] = "fengda-bank-c"
			})),
			errAlgMismatch,
		},
		{"EdDSA signed by another key", sign(t, jwt.SigningMethodEdDSA, otherEd, "ed-1", claims(func(c jwt.MapClaims) { c["tid"] = "bank-d" })), errSignature},
		{"EdDSA token for an HS256 kid", sign(t, jwt.SigningMethodEdDSA, f.edPriv, "a1", claims(nil)), errAlgMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.reg.Verify(tt.token, testNow)
			if err == nil {
				t.Fatalf("Verify = %+v, nil; want %v", got, tt.want)
			}
			if !errors.Is(err, ErrUnauthenticated) || !errors.Is(err, tt.want) {
				t.Errorf("Verify error = %v, want %v wrapping %v", err, ErrUnauthenticated, tt.want)
			}
			if got != (Principal{}) {
				t.Errorf("Verify returned %+v with its error", got)
			}
			// The reason is safe to log: a fixed phrase, never a part of the token.
			if want := "unauthenticated: " + tt.want.Error(); err.Error() != want {
				t.Errorf("error text = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestByAPIKey(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		key  string
		want ID // "": ErrUnknown
	}{
		{"bank-a", apiKeyA, "bank-a"},
		{"shop-b from env", apiKeyB, "shop-b"},
		{"empty", "", ""},
		{"prefix", apiKeyA[:len(apiKeyA)-1], ""},
		{"longer", apiKeyA + "x", ""},
		{"JWT secret is not an API key", secretA, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.reg.ByAPIKey(tt.key)
			if tt.want == "" {
				if !errors.Is(err, ErrUnknown) {
					t.Fatalf("ByAPIKey = %v, %v; want ErrUnknown", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ByAPIKey: %v", err)
			}
			if got.ID != tt.want {
				t.Errorf("ByAPIKey = %s, want %s", got.ID, tt.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	valid, _, err := fx.reg.Mint("bank-a", "user-1", time.Hour, testNow)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	none := b64(f, map[string]string{"alg": "none", "typ": "JWT", "kid": "a1"}) + "." + parts[1] + "."
	for _, seed := range []string{
		"",
		"a.b.c",
		"...",
		none,
		parts[0] + "." + parts[1] + ".",
		valid[:len(valid)-1],
		valid + "A",
		parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[2],
		sign(f, jwt.SigningMethodHS256, fx.rsaPEM, "idp-1", claims(func(c jwt.MapClaims) { c["tid"] = "bank-c" })),
		sign(f, jwt.SigningMethodHS256, []byte(secretA), "b1", claims(func(c jwt.MapClaims) { c["tid"] = "shop-b" })),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := fx.reg.Verify(token, testNow)
		if err == nil {
			// Only the one genuine token may pass: strict decoding leaves no second
			// spelling of it.
			if token != valid {
				t.Fatalf("Verify accepted %q as %+v", token, p)
			}
			return
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("Verify error %v does not wrap ErrUnauthenticated", err)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	tok, _, err := f.reg.Mint("bank-a", "user-1", time.Hour, testNow)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.reg.Verify(tok, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// TestVerifyRemembersOnlyWhatItChecked: a token that passed is answered again from the
// cache, but only inside the window its time claims allow, and only byte for byte.
func TestVerifyRemembersOnlyWhatItChecked(t *testing.T) {
	f := newFixture(t)
	tok, exp, err := f.reg.Mint("bank-a", "u-1", time.Minute, testNow)
	if err != nil {
		t.Fatal(err)
	}
	first, err := f.reg.Verify(tok, testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if _, ok := f.reg.verified.get(tok, testNow); !ok {
		t.Fatal("a verified token was not remembered")
	}
	again, err := f.reg.Verify(tok, testNow.Add(30*time.Second))
	if err != nil || again != first {
		t.Errorf("Verify again = %v, %v; want %v", again, err, first)
	}
	if _, err := f.reg.Verify(tok, exp.Add(Leeway+time.Second)); !errors.Is(err, errExpired) {
		t.Errorf("Verify after expiry: %v, want %v", err, errExpired)
	}
	if _, err := f.reg.Verify(tok, testNow.Add(-Leeway-time.Second)); !errors.Is(err, errFuture) {
		t.Errorf("Verify before iat: %v, want %v", err, errFuture)
	}
	// Another signature on the same claims is checked, not looked up.
	forged := tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok, "AA")]
	if _, err := f.reg.Verify(forged, testNow); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Verify of a changed signature: %v, want refused", err)
	}
	if _, ok := f.reg.verified.get(forged, testNow); ok {
		t.Error("a refused token was remembered")
	}
}
