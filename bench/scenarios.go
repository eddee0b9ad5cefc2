package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is one side of a comparison.
type target struct {
	name    string
	proc    *proc  // whose CPU time is counted
	admin   string // Fengda's pprof listener, when profiling
	newUser func(i int) user
}

// againstTarget starts, when -against is set, Fengda built at that revision with the
// options of the target named name, and returns the target to measure it by, named
// name@revision, and a function that deletes its Redis keys. It returns no target
// without -against.
func (b *bench) againstTarget(name string, o fengdaOpts, stream bool) ([]target, func(), error) {
	if b.againstBin == "" {
		return nil, func() {}, nil
	}
	o.bin = b.againstBin
	f, err := b.fengdaChild(name+"@"+b.against, o)
	if err != nil {
		return nil, nil, err
	}
	return []target{{name: f.proc.name, proc: f.proc, newUser: fengdaUsers(f, stream)}}, func() { b.cleanRedis(f.prefix) }, nil
}

// compareAgainst adds, when -against is set, the figures of the Fengda under test as
// ratios to the same Fengda at that revision: throughput and CPU per request.
func (b *bench) compareAgainst(rep *Report, names ...string) {
	if b.againstBin == "" {
		return
	}
	for _, n := range names {
		old := n + "@" + b.against
		rep.Figures[n+"_rps_vs_against"] = rep.ratio(n, old, rps)
		rep.Figures[n+"_cpu_vs_against"] = rep.ratio(n, old, func(r Run) float64 { return r.CPU })
		rep.Figures[n+"_p99_vs_against"] = rep.ratio(n, old, p99)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("*_vs_against: the Fengda under test over the same Fengda built at %s, same rounds", b.against))
}

// compare runs every target for the same window, in interleaved rounds, and adds the
// runs to rep.
func (b *bench) compare(ctx context.Context, rep *Report, clients int, targets []target) error {
	for round := range b.rounds {
		for _, t := range targets {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l := Load{Name: t.name, Clients: clients, Rate: b.rate, Duration: b.duration, Warmup: b.warmup, NewUser: t.newUser}
			// The server's CPU time over the measured window only.
			var cpu0 atomic.Int64
			mark := time.AfterFunc(b.warmup, func() { cpu0.Store(int64(t.proc.cpu())) })
			var prof sync.WaitGroup
			if round == 0 && t.admin != "" && b.cpuprofile != "" {
				prof.Go(func() { b.profile(ctx, t) })
			}
			if round == 0 && t.admin != "" && b.memprofile != "" {
				// Near the end of the measured window, while the load still runs.
				at := time.Now().Add(b.warmup + b.duration*9/10)
				prof.Go(func() {
					if sleepUntil(ctx, at); ctx.Err() == nil {
						b.heapProfile(ctx, t.name, t.admin)
					}
				})
			}
			res := l.Run(ctx)
			mark.Stop()
			prof.Wait()
			from := time.Duration(cpu0.Load())
			cpu := t.proc.cpu() - from
			r := runOf(res)
			if r.OK > 0 && from > 0 {
				r.CPU = float64(cpu.Microseconds()) / float64(r.OK)
			}
			rep.add(t.name, r)
			fmt.Fprintf(errOut, "bench: round %d %-16s %8.0f rps  p50 %.3f ms  p99 %.3f ms  errors %d\n", round+1, t.name, r.RPS, r.P50, r.P99, r.NErrors)
		}
	}
	rep.finish()
	return nil
}

// profile saves a CPU profile of t over its first measured window, to -cpuprofile
// with the target's name added before the extension.
func (b *bench) profile(ctx context.Context, t target) {
	if sleepUntil(ctx, time.Now().Add(b.warmup)); ctx.Err() != nil {
		return
	}
	secs := max(int(b.duration.Seconds()), 1)
	b.saveProfile(ctx, t.name, "CPU", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", t.admin, secs), b.cpuprofile)
}

// heapProfile saves a heap profile of the Fengda named name, taken now from its admin
// listener, to -memprofile with the name added before the extension.
func (b *bench) heapProfile(ctx context.Context, name, admin string) {
	b.saveProfile(ctx, name, "heap", "http://"+admin+"/debug/pprof/heap", b.memprofile)
}

// saveProfile fetches the profile at url into file, with name added before its
// extension, and says where it is.
func (b *bench) saveProfile(ctx context.Context, name, kind, url, file string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(errOut, "bench: %s profile of %s: %v\n", kind, name, err)
		return
	}
	defer resp.Body.Close()
	ext := filepath.Ext(file)
	path := strings.TrimSuffix(file, ext) + "-" + name + ext
	out, err := os.Create(path)
	if err == nil {
		_, err = io.Copy(out, resp.Body)
		err = errors.Join(err, out.Close())
	}
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(errOut, "bench: %s profile of %s: %v %s\n", kind, name, err, resp.Status)
		return
	}
	fmt.Fprintf(errOut, "bench: %s profile of %s in %s (go tool pprof -top %s)\n", kind, name, path, path)
}

