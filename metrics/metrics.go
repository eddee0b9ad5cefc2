// Package metrics owns Fengda's Prometheus metrics: their names, labels and help, in a
// private registry that /metrics serves. Metrics implements the small observer
// interface each package declares for itself (gateway.Metrics, dialogue.Observer,
// ratelimit.Observer, openai.LLMObserver), and takes the queue's collector.
//
// It must not decide anything: it only counts what it is told. Tenant labels come
// only from verified identities; unauthenticated requests carry tenant="".
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/fengda-ai/fengda/tenant"
)

// latencyBuckets span 50µs to 5s: the system's own overhead is measured in microseconds,
// a model's answer in seconds.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5,
}

// Metrics holds Fengda's Prometheus metrics in a private registry, so nothing registered
// globally by a library leaks into /metrics.
type Metrics struct {
	reg         *prometheus.Registry
	stage       *prometheus.HistogramVec
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	rlFallbacks *prometheus.CounterVec
	rlDegraded  prometheus.Gauge

	upstream     *prometheus.HistogramVec
	firstToken   *prometheus.HistogramVec
	retries      *prometheus.CounterVec
	breakerState *prometheus.GaugeVec
	fallbacks    *prometheus.CounterVec

	spilled      *prometheus.CounterVec
	queuedWorked *prometheus.CounterVec

	handoffs        *prometheus.CounterVec
	insightsDropped *prometheus.CounterVec
	handoffWait     *prometheus.HistogramVec

	kbVersion *prometheus.GaugeVec
	kbReload  prometheus.Histogram
}

// New builds the metrics and a registry holding them plus the Go runtime and process
// collectors.
func New() *Metrics {
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
			Help: "Requests refused by a rate limit: the tenant's, or one of its users'.",
		}, []string{"tenant"}),
	}
	m.rlFallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_ratelimit_fallbacks_total",
		Help: "Rate-limit decisions this replica took alone because the shared store (ratelimit.store: redis) failed or was in its back-off.",
	}, []string{"tenant"})
	m.rlDegraded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fengda_ratelimit_degraded",
		Help: "1 while this replica limits on its own because the shared rate-limit store failed, else 0.",
	})
	m.upstream = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fengda_upstream_duration_seconds",
		Help:    "Model upstream calls by outcome (ok, http_5xx, http_429, http_4xx, conn, timeout, canceled, protocol); a retry is a call of its own.",
		Buckets: latencyBuckets,
	}, []string{"tenant", "upstream", "outcome"})
	m.firstToken = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fengda_upstream_first_token_seconds",
		Help:    "Time from the start of a streamed answer to its first token, retries included.",
		Buckets: latencyBuckets,
	}, []string{"tenant", "upstream"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_upstream_retries_total",
		Help: "Model upstream calls repeated after a connection error, 429 or 5xx.",
	}, []string{"tenant", "upstream"})
	m.breakerState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fengda_upstream_breaker_state",
		Help: "Circuit breaker state per tenant and upstream: 0 closed, 1 half-open, 2 open.",
	}, []string{"tenant", "upstream"})
	m.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_fallbacks_total",
		Help: "Answers given without the model, by reason (timeout, breaker_open, bulkhead, upstream_error, prompt_leak: the model repeated its system prompt).",
	}, []string{"tenant", "upstream", "reason"})
	m.spilled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_spilled_turns_total",
		Help: "Turns handed to the spillover queue because the backlog was full, by outcome: answered (while the request waited), queued (202, polled later), full (429 queue_full), error (queue unreachable, 503).",
	}, []string{"tenant", "outcome"})
	m.queuedWorked = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_queued_turns_worked_total",
		Help: "Queued turns this process took from the spillover queue and answered.",
	}, []string{"tenant"})
	m.handoffs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_handoffs_total",
		Help: "Sessions handed to a person, by cause: asked (the message asked for one), button (the widget's button), unresolved (clarify or fallback answers in a row).",
	}, []string{"tenant", "cause"})
	m.handoffWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "fengda_handoff_wait_seconds",
		Help:    "How long a handed-off conversation waited until an agent claimed it.",
		Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"tenant"})
	m.insightsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fengda_insights_dropped_total",
		Help: "Records of answered turns dropped because the insights writer's buffer was full (the store slow or unreachable).",
	}, []string{"tenant"})
	m.kbVersion = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fengda_kb_version",
		Help: "The version of the tenant's knowledge base this replica serves.",
	}, []string{"tenant"})
	m.kbReload = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "fengda_kb_reload_seconds",
		Help:    "How long building a new version's FAQ engine and swapping it in took.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.stage, m.requests, m.duration, m.rateLimited, m.rlFallbacks, m.rlDegraded,
		m.upstream, m.firstToken, m.retries, m.breakerState, m.fallbacks, m.spilled, m.queuedWorked,
		m.handoffs, m.handoffWait, m.kbVersion, m.kbReload, m.insightsDropped,
	)
	return m
}

// ObserveKBVersion records the version of t's knowledge base this replica serves.
func (m *Metrics) ObserveKBVersion(t tenant.ID, version int) {
	m.kbVersion.WithLabelValues(string(t)).Set(float64(version))
}

// ObserveKBReload records how long building and swapping in a knowledge base's engine
// took.
func (m *Metrics) ObserveKBReload(d time.Duration) { m.kbReload.Observe(d.Seconds()) }

// Gather collects every metric family the registry holds, as /metrics serves them.
func (m *Metrics) Gather() ([]*dto.MetricFamily, error) { return m.reg.Gather() }

