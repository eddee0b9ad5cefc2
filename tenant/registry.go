package tenant

import (
	"cmp"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Algorithms a tenant key may use. Anything else, "none" included, is refused at start-up
// and at verification.
const (
	AlgHS256 = "HS256"
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
)

// Limits and defaults applied by NewRegistry, Mint and Verify.
const (
	// DefaultIssuer and DefaultAudience are the JWT iss and aud of a tenant that sets none.
	DefaultIssuer   = "fengda"
	DefaultAudience = "fengda"
	// DefaultFallbackAnswer is shown when no engine can answer. It is bilingual because the
	// registry does not know the user's language.
	DefaultFallbackAnswer = "系统繁忙,请稍后再试 / The service is busy, please try again later."
	// DefaultRPS is a tenant's rate when its config sets none; the burst defaults to 2×RPS.
	DefaultRPS = 20

	// MinHMACSecret is the shortest HS256 secret accepted (RFC 7518 §3.2: at least the
	// size of the hash output).
	MinHMACSecret = 32
	// MinAPIKey is the shortest API key accepted.
	MinAPIKey = 24
	// MaxTokenSize bounds the token Verify will parse. golang-jwt before v5.2.2 spent
	// memory quadratic in the number of dots (CVE-2025-30204); real tokens are well under
	// 1 KiB, and the HTTP header limit is 8 KiB.
	MaxTokenSize = 4096
	// MaxUser is the longest user ID (sub) in bytes.
	MaxUser = 128
	// MaxTokenTTL is the longest lifetime Mint grants.
	MaxTokenTTL = 24 * time.Hour
	// Leeway is the clock skew tolerated on exp and iat.
	Leeway = 30 * time.Second

	maxKID        = 64
	maxSecretFile = 64 << 10
)

var validMethods = []string{AlgHS256, AlgEdDSA, AlgRS256}

// KeyConfig is one JWT key of a tenant, selected by the token's kid header.
type KeyConfig struct {
	KID string `yaml:"kid"`
	// Alg is HS256 (Secret), or EdDSA / RS256 (PublicKeyFile, PEM: verify only).
	Alg           string `yaml:"alg"`
	Secret        Secret `yaml:"secret"`
	PublicKeyFile string `yaml:"public_key_file"`
}

// Config is one tenant as written in config.yaml under tenants:.
type Config struct {
	ID       string      `yaml:"id"`
	Name     string      `yaml:"name"`     // default: the ID
	Issuer   string      `yaml:"issuer"`   // JWT iss; default "fengda"
	Audience string      `yaml:"audience"` // JWT aud; default "fengda"
	Keys     []KeyConfig `yaml:"keys"`
	// JWKSFile is a JSON Web Key Set file of the tenant's identity provider (EdDSA and
	// RS256 keys, selected by kid); SIGHUP reloads it. Never a URL.
	JWKSFile       string        `yaml:"jwks_file"`
	APIKeys        []Secret      `yaml:"api_keys"`
	RateLimit      RateLimit     `yaml:"rate_limit"` // default 20 rps; burst default 2×rps
	Engine         Engine        `yaml:"engine"`     // kind default "faq"
	FallbackAnswer string        `yaml:"fallback_answer"`
	HistoryTTL     time.Duration `yaml:"history_ttl"` // 0: the session store's default
	// AllowedOrigins are the web origins ("https://www.bank.example") whose pages may
	// call the API from a browser (CORS) and frame the tenant's chat page; "*" is any.
	AllowedOrigins []string `yaml:"allowed_origins"`
	Widget         Widget   `yaml:"widget"`
	// Handoff is how customers reach a person (human handoff, 转人工).
	Handoff Handoff `yaml:"handoff"`
}

// Tenant is one configured, validated tenant.
type Tenant struct {
	ID             ID
	Name           string
	RateLimit      RateLimit
	Engine         Engine
	FallbackAnswer string
	HistoryTTL     time.Duration
	// AllowedOrigins are normalised origins (scheme://host[:port], lower case) or "*".
	AllowedOrigins []string
	Widget         Widget
	Handoff        Handoff
	// Mints is true when the tenant has an HS256 key, so that Fengda can sign its users'
	// tokens (POST /v1/tokens, demo tokens).
	Mints bool
}

// key is one verification (and, for HS256, signing) key of a tenant.
type key struct {
	kid    string
	alg    string
	verify any // []byte for HS256, ed25519.PublicKey, *rsa.PublicKey
}

// entry is everything the registry knows about one tenant.
type entry struct {
	tenant   Tenant
	issuer   string
	audience string
	keys     map[string]*key
	signing  *key // first HS256 key, nil when the tenant cannot mint
	jwksFile string
	jwks     atomic.Pointer[map[string]*key] // the key set's keys; replaced by ReloadKeys
}

// apiKey is the SHA-256 of an API key: digests have one length, so comparing them takes
// the same time whatever the length of the key offered.
type apiKey struct {
	digest [sha256.Size]byte
	id     ID
}

// Registry holds the configured tenants. It is safe for concurrent use. Its tenants never
// change after NewRegistry returns; key sets (ReloadKeys) and revocations do.
type Registry struct {
	byID    map[ID]*entry
	ids     []ID // sorted
	apiKeys []apiKey

	verified verifiedTokens
	revoked  revocations
}

// NewRegistry validates cfgs and builds the registry. getenv resolves Secret.Env.
// Errors name the offending setting, e.g. `tenants[1].keys[0].alg: unsupported "none"`.
func NewRegistry(cfgs []Config, getenv func(string) string, opts ...Option) (*Registry, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("tenants: at least one tenant is required")
	}
	r := &Registry{byID: make(map[ID]*entry, len(cfgs))}
	for _, o := range opts {
		o(r)
	}
	firstAt := make(map[ID]int, len(cfgs))
	type secretAt struct {
		secret []byte
		id     ID
		at     string
	}
	var hmacSecrets []secretAt
	for i, cfg := range cfgs {
		at := fmt.Sprintf("tenants[%d]", i)
		id, err := ParseID(cfg.ID)
		if err != nil {
			return nil, fmt.Errorf("%s.id: %w", at, err)
		}
		if j, dup := firstAt[id]; dup {
			return nil, fmt.Errorf("%s.id: duplicate %q (also tenants[%d])", at, id, j)
		}
		firstAt[id] = i

		e, err := newEntry(id, cfg, at, getenv)
		if err != nil {
			return nil, err
		}
		// Two tenants sharing an HMAC secret could mint each other's tokens.
		for j, kc := range cfg.Keys {
			secret, ok := e.keys[kc.KID].verify.([]byte)
			if !ok {
				continue
			}
			kat := fmt.Sprintf("%s.keys[%d].secret", at, j)
			for _, s := range hmacSecrets {
				if s.id != id && hmac.Equal(s.secret, secret) {
					return nil, fmt.Errorf("%s: same secret as %s: each tenant needs its own", kat, s.at)
				}
			}
			hmacSecrets = append(hmacSecrets, secretAt{secret, id, kat})
		}

		for j, s := range cfg.APIKeys {
			kat := fmt.Sprintf("%s.api_keys[%d]", at, j)
			v, err := ResolveSecret(s, getenv)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", kat, err)
			}
			if len(v) < MinAPIKey {
				return nil, fmt.Errorf("%s: %d bytes, need at least %d", kat, len(v), MinAPIKey)
			}
			digest := sha256.Sum256(v)
			for _, other := range r.apiKeys {
				if other.digest == digest {
					return nil, fmt.Errorf("%s: same key as one of tenant %q", kat, other.id)
				}
			}
			r.apiKeys = append(r.apiKeys, apiKey{digest: digest, id: id})
		}

		r.byID[id] = e
		r.ids = append(r.ids, id)
	}
	slices.Sort(r.ids)
	return r, nil
}