func fengdaUsers(f *fengdaRun, stream bool) func(int) user {
	return func(i int) user {
		return &chatUser{c: newConn(f.addr, 0), token: f.token(i), stream: stream}
	}
}

func modelUsers(addr string, stream bool) func(int) user {
	return func(int) user { return &modelUser{c: newConn(addr, 0), stream: stream} }
}

func rps(r Run) float64    { return r.RPS }
func p50(r Run) float64    { return r.P50 }
func p99(r Run) float64    { return r.P99 }
func ttft50(r Run) float64 { return r.TTFT50 }
func ttft99(r Run) float64 { return r.TTFT99 }

// scenarioFAQ: the built-in engine with the memory store and with the Redis store,
// against hello.
func scenarioFAQ(ctx context.Context, b *bench) (*Report, error) {
	clients := b.clientsOr(32)
	hello, err := b.role("hello")
	if err != nil {
		return nil, err
	}
	memOpts := fengdaOpts{store: "memory", workers: 64, backlog: 1024}
	mem, err := b.fengdaChild("fengda-memory", memOpts)
	if err != nil {
		return nil, err
	}
	redOpts := fengdaOpts{store: "redis", workers: 64, backlog: 1024}
	red, err := b.fengdaChild("fengda-redis", redOpts)
	if err != nil {
		return nil, err
	}
	defer b.cleanRedis(red.prefix)
	oldMem, cleanMem, err := b.againstTarget("fengda-memory", memOpts, false)
	if err != nil {
		return nil, err
	}
	defer cleanMem()
	oldRed, cleanRed, err := b.againstTarget("fengda-redis", redOpts, false)
	if err != nil {
		return nil, err
	}
	defer cleanRed()
	rep := newReport("faq", fmt.Sprintf("built-in FAQ engine (bank KB), JWT, rate limit, %d-turn sessions; %s; %d clients × %s",
		turnsPerSession, b.mode(), clients, b.duration), b.rounds)
	err = b.compare(ctx, rep, clients, slices.Concat([]target{
		{name: "hello", proc: hello, newUser: func(int) user { return &helloUser{c: newConn(hello.addr, 0)} }},
		{name: "fengda-memory", proc: mem.proc, admin: mem.admin, newUser: fengdaUsers(mem, false)},
		{name: "fengda-redis", proc: red.proc, admin: red.admin, newUser: fengdaUsers(red, false)},
	}, oldMem, oldRed))
	if err != nil {
		return nil, err
	}
	b.compareAgainst(rep, "fengda-memory", "fengda-redis")
	rep.checkRounds("throughput fengda-memory / hello", rep.ratios("fengda-memory", "hello", rps), true, 0.6, "×")
	rep.checkRounds("throughput fengda-redis / hello", rep.ratios("fengda-redis", "hello", rps), true, 0.35, "×")
	return rep, nil
}

// scenarioLLM: the model path with a model that answers at once, Redis store, JWT,
// rate limit, against a reverse proxy in front of the same model.
func scenarioLLM(ctx context.Context, b *bench) (*Report, error) {
	clients := b.clientsOr(32)
	m, err := b.model(0, 20, 0)
	if err != nil {
		return nil, err
	}
	px, err := b.role("proxy", "-upstream", "http://"+m.addr)
	if err != nil {
		return nil, err
	}
	o := fengdaOpts{store: "redis", model: m.addr, workers: 256, backlog: 1024}
	f, err := b.fengdaChild("fengda-llm", o)
	if err != nil {
		return nil, err
	}
	defer b.cleanRedis(f.prefix)
	old, cleanOld, err := b.againstTarget("fengda-llm", o, false)
	if err != nil {
		return nil, err
	}
	defer cleanOld()
	rep := newReport("llm", fmt.Sprintf("model stand-in answering at once (20 tokens, JSON), Redis store, JWT, rate limit; %s; %d clients × %s",
		b.mode(), clients, b.duration), b.rounds)
	err = b.compare(ctx, rep, clients, slices.Concat([]target{
		{name: "proxy", proc: px, newUser: modelUsers(px.addr, false)},
		{name: "fengda-llm", proc: f.proc, admin: f.admin, newUser: fengdaUsers(f, false)},
	}, old))
	if err != nil {
		return nil, err
	}
	b.compareAgainst(rep, "fengda-llm")
	rep.checkRounds("throughput fengda-llm / proxy", rep.ratios("fengda-llm", "proxy", rps), true, 0.8, "×")
	return rep, nil
}

