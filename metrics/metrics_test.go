package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// TestObservationsAreServedByTenant: what each observer is told is served by /metrics
// under the tenant it was told for, and no other.
func TestObservationsAreServedByTenant(t *testing.T) {
	m := New()
	a, b := tenant.ID("tenant-a"), tenant.ID("tenant-b")
	m.ObserveStage(a, "answer", 3*time.Millisecond)
	m.ObserveRequest("/v1/chat", 200, a, time.Millisecond)
	m.ObserveRequest("/v1/chat", 429, b, time.Millisecond)
	m.RateLimited(b)
	m.ObserveSpill(a, "queued")
	up := m.Upstream(a, "vllm")
	up.UpstreamDone(10*time.Millisecond, "ok")
	up.Fallback("breaker_open")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`fengda_http_requests_total{`,
		`tenant="tenant-a"`,
		`tenant="tenant-b"`,
		`upstream="vllm"`,
		`fengda_rate_limited_total{tenant="tenant-b"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "upstream=") && strings.Contains(line, `tenant="tenant-b"`) {
			t.Errorf("tenant-b has no upstream, yet: %s", line)
		}
		if strings.HasPrefix(line, "fengda_rate_limited_total") && strings.Contains(line, `tenant="tenant-a"`) {
			t.Errorf("tenant-a was never limited, yet: %s", line)
		}
	}
	families, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) == 0 {
		t.Fatal("Gather returned no families")
	}
}
