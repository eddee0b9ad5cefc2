package tenant

import (
	"strings"
	"testing"
)

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "https://www.bank.example", want: "https://www.bank.example"},
		{in: "HTTPS://WWW.Bank.Example", want: "https://www.bank.example"},
		{in: "https://www.bank.example:443", want: "https://www.bank.example"},
		{in: "http://127.0.0.1:8000", want: "http://127.0.0.1:8000"},
		{in: "http://[::1]:8000", want: "http://[::1]:8000"},
		{in: "*", want: "*"},
		{in: "https://www.bank.example/", wantErr: "no path"},
		{in: "https://www.bank.example/chat", wantErr: "no path"},
		{in: "https://www.bank.example?x", wantErr: "no path"},
		{in: "www.bank.example", wantErr: "http:// or https://"},
		{in: "ftp://bank.example", wantErr: "http:// or https://"},
		{in: "https://*.bank.example", wantErr: "wildcards"},
		{in: "https://user@bank.example", wantErr: "scheme://host"},
		{in: "", wantErr: "http:// or https://"},
	}
	for _, tt := range tests {
		got, err := normalizeOrigin(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("normalizeOrigin(%q) = %q, %v; want an error holding %q", tt.in, got, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestTenantWebConfig(t *testing.T) {
	base := func() Config {
		return Config{ID: "acme", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Value: strings.Repeat("s", 32)}}}}
	}
	c := base()
	c.AllowedOrigins = []string{"https://Shop.example", "https://shop.example", "http://localhost:8000"}
	r, err := NewRegistry([]Config{c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := r.Get("acme")
	if want := []string{"https://shop.example", "http://localhost:8000"}; strings.Join(got.AllowedOrigins, " ") != strings.Join(want, " ") {
		t.Errorf("AllowedOrigins = %v, want %v", got.AllowedOrigins, want)
	}
	if !got.Mints || got.Widget.Lang != LangZH {
		t.Errorf("Mints %v, widget lang %q; want true and the default zh-CN", got.Mints, got.Widget.Lang)
	}
	if !got.AllowsOrigin("https://shop.example") || got.AllowsOrigin("https://shop.example.evil") || got.AllowsOrigin("null") {
		t.Error("AllowsOrigin matches the wrong origins")
	}

	bad := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"origin with a path", func(c *Config) { c.AllowedOrigins = []string{"https://a.example/"} }, "tenants[0].allowed_origins[0]"},
		{"lang", func(c *Config) { c.Widget.Lang = "fr" }, "tenants[0].widget.lang"},
		{"greeting with control characters", func(c *Config) { c.Widget.Greeting = "hi\x00" }, "tenants[0].widget.greeting"},
		{"greeting too long", func(c *Config) { c.Widget.Greeting = strings.Repeat("好", 501) }, "tenants[0].widget.greeting"},
	}
	for _, tt := range bad {
		c := base()
		tt.change(&c)
		if _, err := NewRegistry([]Config{c}, nil); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: %v, want an error naming %s", tt.name, err, tt.wantErr)
		}
	}
}