// scenarioLatency: a model that takes 50 ms, 100 clients: what Fengda adds to the
// latency of calling the model directly.
func scenarioLatency(ctx context.Context, b *bench) (*Report, error) {
	clients := b.clientsOr(100)
	m, err := b.model(50*time.Millisecond, 20, 0)
	if err != nil {
		return nil, err
	}
	o := fengdaOpts{store: "redis", model: m.addr, workers: 2 * clients, backlog: 1024}
	f, err := b.fengdaChild("fengda-llm", o)
	if err != nil {
		return nil, err
	}
	defer b.cleanRedis(f.prefix)
	old, cleanOld, err := b.againstTarget("fengda-llm", o, false)
	if err != nil {
		return nil, err
	}
	defer cleanOld()
	rep := newReport("latency", fmt.Sprintf("model stand-in taking 50 ms (JSON), Redis store; %s; %d clients × %s", b.mode(), clients, b.duration), b.rounds)
	if err := b.latencyFloor(ctx, rep); err != nil {
		return nil, err
	}
	err = b.compare(ctx, rep, clients, slices.Concat([]target{
		{name: "direct", proc: m, newUser: modelUsers(m.addr, false)},
		{name: "fengda-llm", proc: f.proc, admin: f.admin, newUser: fengdaUsers(f, false)},
	}, old))
	if err != nil {
		return nil, err
	}
	b.compareAgainst(rep, "fengda-llm")
	if old != nil {
		rep.Figures["added_p50_ms_against"] = rep.diff(old[0].name, "direct", p50)
		rep.Figures["added_p99_ms_against"] = rep.diff(old[0].name, "direct", p99)
	}
	rep.checkRounds("added p50 (ms)", rep.diffs("fengda-llm", "direct", p50), false, 0.5, " ms")
	rep.checkRounds("added p99 (ms)", rep.diffs("fengda-llm", "direct", p99), false, 5, " ms")
	rep.checkRounds("throughput fengda-llm / direct", rep.ratios("fengda-llm", "direct", rps), true, 0.98, "×")
	return rep, nil
}

// scenarioStream: SSE, 20 tokens over 1 s: what Fengda adds to the time to the first
// token of streaming from the model directly.
func scenarioStream(ctx context.Context, b *bench) (*Report, error) {
	clients := b.clientsOr(100)
	m, err := b.model(0, 20, time.Second)
	if err != nil {
		return nil, err
	}
	o := fengdaOpts{store: "redis", model: m.addr, workers: 2 * clients, backlog: 1024}
	f, err := b.fengdaChild("fengda-stream", o)
	if err != nil {
		return nil, err
	}
	defer b.cleanRedis(f.prefix)
	old, cleanOld, err := b.againstTarget("fengda-stream", o, true)
	if err != nil {
		return nil, err
	}
	defer cleanOld()
	rep := newReport("stream", fmt.Sprintf("SSE, model stand-in streaming 20 tokens over 1 s, Redis store; %s; %d clients × %s", b.mode(), clients, b.duration), b.rounds)
	err = b.compare(ctx, rep, clients, slices.Concat([]target{
		{name: "direct", proc: m, newUser: modelUsers(m.addr, true)},
		{name: "fengda-stream", proc: f.proc, admin: f.admin, newUser: fengdaUsers(f, true)},
	}, old))
	if err != nil {
		return nil, err
	}
	b.compareAgainst(rep, "fengda-stream")
	if old != nil {
		rep.Figures["added_ttft_p99_ms_against"] = rep.diff(old[0].name, "direct", ttft99)
	}
	rep.Figures["added_ttft_p50_ms"] = rep.diff("fengda-stream", "direct", ttft50)
	rep.checkRounds("added time to first token p99 (ms)", rep.diffs("fengda-stream", "direct", ttft99), false, 5, " ms")
	return rep, nil
}

func (b *bench) mode() string {
	if b.rate > 0 {
		return fmt.Sprintf("open loop at %.0f/s", b.rate)
	}
	return "closed loop"
}
