package gateway

import (
	"strings"
	"testing"
)

func TestHealthzShowsVersion(t *testing.T) {
	s, _ := newTestServer(t, testConfig(func(c *Config) { c.Version = "v1.4.2-3-gabc123" }), nil, nil)
	rec := do(t, s.Handler(), request{method: "GET", path: "/healthz"})
	if got, want := strings.TrimSpace(rec.Body.String()), `{"status":"ok","version":"v1.4.2-3-gabc123"}`; rec.Code != 200 || got != want {
		t.Errorf("GET /healthz = %d %s, want 200 %s", rec.Code, got, want)
	}
	rec = do(t, s.Handler(), request{method: "GET", path: "/readyz"})
	if got, want := strings.TrimSpace(rec.Body.String()), `{"status":"ready"}`; got != want {
		t.Errorf("GET /readyz body = %s, want %s: the version is on /healthz only", got, want)
	}
}
