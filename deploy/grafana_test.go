package deploy

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const dashboardFile = "grafana/fengda.json"

// metricSources are the files that register Fengda's own metrics.
var metricSources = []string{"../gateway/metrics.go", "../queue/stats.go"}

var (
	registeredName = regexp.MustCompile(`"(fengda_[a-z_]+)"`)
	queriedName    = regexp.MustCompile(`\b((?:fengda|go|process)_[a-z0-9_]+)`)
)

// servedMetrics returns the names /metrics serves: Fengda's own, as its sources register
// them, and those of the Go runtime and process collectors.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	for _, src := range metricSources {
		for _, m := range registeredName.FindAllStringSubmatch(string(mustRead(t, src)), -1) {
			names[m[1]] = true
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

// TestDashboardQueriesServedMetrics: the Grafana dashboard is valid JSON and every
// metric its queries name is one Fengda serves.
func TestDashboardQueriesServedMetrics(t *testing.T) {
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(mustRead(t, dashboardFile), &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" {
		t.Errorf("%s: no uid", dashboardFile)
	}
	served := servedMetrics(t)
	queried := make(map[string]bool)
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range queriedName.FindAllStringSubmatch(tg.Expr, -1) {
				name := m[1]
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
						name = base
					}
				}
				if !served[name] {
					t.Errorf("panel %q queries %s, which /metrics does not serve", p.Title, m[1])
				}
				queried[name] = true
			}
		}
	}
	// Every Fengda metric has a panel.
	for name := range served {
		if strings.HasPrefix(name, "fengda_") && !queried[name] {
			t.Errorf("no panel shows %s", name)
		}
	}
	p95 := false
	for _, p := range dash.Panels {
		p95 = p95 || strings.Contains(p.Title, "p95")
	}
	if !p95 {
		t.Error("no p95 latency panel")
	}
}
