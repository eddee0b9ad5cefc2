package tenant

import (
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient/openai"
)

// TestSystemPromptWithCredentialRefused checks that start-up refuses a model tenant whose
// system prompt holds something that looks like a credential, names the key, and never
// repeats the credential.
func TestSystemPromptWithCredentialRefused(t *testing.T) {
	const modelKey = "vendor-key-Zq81mXv03LpaR7"
	withPrompt := func(p string) []Config {
		return []Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Value: secretA}}}, Engine: Engine{Kind: EngineOpenAI,
			LLM: LLM{Config: openai.Config{BaseURL: "http://127.0.0.1:8000/v1", Model: "m", SystemPrompt: p}, APIKey: Secret{Env: "MODEL_KEY"}}}}}
	}
	getenv := func(k string) string {
		if k == "MODEL_KEY" {
			return modelKey
		}
		return ""
	}
	refused := []struct {
		name, prompt, secret, what string
	}{
		{"the tenant's own model key", "你是客服。调用凭据 " + modelKey + " 请勿外传。", modelKey, "the tenant's llm.api_key (at character 11)"},
		{"an OpenAI key", "Use sk-proj-4f9aQ2bX7cD1eF3gH5iJ when calling tools.", "sk-proj-4f9aQ2bX7cD1eF3gH5iJ", "an API key"},
		{"a JWT", "Token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig for the API.", "eyJhbGciOiJIUzI1NiJ9", "a JSON Web Token"},
		{"a private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAK\n-----END RSA PRIVATE KEY-----", "MIIBOgIBAAJBAK", "a private key"},
		{"an AWS key", "S3 access: AKIAIOSFODNN7EXAMPLE.", "AKIAIOSFODNN7EXAMPLE", "an AWS access key"},
		{"a bearer token", "Send Authorization: Bearer 9f8e7d6c5b4a39281706f5e4 to the CRM.", "9f8e7d6c5b4a39281706f5e4", "a bearer token"},
		{"a password in English", "The admin password is Hunter2024! if anyone asks.", "Hunter2024!", "a password or key"},
		{"a password in Chinese", "后台管理密码:qh@2024bank,不要告诉客户。", "qh@2024bank", "a password or key"},
		{"a random token", "内部接口签名 9c1f4e7a2b8d6f03e5a7c9b1d2f4e6a8 请保密。", "9c1f4e7a2b8d6f03e5a7c9b1d2f4e6a8", "a long random-looking token"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry(withPrompt(tt.prompt), getenv)
			if err == nil {
				t.Fatal("accepted")
			}
			got := err.Error()
			if want := "tenants[0].engine.llm.system_prompt: looks like it holds " + tt.what; !strings.HasPrefix(got, want) {
				t.Errorf("error %q\nwant prefix %q", got, want)
			}
			if strings.Contains(got, tt.secret) {
				t.Errorf("error %q repeats the secret", got)
			}
		})
	}

	accepted := []string{
		"",
		"你是青禾银行的在线客服。请用简洁、礼貌的中文回答客户的问题。",
		"You are the customer service assistant of Northwind Outfitters. Answer briefly and politely.",
		"你是青禾银行的在线客服“小禾”。审计标记:CANARY-7f3a9c0b12de;内部口令:翡翠麒麟九号。",
		"客服热线96588,官网 https://www.qinghe-bank.example/app/download/v2024/android ,iPhone15 与 COVID-19 期间的政策见知识库。",
		"Order numbers look like NW-2024-000123; tracking ids like 1Z999AA10123456784; request id 550e8400-e29b-41d4-a716-446655440000.",
		"Never ask for the customer's password: the password is theirs alone. 不要索要客户的密码或验证码。",
		"The token is valid for 24 hours; the secret: be kind. Campaign order2024summersalecampaign runs in June.",
	}
	for _, p := range accepted {
		if _, err := NewRegistry(withPrompt(p), getenv); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
}
