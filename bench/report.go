package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what one scenario measured: each target's runs, their medians, and the
// checks against the targets.
type Report struct {
	Scenario string             `json:"scenario"`
	Setup    string             `json:"setup"`
	Rounds   int                `json:"rounds"`
	Order    []string           `json:"order"`
	Runs     map[string][]Run   `json:"runs"`
	Median   map[string]Run     `json:"median"`
	Checks   []Check            `json:"checks"`
	Figures  map[string]float64 `json:"figures,omitempty"` // scenario-specific, e.g. rss_bytes
	Notes    []string           `json:"notes,omitempty"`
}

// Run is one load run's figures; latencies in milliseconds.
type Run struct {
	RPS     float64           `json:"rps"`
	OK      uint64            `json:"ok"`
	P50     float64           `json:"p50_ms"`
	P90     float64           `json:"p90_ms"`
	P99     float64           `json:"p99_ms"`
	P999    float64           `json:"p999_ms"`
	Max     float64           `json:"max_ms"`
	TTFT50  float64           `json:"ttft_p50_ms,omitempty"`
	TTFT99  float64           `json:"ttft_p99_ms,omitempty"`
	CPU     float64           `json:"server_cpu_us_per_req,omitempty"`
	Errors  map[string]uint64 `json:"errors,omitempty"`
	NErrors uint64            `json:"error_count"`
}