// newEntry validates everything of one tenant except its API keys.
func newEntry(id ID, cfg Config, at string, getenv func(string) string) (*entry, error) {
	e := &entry{
		tenant: Tenant{
			ID:             id,
			Name:           cfg.Name,
			RateLimit:      cfg.RateLimit,
			Engine:         cfg.Engine,
			FallbackAnswer: cfg.FallbackAnswer,
			HistoryTTL:     cfg.HistoryTTL,
			Widget:         cfg.Widget,
			Handoff:        cfg.Handoff,
		},
		issuer:   cmp.Or(cfg.Issuer, DefaultIssuer),
		audience: cmp.Or(cfg.Audience, DefaultAudience),
		keys:     make(map[string]*key, len(cfg.Keys)),
	}
	t := &e.tenant
	t.Name = cmp.Or(t.Name, string(id))
	t.FallbackAnswer = cmp.Or(t.FallbackAnswer, DefaultFallbackAnswer)
	t.Engine.Kind = cmp.Or(t.Engine.Kind, "faq")

	rl := &t.RateLimit
	if math.IsNaN(rl.RPS) || math.IsInf(rl.RPS, 0) || rl.RPS < 0 {
		return nil, fmt.Errorf("%s.rate_limit.rps: must be a positive number, got %v", at, rl.RPS)
	}
	if rl.Burst < 0 {
		return nil, fmt.Errorf("%s.rate_limit.burst: must not be negative, got %d", at, rl.Burst)
	}
	if rl.RPS == 0 {
		rl.RPS = DefaultRPS
	}
	if rl.Burst == 0 {
		rl.Burst = int(math.Min(math.Ceil(2*rl.RPS), math.MaxInt32))
	}
	if math.IsNaN(rl.UserRPS) || math.IsInf(rl.UserRPS, 0) || rl.UserRPS < 0 {
		return nil, fmt.Errorf("%s.rate_limit.user_rps: must be a positive number or 0 (no per-user limit), got %v", at, rl.UserRPS)
	}
	if rl.UserBurst < 0 {
		return nil, fmt.Errorf("%s.rate_limit.user_burst: must not be negative, got %d", at, rl.UserBurst)
	}
	if rl.UserBurst > 0 && rl.UserRPS == 0 {
		return nil, fmt.Errorf("%s.rate_limit.user_burst: set without user_rps", at)
	}
	if rl.UserRPS > 0 && rl.UserBurst == 0 {
		rl.UserBurst = int(math.Min(math.Ceil(2*rl.UserRPS), math.MaxInt32))
	}
	if mc := t.Engine.MinConfidence; math.IsNaN(mc) || mc < 0 || mc > 1 {
		return nil, fmt.Errorf("%s.engine.min_confidence: must be between 0 and 1, got %v", at, mc)
	}
	if err := validateEngine(t.Engine, at+".engine", getenv); err != nil {
		return nil, err
	}
	if t.HistoryTTL < 0 {
		return nil, fmt.Errorf("%s.history_ttl: must not be negative, got %s", at, t.HistoryTTL)
	}

	origins, err := parseOrigins(cfg.AllowedOrigins, at+".allowed_origins")
	if err != nil {
		return nil, err
	}
	t.AllowedOrigins = origins
	if err := t.Widget.validate(at + ".widget"); err != nil {
		return nil, err
	}
	t.Handoff.Phrases = slices.Clone(t.Handoff.Phrases)
	if err := t.Handoff.validate(at, getenv); err != nil {
		return nil, err
	}

	if len(cfg.Keys) == 0 && cfg.JWKSFile == "" {
		return nil, fmt.Errorf("%s.keys: at least one key, or a jwks_file, is required", at)
	}
	for j, kc := range cfg.Keys {
		kat := fmt.Sprintf("%s.keys[%d]", at, j)
		k, err := newKey(kc, kat, getenv)
		if err != nil {
			return nil, err
		}
		if _, dup := e.keys[k.kid]; dup {
			return nil, fmt.Errorf("%s.kid: duplicate %q", kat, k.kid)
		}
		e.keys[k.kid] = k
		if e.signing == nil && k.alg == AlgHS256 {
			e.signing = k
			t.Mints = true
		}
	}
	if cfg.JWKSFile != "" {
		e.jwksFile = cfg.JWKSFile
		keys, err := e.loadJWKS()
		if err != nil {
			return nil, fmt.Errorf("%s.jwks_file: %w", at, err)
		}
		e.jwks.Store(&keys)
	}
	return e, nil
}

