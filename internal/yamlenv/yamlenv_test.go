package yamlenv

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Port    int           `yaml:"port"`
	Timeout time.Duration `yaml:"timeout"`
	URL     string        `yaml:"url"`
	APIKey  string        `yaml:"api_key"`
}

type secret struct{ Env string }

func (s secret) MaskedConfig() string { return "env:" + s.Env }

type sample struct {
	Name   string   `yaml:"name"`
	Server inner    `yaml:"server"`
	Key    secret   `yaml:"key"`
	List   []string `yaml:"list"`
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDecodeStrictNamesTheKey(t *testing.T) {
	var s sample
	err := DecodeStrict([]byte("name: a\nserver:\n  port: many\n"), &s)
	if err == nil || !strings.Contains(err.Error(), "server.port") {
		t.Fatalf("got %v, want an error naming server.port", err)
	}
	err = DecodeStrict([]byte("server:\n  prot: 1\n"), &s)
	if err == nil || !strings.Contains(err.Error(), "prot") {
		t.Fatalf("got %v, want an error naming the unknown key", err)
	}
}

func TestExpand(t *testing.T) {
	got, err := Expand([]byte("server:\n  port: ${PORT:-8080}\n  url: ${URL}\n"), env(map[string]string{"URL": "redis://x"}))
	if err != nil {
		t.Fatal(err)
	}
	var s sample
	if err := DecodeStrict(got, &s); err != nil {
		t.Fatal(err)
	}
	if s.Server.Port != 8080 || s.Server.URL != "redis://x" {
		t.Errorf("got %+v, want port 8080 and url redis://x", s.Server)
	}
	if _, err := Expand([]byte("name: ${UNSET}\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("an unset variable: got %v, want an error naming the key", err)
	}
}

func TestApplyEnv(t *testing.T) {
	var s sample
	err := ApplyEnv(&s, "APP", env(map[string]string{"APP_SERVER_PORT": "9", "APP_SERVER_TIMEOUT": "2s"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Server.Port != 9 || s.Server.Timeout != 2*time.Second {
		t.Errorf("got %+v, want port 9 and timeout 2s", s.Server)
	}
	err = ApplyEnv(&s, "APP", env(map[string]string{"APP_SERVER_PORT": "nine"}))
	if err == nil || !strings.Contains(err.Error(), "server.port (from APP_SERVER_PORT)") {
		t.Errorf("a bad value: got %v, want an error naming the key and variable", err)
	}
}

func TestMasked(t *testing.T) {
	s := sample{Name: "a", Server: inner{URL: "redis://u:pw@h", APIKey: "sk-1"}, Key: secret{Env: "K"}}
	m := Masked(s, func(string) string { return "masked-url" })
	srv := m["server"].(Tree)
	if srv["url"] != "masked-url" || srv["api_key"] != "(masked)" || m["key"] != "env:K" || m["name"] != "a" {
		t.Errorf("got %v", m)
	}
}