// Check is one target: the measured value and whether it holds.
type Check struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Holds  bool    `json:"holds"`
	// Rounds are the figure of each round, in order, when Value is their median: how
	// far they spread says how much one run on this machine can be trusted.
	Rounds []float64 `json:"rounds,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runOf(r *Result) Run {
	return Run{
		RPS: r.RPS(), OK: r.OK,
		P50: ms(r.Latency.Quantile(0.5)), P90: ms(r.Latency.Quantile(0.9)), P99: ms(r.Latency.Quantile(0.99)),
		P999: ms(r.Latency.Quantile(0.999)), Max: ms(r.Latency.Max()),
		TTFT50: ms(r.TTFT.Quantile(0.5)), TTFT99: ms(r.TTFT.Quantile(0.99)),
		Errors: r.Errors, NErrors: r.ErrorCount(),
	}
}

func newReport(scenario, setup string, rounds int) *Report {
	return &Report{Scenario: scenario, Setup: setup, Rounds: rounds, Runs: map[string][]Run{}, Median: map[string]Run{}, Figures: map[string]float64{}}
}

func (rep *Report) add(name string, r Run) {
	if _, ok := rep.Runs[name]; !ok {
		rep.Order = append(rep.Order, name)
	}
	rep.Runs[name] = append(rep.Runs[name], r)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// field is the median over name's runs of one figure.
func (rep *Report) field(name string, f func(Run) float64) float64 {
	var xs []float64
	for _, r := range rep.Runs[name] {
		xs = append(xs, f(r))
	}
	return median(xs)
}

// ratios is, for each round, a's figure divided by b's in the same round.
func (rep *Report) ratios(a, b string, f func(Run) float64) []float64 {
	var xs []float64
	for i, ra := range rep.Runs[a] {
		if i < len(rep.Runs[b]) && f(rep.Runs[b][i]) != 0 {
			xs = append(xs, f(ra)/f(rep.Runs[b][i]))
		}
	}
	return xs
}

// ratio is the median over rounds of a's figure divided by b's in the same round.
func (rep *Report) ratio(a, b string, f func(Run) float64) float64 {
	return median(rep.ratios(a, b, f))
}

// diffs is, for each round, a's figure minus b's in the same round.
func (rep *Report) diffs(a, b string, f func(Run) float64) []float64 {
	var xs []float64
	for i, ra := range rep.Runs[a] {
		if i < len(rep.Runs[b]) {
			xs = append(xs, f(ra)-f(rep.Runs[b][i]))
		}
	}
	return xs
}

// diff is the median over rounds of a's figure minus b's in the same round.
func (rep *Report) diff(a, b string, f func(Run) float64) float64 {
	return median(rep.diffs(a, b, f))
}

func (rep *Report) check(name string, v float64, atLeast bool, target float64, unit string) {
	c := Check{Name: name, Value: v}
	if atLeast {
		c.Target, c.Holds = fmt.Sprintf("≥ %g%s", target, unit), v >= target
	} else {
		c.Target, c.Holds = fmt.Sprintf("≤ %g%s", target, unit), v <= target
	}
	rep.Checks = append(rep.Checks, c)
}

// checkRounds is check of the median of rounds, the figure of each round, which the
// check keeps and prints beside it.
func (rep *Report) checkRounds(name string, rounds []float64, atLeast bool, target float64, unit string) {
	rep.check(name, median(rounds), atLeast, target, unit)
	rep.Checks[len(rep.Checks)-1].Rounds = rounds
}

// finish computes the medians of every target.
func (rep *Report) finish() {
	for _, name := range rep.Order {
		runs := rep.Runs[name]
		m := Run{
			RPS: rep.field(name, func(r Run) float64 { return r.RPS }),
			P50: rep.field(name, func(r Run) float64 { return r.P50 }), P90: rep.field(name, func(r Run) float64 { return r.P90 }),
			P99: rep.field(name, func(r Run) float64 { return r.P99 }), P999: rep.field(name, func(r Run) float64 { return r.P999 }),
			Max:    rep.field(name, func(r Run) float64 { return r.Max }),
			TTFT50: rep.field(name, func(r Run) float64 { return r.TTFT50 }), TTFT99: rep.field(name, func(r Run) float64 { return r.TTFT99 }),
			CPU:    rep.field(name, func(r Run) float64 { return r.CPU }),
			Errors: map[string]uint64{},
		}
		for _, r := range runs {
			m.OK += r.OK
			m.NErrors += r.NErrors
			for k, v := range r.Errors {
				m.Errors[k] += v
			}
		}
		rep.Median[name] = m
	}
}

func (rep *Report) print(w io.Writer) {
	fmt.Fprintf(w, "\n== %s: %s\n", rep.Scenario, rep.Setup)
	if len(rep.Order) > 0 {
		fmt.Fprintf(w, "medians of %d interleaved rounds:\n", rep.Rounds)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\trps\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tttft p50\tttft p99\tcpu µs/req\terrors\t")
		for _, name := range rep.Order {
			m := rep.Median[name]
			fmt.Fprintf(tw, "%s\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%.1f\t%.3f\t%.3f\t%.1f\t%d\t\n",
				name, m.RPS, m.P50, m.P90, m.P99, m.P999, m.Max, m.TTFT50, m.TTFT99, m.CPU, m.NErrors)
		}
		tw.Flush()
		for _, name := range rep.Order {
			if m := rep.Median[name]; m.NErrors > 0 {
				var parts []string
				for k, v := range m.Errors {
					parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
				}
				slices.Sort(parts)
				fmt.Fprintf(w, "errors of %s (all rounds): %s\n", name, strings.Join(parts, ", "))
			}
		}
	}
	for _, k := range mapsKeys(rep.Figures) {
		fmt.Fprintf(w, "%s: %.4g\n", k, rep.Figures[k])
	}
	for _, c := range rep.Checks {
		verdict := "holds"
		if !c.Holds {
			verdict = "DOES NOT HOLD"
		}
		rounds := ""
		if len(c.Rounds) > 1 {
			parts := make([]string, len(c.Rounds))
			for i, x := range c.Rounds {
				parts[i] = strconv.FormatFloat(x, 'f', 3, 64)
			}
			rounds = "  (rounds: " + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(w, "check %-40s %10.3f  target %-10s %s%s\n", c.Name, c.Value, c.Target, verdict, rounds)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
