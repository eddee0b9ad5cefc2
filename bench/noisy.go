package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/fengda-ai/fengda/tenant"
)

// The noisy scenario's tenants: B is measured, A is the noisy neighbour.
const (
	quietTenant tenant.ID = benchTenant
	noisyTenant tenant.ID = "northwind-shop"
	// noisyLimit is A's configured rate; A sends noisyFactor times as much.
	noisyLimit  = 50
	noisyFactor = 15
	// quietRate is B's default open-loop rate (-rate sets another).
	quietRate = 100
)

// scenarioNoisy measures what a tenant sending 15× its rate limit does to another
// tenant's latency, with the limits shared through Redis (ratelimit.store: redis):
// tenant B at a moderate open-loop rate alone, then the same while tenant A sends 15×
// its limit, in interleaved rounds. A's 429s are expected; what counts is B's p99 with
// A noisy over B's p99 alone, and how much of A's load was admitted against its limit.
func scenarioNoisy(ctx context.Context, b *bench) (*Report, error) {
	rate := b.rate
	if rate == 0 {
		rate = quietRate
	}
	noisyRate := float64(noisyFactor * noisyLimit)
	// Both tenants have a per-user limit too, so a request takes two decisions in Redis.
	// B's limits are well above what B sends; A's users each send more than their own
	// limit, and together more than the tenant's.
	quiet := tenant.RateLimit{RPS: 4 * rate, Burst: int(4 * rate), UserRPS: 20, UserBurst: 40}
	noisy := tenant.RateLimit{RPS: noisyLimit, Burst: noisyLimit, UserRPS: 5, UserBurst: 10}
	f, err := b.fengdaChild("fengda-noisy", fengdaOpts{store: "memory", workers: 64, backlog: 1024, rateStore: "redis",
		tenants: []benchTenantConf{
			{id: quietTenant, kb: "bank-zh.yaml", limit: quiet},
			{id: noisyTenant, kb: "shop-en.yaml", limit: noisy},
		}})
	if err != nil {
		return nil, err
	}
	defer b.cleanRedis(f.prefix)
	const quietClients, noisyClients = 32, 64
	rep := newReport("noisy", fmt.Sprintf("tenant B (%s) open loop at %.0f/s, alone and while tenant A (%s, limit %d/s, %d users of 5/s each) sends %.0f/s (%d×); "+
		"FAQ engine, memory store, ratelimit.store redis; %s per run",
		quietTenant, rate, noisyTenant, noisyLimit, noisyClients, noisyRate, noisyFactor, b.duration), b.rounds)
	users := func(t tenant.ID, label string) func(int) user {
		return func(i int) user {
			return &chatUser{c: newConn(f.addr, 0), token: f.tokenOf(t, fmt.Sprintf("%s-%d", label, i))}
		}
	}
	quietLoad := Load{Name: "b-quiet", Clients: quietClients, Rate: rate, Duration: b.duration, Warmup: b.warmup, NewUser: users(quietTenant, "quiet")}
	noisyLoad := Load{Name: "a-noisy", Clients: noisyClients, Rate: noisyRate, Duration: b.duration, Warmup: b.warmup, NewUser: users(noisyTenant, "noisy")}

	var admitted []float64
	for round := range b.rounds {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		alone := runOf(quietLoad.Run(ctx))
		rep.add("b-quiet", alone)
		fmt.Fprintf(errOut, "bench: round %d B alone      p50 %.3f ms  p99 %.3f ms  errors %d\n", round+1, alone.P50, alone.P99, alone.NErrors)

		var a *Result
		var wg sync.WaitGroup
		wg.Go(func() { a = noisyLoad.Run(ctx) })
		bl := quietLoad
		bl.Name = "b-noisy"
		withA := runOf(bl.Run(ctx))
		wg.Wait()
		rep.add("b-noisy", withA)
		rep.add("a-noisy", runOf(a))
		admitted = append(admitted, a.RPS())
		fmt.Fprintf(errOut, "bench: round %d B with A     p50 %.3f ms  p99 %.3f ms  errors %d; A admitted %.1f/s of %.0f/s sent\n",
			round+1, withA.P50, withA.P99, withA.NErrors, a.RPS(), noisyRate)
	}
	rep.finish()

	var quietErrors, noisy5xx, noisyOther float64
	for _, r := range rep.Runs["b-quiet"] {
		quietErrors += float64(r.NErrors)
	}
	for _, r := range rep.Runs["b-noisy"] {
		quietErrors += float64(r.NErrors)
	}
	for _, r := range rep.Runs["a-noisy"] {
		for k, n := range r.Errors {
			switch {
			case k == "status 429":
			case strings.HasPrefix(k, "status 5"):
				noisy5xx += float64(n)
			default:
				noisyOther += float64(n)
			}
		}
	}
	degraded, err := metric(ctx, "http://"+f.addr+"/metrics", "fengda_ratelimit_degraded")
	if err != nil {
		return nil, err
	}
	// Decisions a replica took alone because Redis did not answer within the timeout.
	for name, t := range map[string]tenant.ID{"a": noisyTenant, "b": quietTenant} {
		v, err := metric(ctx, "http://"+f.addr+"/metrics", fmt.Sprintf("fengda_ratelimit_fallbacks_total{tenant=%q}", t))
		if err != nil {
			v = 0 // none: the series is made on the first
		}
		rep.Figures[name+"_local_fallback_decisions"] = v
	}
	rep.Figures["b_p50_noisy_over_quiet"] = rep.ratio("b-noisy", "b-quiet", p50)
	rep.Figures["a_admitted_rps"] = median(admitted)
	rep.Figures["a_limit_rps"] = noisyLimit
	rep.Figures["a_sent_rps"] = noisyRate
	rep.Figures["a_errors_other_than_429_or_5xx"] = noisyOther
	rep.Figures["ratelimit_degraded_at_end"] = degraded
	rep.checkRounds("B p99 with A noisy / B p99 alone", rep.ratios("b-noisy", "b-quiet", p99), false, 1.2, "×")
	shares := make([]float64, len(admitted))
	for i, a := range admitted {
		shares[i] = a / noisyLimit
	}
	rep.checkRounds("A admitted / A's limit", shares, false, 1.1, "×")
	rep.check("B errors", quietErrors, false, 0, "")
	rep.check("A 5xx", noisy5xx, false, 0, "")
	if noisyOther > 0 {
		rep.Notes = append(rep.Notes, "A's errors other than 429 are the load generator's (e.g. client saturated), not Fengda's answers")
	}
	rep.Notes = append(rep.Notes, "A's 429s are expected; B's latency is from each request's scheduled time (open loop)")
	return rep, nil
}
