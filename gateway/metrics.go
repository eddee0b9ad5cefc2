package gateway

import (
	"net/http"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// Stages the gateway times, values of the stage label of fengda_stage_duration_seconds
// (the engine's are dialogue.StageHistoryLoad and the like).
const (
	StageAuth      = "auth"
	StageRateLimit = "rate_limit"
)

// Metrics records the HTTP edge's figures and serves every metric (*metrics.Metrics).
type Metrics interface {
	// ObserveRequest records one request by route pattern, status and tenant.
	ObserveRequest(route string, code int, t tenant.ID, d time.Duration)
	// ObserveStage records how long one stage (StageAuth, StageRateLimit) took.
	ObserveStage(t tenant.ID, stage string, d time.Duration)
	// Handler serves GET /metrics.
	Handler() http.Handler
}

// noMetrics records nothing; its /metrics is 404.
type noMetrics struct{}

func (noMetrics) ObserveRequest(string, int, tenant.ID, time.Duration) {}
func (noMetrics) ObserveStage(tenant.ID, string, time.Duration)        {}
func (noMetrics) Handler() http.Handler                                { return http.NotFoundHandler() }