// newKey validates and loads one key.
func newKey(kc KeyConfig, at string, getenv func(string) string) (*key, error) {
	if kc.KID == "" {
		return nil, fmt.Errorf("%s.kid: required", at)
	}
	if len(kc.KID) > maxKID || !printable(kc.KID) {
		return nil, fmt.Errorf("%s.kid: at most %d printable characters", at, maxKID)
	}
	k := &key{kid: kc.KID, alg: kc.Alg}
	switch kc.Alg {
	case AlgHS256:
		if kc.PublicKeyFile != "" {
			return nil, fmt.Errorf("%s.public_key_file: not used with HS256 (set secret)", at)
		}
		secret, err := ResolveSecret(kc.Secret, getenv)
		if err != nil {
			return nil, fmt.Errorf("%s.secret: %w", at, err)
		}
		if len(secret) < MinHMACSecret {
			return nil, fmt.Errorf("%s.secret: %d bytes, need at least %d", at, len(secret), MinHMACSecret)
		}
		k.verify = secret
	case AlgEdDSA, AlgRS256:
		if kc.Secret != (Secret{}) {
			return nil, fmt.Errorf("%s.secret: not used with %s (set public_key_file)", at, kc.Alg)
		}
		if kc.PublicKeyFile == "" {
			return nil, fmt.Errorf("%s.public_key_file: required for %s", at, kc.Alg)
		}
		pub, err := loadPublicKey(kc.PublicKeyFile, kc.Alg)
		if err != nil {
			return nil, fmt.Errorf("%s.public_key_file: %w", at, err)
		}
		k.verify = pub
	case "":
		return nil, fmt.Errorf("%s.alg: required (one of %s)", at, strings.Join(validMethods, ", "))
	default:
		return nil, fmt.Errorf("%s.alg: unsupported %q (use one of %s)", at, kc.Alg, strings.Join(validMethods, ", "))
	}
	return k, nil
}