// Register adds a collector of another package (the queue's backlog) to the registry.
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// ObserveStage records how long one stage of a turn took for tenant t. The stage names
// are the timing packages' own (gateway.StageAuth, dialogue.StageAnswer, …).
func (m *Metrics) ObserveStage(t tenant.ID, stage string, d time.Duration) {
	m.stage.WithLabelValues(string(t), stage).Observe(d.Seconds())
}

// ObserveSpill counts one turn handed to the spillover queue, by outcome.
func (m *Metrics) ObserveSpill(t tenant.ID, outcome string) {
	m.spilled.WithLabelValues(string(t), outcome).Inc()
}

// ObserveQueuedWorked counts one queued turn this process answered.
func (m *Metrics) ObserveQueuedWorked(t tenant.ID) {
	m.queuedWorked.WithLabelValues(string(t)).Inc()
}

// ObserveHandoff counts a session of tenant t handed to a person, by cause.
func (m *Metrics) ObserveHandoff(t tenant.ID, cause string) {
	m.handoffs.WithLabelValues(string(t), cause).Inc()
}

// InsightsDropped counts a record of tenant t the insights recorder dropped.
func (m *Metrics) InsightsDropped(t tenant.ID) {
	m.insightsDropped.WithLabelValues(string(t)).Inc()
}

// ObserveClaimWait records how long a conversation of tenant t waited for its agent.
func (m *Metrics) ObserveClaimWait(t tenant.ID, d time.Duration) {
	m.handoffWait.WithLabelValues(string(t)).Observe(d.Seconds())
}

// WaitingCounter counts a tenant's conversations waiting for a person (the handoff
// desk's store).
type WaitingCounter interface {
	CountWaiting(ctx context.Context, t tenant.ID) (int, error)
}

// RegisterWaiting adds the gauge fengda_handoff_waiting, read from counter at each
// scrape for every tenant in ts. A tenant whose count cannot be read is left out of
// that scrape.
func (m *Metrics) RegisterWaiting(counter WaitingCounter, ts []tenant.ID) error {
	return m.reg.Register(&waitingCollector{counter: counter, tenants: ts,
		desc: prometheus.NewDesc("fengda_handoff_waiting", "Conversations waiting for a person, per tenant.", []string{"tenant"}, nil)})
}

type waitingCollector struct {
	counter WaitingCounter
	tenants []tenant.ID
	desc    *prometheus.Desc
}

func (c *waitingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *waitingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, t := range c.tenants {
		n, err := c.counter.CountWaiting(ctx, t)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(t))
	}
}

// ObserveRequest records one HTTP request by route pattern, status and tenant.
func (m *Metrics) ObserveRequest(route string, code int, t tenant.ID, d time.Duration) {
	m.requests.WithLabelValues(route, statusLabel(code), string(t)).Inc()
	m.duration.WithLabelValues(route, string(t)).Observe(d.Seconds())
}

// statusLabels are the code labels of the HTTP statuses, made once rather than for
// every request.
var statusLabels = func() (l [600]string) {
	for code := 100; code < len(l); code++ {
		l[code] = strconv.Itoa(code)
	}
	return l
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// RateLimited counts a request refused by a rate limit of tenant t.
func (m *Metrics) RateLimited(t tenant.ID) {
	m.rateLimited.WithLabelValues(string(t)).Inc()
}

// RateLimitFallback counts a rate-limit decision taken locally because the shared
// store failed.
func (m *Metrics) RateLimitFallback(t tenant.ID) {
	m.rlFallbacks.WithLabelValues(string(t)).Inc()
}

// RateLimitDegraded reports whether the rate limits are local because the shared
// store failed.
func (m *Metrics) RateLimitDegraded(degraded bool) {
	v := 0.0
	if degraded {
		v = 1
	}
	m.rlDegraded.Set(v)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// UpstreamObserver receives one tenant's model upstream metrics; its methods match
// openai.LLMObserver, which serve.go plugs it into.
type UpstreamObserver struct {
	m                *Metrics
	tenant, upstream string
}

// Upstream returns the observer of tenant t's upstream, with its breaker reported closed.
func (m *Metrics) Upstream(t tenant.ID, upstream string) *UpstreamObserver {
	m.breakerState.WithLabelValues(t.String(), upstream).Set(0)
	return &UpstreamObserver{m: m, tenant: t.String(), upstream: upstream}
}

// UpstreamDone records one upstream call and how it ended.
func (o *UpstreamObserver) UpstreamDone(d time.Duration, outcome string) {
	o.m.upstream.WithLabelValues(o.tenant, o.upstream, outcome).Observe(d.Seconds())
}

// FirstToken records a stream's time to its first token.
func (o *UpstreamObserver) FirstToken(d time.Duration) {
	o.m.firstToken.WithLabelValues(o.tenant, o.upstream).Observe(d.Seconds())
}

// Retry counts a retry.
func (o *UpstreamObserver) Retry() { o.m.retries.WithLabelValues(o.tenant, o.upstream).Inc() }

// breakerValues map breaker states to the gauge's values.
var breakerValues = map[string]float64{"closed": 0, "half_open": 1, "open": 2}

// BreakerState records the breaker's new state.
func (o *UpstreamObserver) BreakerState(state string) {
	o.m.breakerState.WithLabelValues(o.tenant, o.upstream).Set(breakerValues[state])
}

// Fallback counts an answer given without the model.
func (o *UpstreamObserver) Fallback(reason string) {
	o.m.fallbacks.WithLabelValues(o.tenant, o.upstream, reason).Inc()
}
