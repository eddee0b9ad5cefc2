package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fengda-ai/fengda/tenant"
)

// Stages of one chat turn, the values of the stage label of fengda_stage_duration_seconds.
const (
	StageAuth        = "auth"
	StageHistoryLoad = "history_load"
	StageAnswer      = "answer"
	StageHistorySave = "history_save"
)

// latencyBuckets span 50µs to 5s: the system's own overhead is measured in microseconds,
// a model's answer in seconds.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5,
}

// Metrics holds Fengda's Prometheus metrics in a private registry, so nothing registered
// globally by a library leaks into /metrics. Tenant labels come only from verified
// identities; unauthenticated requests carry tenant="".
type Metrics struct {
	reg         *prometheus.Registry
	stage       *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
}

// NewMetrics builds the metrics and a registry holding them plus the Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fengda_stage_duration_seconds",
			Help:    "Time spent in each stage of a chat turn.",
			Buckets: latencyBuckets,
		}, []string{"tenant", "stage"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fengda_http_requests_total",
			Help: "HTTP requests by route pattern, status code and tenant.",
		}, []string{"route", "code", "tenant"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fengda_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and tenant.",
			Buckets: latencyBuckets,
		}, []string{"route", "tenant"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fengda_rate_limited_total",
			Help: "Requests refused by a tenant's rate limit.",
		}, []string{"tenant"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.stage, m.requests, m.duration, m.rateLimited,
	)
	return m
}

// Registry returns the private registry, for other packages to register their own
// collectors on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveStage records how long one stage of a turn took for tenant t. Stages are
// StageAuth, StageHistoryLoad, StageAnswer and StageHistorySave.
func (m *Metrics) ObserveStage(t tenant.ID, stage string, d time.Duration) {
	m.stage.WithLabelValues(string(t), stage).Observe(d.Seconds())
}

func (m *Metrics) observeRequest(route string, code int, t tenant.ID, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code), string(t)).Inc()
	m.duration.WithLabelValues(route, string(t)).Observe(d.Seconds())
}

func (m *Metrics) observeRateLimited(t tenant.ID) {
	m.rateLimited.WithLabelValues(string(t)).Inc()
}

// handler serves the registry in the Prometheus text format.
func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