// validateEngine checks the engine settings that can be checked without building it.
func validateEngine(e Engine, at string, getenv func(string) string) error {
	switch e.Kind {
	case EngineFAQ:
		return nil
	case EngineOpenAI:
	default:
		return fmt.Errorf("%s.kind: unknown %q (use %s or %s)", at, e.Kind, EngineFAQ, EngineOpenAI)
	}
	l := e.LLM
	u, err := url.Parse(l.BaseURL)
	if l.BaseURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s.llm.base_url: want an absolute http(s) URL, got %q", at, l.BaseURL)
	}
	if l.Model == "" {
		return fmt.Errorf("%s.llm.model: required", at)
	}
	var apiKey []byte
	if l.APIKey != (Secret{}) {
		key, err := ResolveSecret(l.APIKey, getenv)
		if err != nil {
			return fmt.Errorf("%s.llm.api_key: %w", at, err)
		}
		apiKey = key
	}
	if what, pos := credentialIn(l.SystemPrompt, apiKey); what != "" {
		return fmt.Errorf("%s.llm.system_prompt: looks like it holds %s (at character %d): the prompt goes to the model "+
			"vendor, and a user can make the model repeat it; keep secrets out of it", at, what, pos)
	}
	for name, d := range map[string]time.Duration{"timeout": l.Timeout, "first_token_timeout": l.FirstToken,
		"idle_timeout": l.IdleTimeout, "breaker_delay": l.BreakerDelay, "hedge_delay": l.HedgeDelay} {
		if d < 0 {
			return fmt.Errorf("%s.llm.%s: must not be negative, got %s", at, name, d)
		}
	}
	for name, n := range map[string]int{"max_tokens": l.MaxTokens, "references": l.References, "history_chars": l.HistoryBudget,
		"max_retries": l.MaxRetries, "breaker_failures": l.BreakerFailures, "max_concurrent": l.MaxConcurrent} {
		if n < 0 {
			return fmt.Errorf("%s.llm.%s: must not be negative, got %d", at, name, n)
		}
	}
	if t := l.Temperature; math.IsNaN(t) || t < 0 || t > 2 {
		return fmt.Errorf("%s.llm.temperature: must be between 0 and 2, got %v", at, t)
	}
	return nil
}

// credentialPatterns are what credentials in a system prompt look like. Such a prompt is
// refused at start-up rather than warned about: a warning is easily missed in a start-up
// log, whereas moving a secret out of a prompt is always possible, and the engine's
// prompt leak guard cannot stop a model from paraphrasing or spelling it out.
var credentialPatterns = []struct {
	what string
	re   *regexp.Regexp
}{
	{"an API key (sk-…)", regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{16,}`)},
	{"a JSON Web Token", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.`)},
	{"a private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY`)},
	{"an AWS access key", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a GitHub token", regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{30,}`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}`)},
	{"a Google API key", regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{30,}`)},
	{"a bearer token", regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}`)},
}

// assignedSecret is a password, key or token given a value: "password: Hunter2024". The
// value counts if it has six characters or more, a digit among them.
var assignedSecret = regexp.MustCompile(`(?i)(password|passwd|passcode|api[ _-]?key|secret|token|密码|密钥|口令|令牌)\s*(is|为|是|[:=:])\s*` +
	`([A-Za-z0-9_\-+/=.!@#$%^&*]{6,})`)

// longToken is a candidate for a random-looking credential.
var longToken = regexp.MustCompile(`[A-Za-z0-9]{24,}`)

// credentialIn returns what in prompt looks like a credential, and the rune position
// where it starts: the tenant's own model API key, a known credential format, or a long
// token of letters and digits as random as a key. It returns "" when it finds none. It
// never returns the credential itself.
func credentialIn(prompt string, apiKey []byte) (what string, at int) {
	pos := func(i int) int { return utf8.RuneCountInString(prompt[:i]) + 1 }
	if len(apiKey) >= 8 {
		if i := strings.Index(prompt, string(apiKey)); i >= 0 {
			return "the tenant's llm.api_key", pos(i)
		}
	}
	for _, p := range credentialPatterns {
		if loc := p.re.FindStringIndex(prompt); loc != nil {
			return p.what, pos(loc[0])
		}
	}
	for _, m := range assignedSecret.FindAllStringSubmatchIndex(prompt, -1) {
		if strings.ContainsAny(prompt[m[6]:m[7]], "0123456789") {
			return "a password or key", pos(m[0])
		}
	}
	for _, loc := range longToken.FindAllStringIndex(prompt, -1) {
		if t := prompt[loc[0]:loc[1]]; looksRandom(t) {
			return "a long random-looking token", pos(loc[0])
		}
	}
	return "", 0
}

// looksRandom reports whether a run of letters and digits mixes them as a key does:
// switching between letters and digits at least four times, with 3 bits of entropy per
// character. Words, numbers and identifiers like order2024summersale are not.
func looksRandom(t string) bool {
	var counts [128]int
	switches := 0
	for i := range len(t) {
		counts[t[i]]++
		if i > 0 && (t[i] <= '9') != (t[i-1] <= '9') {
			switches++
		}
	}
	if switches < 4 {
		return false
	}
	entropy := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(len(t))
			entropy -= p * math.Log2(p)
		}
	}
	return entropy >= 3
}

// loadPublicKey reads a PEM public key ("PUBLIC KEY", or "RSA PUBLIC KEY" for RS256) of
// the type alg needs.
func loadPublicKey(path, alg string) (any, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a public key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if alg == AlgEdDSA {
			return k, nil
		}
	case *rsa.PublicKey:
		if alg == AlgRS256 {
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("%s: RSA key of %d bits, need at least 2048", path, k.N.BitLen())
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("%s: a %T key cannot verify %s", path, pub, alg)
}

// Get returns the tenant with the given ID, or ErrUnknown. The result is a copy.
func (r *Registry) Get(id ID) (*Tenant, error) {
	e, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, id)
	}
	t := e.tenant
	return &t, nil
}

// Tenants returns every tenant, ordered by ID. The results are copies.
func (r *Registry) Tenants() []*Tenant {
	out := make([]*Tenant, len(r.ids))
	for i, id := range r.ids {
		t := r.byID[id].tenant
		out[i] = &t
	}
	return out
}

// ByAPIKey returns the tenant owning key (compared in constant time), or ErrUnknown.
// Every configured key is compared, so the time taken does not reveal which one matched.
func (r *Registry) ByAPIKey(key string) (*Tenant, error) {
	digest := sha256.Sum256([]byte(key))
	var found ID
	match := 0
	for _, k := range r.apiKeys {
		eq := subtle.ConstantTimeCompare(k.digest[:], digest[:])
		if eq == 1 {
			found = k.id
		}
		match |= eq
	}
	if match != 1 {
		return nil, ErrUnknown
	}
	return r.Get(found)
}
