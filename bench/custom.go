package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// cleanRedis deletes the keys a Fengda under test wrote.
func (b *bench) cleanRedis(prefix string) {
	opt, err := redis.ParseURL(b.redisURL)
	if err != nil {
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for it.Next(ctx) {
		if batch = append(batch, it.Val()); len(batch) == 1000 {
			c.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Unlink(ctx, batch...)
	}
}

// fdLimit is this process's limit on open descriptors, which children inherit.
func fdLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 1024
	}
	return int(l.Cur)
}

// scenarioConnections holds many SSE conversations open at once against a slow model
// and reads Fengda's memory.
func scenarioConnections(ctx context.Context, b *bench) (*Report, error) {
	// Each conversation is one descriptor in the bench and the model, and two in
	// Fengda (the client's connection and its call to the model).
	limit := fdLimit()
	n := b.conns
	if n == 0 {
		n = (limit - 512) / 2
	}
	if need := 2*n + 256; need > limit {
		return nil, fmt.Errorf("%d conversations need about %d descriptors in Fengda; RLIMIT_NOFILE is %d (raise it with ulimit -n, or lower -conns)", n, need, limit)
	}
	gap := b.hold / 19
	m, err := b.model(0, 20, b.hold)
	if err != nil {
		return nil, err
	}
	f, err := b.fengdaChild("fengda-conns", fengdaOpts{store: "memory", model: m.addr, workers: n + 64, backlog: 1024, idle: gap + 5*time.Second, turn: b.hold + time.Minute})
	if err != nil {
		return nil, err
	}
	rep := newReport("connections", fmt.Sprintf("%d concurrent SSE conversations, each streaming 20 tokens over %s from the model stand-in; memory store", n, b.hold), 1)
	idle, err := f.rss()
	if err != nil {
		return nil, err
	}
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = f.token(i)
	}

	var open, done, failed atomic.Int64
	var errMu sync.Mutex
	errs := map[string]uint64{}
	var wg sync.WaitGroup
	const rampPerSecond = 2000
	began := time.Now()
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		if wait := time.Until(began.Add(time.Duration(i) * time.Second / rampPerSecond)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			source := 0
			if n > 20000 {
				source = 2 + i/20000 // another source address every 20k connections
			}
			c := newConn(f.addr, source)
			defer c.close()
			body := append(append([]byte(`{"message":`), messages[i%len(messages)]...), '}')
			var once sync.Once
			st, _, toks, err := c.streamNotify(request("POST", "/v1/chat", tokens[i], "text/event-stream", body), func() { once.Do(func() { open.Add(1) }) })
			if st == 200 && err == nil && toks > 0 {
				done.Add(1)
				return
			}
			failed.Add(1)
			errMu.Lock()
			errs[errorKey(outcome{status: st, err: err})]++
			errMu.Unlock()
		})
	}
	// Memory at the peak: sampled while the conversations are open.
	var peakRSS int64
	var peakOpen int64
	var peakGoroutines float64
	profiled := false
	var prof sync.WaitGroup
	defer prof.Wait()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
sample:
	for {
		select {
		case <-finished:
			break sample
		case <-tick.C:
			o := open.Load() - done.Load() - failed.Load()
			if rss, err := f.rss(); err == nil && rss > peakRSS {
				peakRSS = rss
			}
			if o > peakOpen {
				peakOpen = o
				if b.memprofile != "" && !profiled && o >= int64(n)*95/100 {
					profiled = true // once, with nearly every conversation open
					prof.Go(func() { b.heapProfile(ctx, f.proc.name, f.admin) })
				}
				if g, err := metric(ctx, "http://"+f.addr+"/metrics", "go_goroutines"); err == nil {
					peakGoroutines = g
				}
			}
		}
	}
	rep.Figures["conversations"] = float64(n)
	rep.Figures["peak_open_conversations"] = float64(peakOpen)
	rep.Figures["completed"] = float64(done.Load())
	rep.Figures["errors"] = float64(failed.Load())
	rep.Figures["rss_idle_mib"] = float64(idle) / (1 << 20)
	rep.Figures["rss_peak_mib"] = float64(peakRSS) / (1 << 20)
	rep.Figures["goroutines_at_peak"] = peakGoroutines
	perConv := float64(peakRSS-idle) / float64(max(peakOpen, 1))
	rep.Figures["rss_per_conversation_kib"] = perConv / 1024
	rep.check("conversations open at once", float64(peakOpen), true, 50000, "")
	rep.check("errors", float64(failed.Load()), false, 0, "")
	rep.check("RSS at the peak (MiB)", float64(peakRSS)/(1<<20), false, 2048, " MiB")
	if peakOpen < 50000 {
		est := (float64(idle) + 50000*perConv) / (1 << 20)
		rep.Figures["rss_at_50k_extrapolated_mib"] = est
		rep.Notes = append(rep.Notes, fmt.Sprintf("50,000 conversations need about 100,000 descriptors in one Fengda process; RLIMIT_NOFILE is %d here. At %.1f KiB a conversation, 50,000 would take about %.0f MiB (extrapolated, not measured).", limit, perConv/1024, est))
	}
	for k, v := range errs {
		rep.Notes = append(rep.Notes, fmt.Sprintf("error %s ×%d", k, v))
	}
	return rep, nil
}

// burstTurn is one turn of the burst, as the bench saw it.
type burstTurn struct {
	token         string // the sender's: a session is only its owner's to read
	session, turn string
	status        int
	sent          time.Time
	latency       time.Duration
}

// burstUser sends each turn in a new conversation, with a client message id, and keeps
// what it needs to find the turn again.
type burstUser struct {
	c     *conn
	token string
	id    int
	n     int
	mu    *sync.Mutex
	turns *[]burstTurn
}

func (u *burstUser) close() { u.c.close() }

func (u *burstUser) exchange() outcome {
	u.n++
	body := fmt.Appendf(nil, `{"message":%s,"client_msg_id":"b-%d-%d"}`, messages[u.n%len(messages)], u.id, u.n)
	sent := time.Now()
	st, err := u.c.do(request("POST", "/v1/chat", u.token, "", body))
	t := burstTurn{token: u.token, status: st, sent: sent, latency: time.Since(sent)}
	if err == nil && (st == 200 || st == 202) {
		t.session = jsonField(u.c.body.Bytes(), "session_id")
		t.turn = jsonField(u.c.body.Bytes(), "turn_id")
	}
	u.mu.Lock()
	*u.turns = append(*u.turns, t)
	u.mu.Unlock()
	return outcome{ok: err == nil && (st == 200 || st == 202), status: st, err: err}
}

// scenarioBurst sends 15× what the workers can answer for the burst's length, with
// JetStream spillover, then checks every accepted turn: answered, stored once, when.
func scenarioBurst(ctx context.Context, b *bench) (*Report, error) {
	const workers, latency = 8, 100 * time.Millisecond
	capacity := float64(workers) / latency.Seconds()
	rate := b.rate
	if rate == 0 {
		rate = 15 * capacity
	}
	const maxWait = 2 * time.Second
	rep := newReport("burst", fmt.Sprintf("%.0f turns/s (%.0f× the %d workers' %.0f/s with a 100 ms model) for %s, JetStream spillover, Redis store, queue.max_wait %s",
		rate, rate/capacity, workers, capacity, b.duration, maxWait), 1)
	type target struct{ name, bin, suffix string }
	targets := []target{{"fengda-burst", "", ""}}
	if b.againstBin != "" {
		// One after the other: a burst leaves minutes of queued work behind it.
		targets = append(targets, target{"fengda-burst@" + b.against, b.againstBin, "_against"})
	}
	for _, t := range targets {
		fmt.Fprintf(errOut, "bench: burst of %s\n", t.name)
		m, err := b.model(latency, 20, 0)
		if err != nil {
			return nil, err
		}
		f, err := b.fengdaChild(t.name, fengdaOpts{bin: t.bin, store: "redis", model: m.addr, workers: workers, backlog: workers, queue: "embedded", maxWait: maxWait})
		if err != nil {
			return nil, err
		}
		err = burstRun(ctx, b, rep, f, t.name, t.suffix, rate, maxWait)
		b.stopAll()
		b.cleanRedis(f.prefix)
		if err != nil {
			return nil, err
		}
	}
	rep.finish()
	fig := rep.Figures
	rep.check("refused (not 200 or 202)", fig["refused"], false, 0, "")
	rep.check("lost (accepted, never answered)", fig["lost"], false, 0, "")
	rep.check("duplicated (stored twice)", fig["duplicated"], false, 0, "")
	rep.check("queued, answered, but not found by GET /v1/turns", fig["queued_not_pollable"], false, 0, "")
	if b.againstBin != "" {
		rep.Notes = append(rep.Notes, "*_against: the same burst against Fengda built at "+b.against+", run after it")
	}
	return rep, nil
}

// burstRun sends the burst to f, then checks every accepted turn: answered, stored
// once, found by polling, when. Its figures go into rep with suffix.
func burstRun(ctx context.Context, b *bench, rep *Report, f *fengdaRun, name, suffix string, rate float64, maxWait time.Duration) error {
	var mu sync.Mutex
	var turns []burstTurn
	inflight := int(rate*(maxWait.Seconds()+1)) + 64
	l := Load{Name: name, Clients: inflight, Rate: rate, Duration: b.duration, NewUser: func(i int) user {
		return &burstUser{c: newConn(f.addr, 0), token: f.token(i), id: i, mu: &mu, turns: &turns}
	}}
	began := time.Now()
	res := l.Run(ctx)
	rep.add(name, runOf(res))
	if peak, err := f.peakRSS(); err == nil {
		rep.Figures["rss_peak_mib"+suffix] = float64(peak) / (1 << 20)
	}

	// Every accepted turn is looked up in its session's history until answered.
	var accepted, atOnce, queued, refused int
	pending := map[string]*burstTurn{}
	for i := range turns {
		t := &turns[i]
		switch {
		case t.status == 200:
			accepted++
			atOnce++
			pending[t.turn] = t
		case t.status == 202:
			accepted++
			queued++
			pending[t.turn] = t
		default:
			refused++
		}
	}
	fmt.Fprintf(errOut, "bench: burst sent %d turns: %d answered at once, %d queued, %d refused; checking every one\n", len(turns), atOnce, queued, refused)
	var maxWaitSeen time.Duration
	var lost, duplicated int
	deadline := time.Now().Add(time.Duration(15*b.duration.Seconds()*float64(time.Second)) + 2*time.Minute)
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var found []string
		sem := make(chan struct{}, 32)
		for id, t := range pending {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				copies, answered, err := lookupTurn(ctx, f.addr, t.token, t.session, id)
				if err != nil || copies == 0 {
					return // still waiting
				}
				mu.Lock()
				defer mu.Unlock()
				if copies > 1 {
					duplicated++
				}
				if w := answered.Sub(t.sent); w > maxWaitSeen {
					maxWaitSeen = w
				}
				found = append(found, id)
			})
		}
		wg.Wait()
		for _, id := range found {
			delete(pending, id)
		}
		if len(pending) > 0 {
			fmt.Fprintf(errOut, "bench: %d turns not answered yet\n", len(pending))
			time.Sleep(2 * time.Second)
		}
	}
	lost = len(pending)
	// A client of a queued turn polls GET /v1/turns/{id}: once all are answered, each
	// must answer there too.
	var unpollable atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range turns {
		if t := &turns[i]; t.status == 202 {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if st, err := pollTurn(ctx, f.addr, t.token, t.turn); err != nil || st != http.StatusOK {
					unpollable.Add(1)
				}
			})
		}
	}
	wg.Wait()
	rep.Figures["sent"+suffix] = float64(len(turns))
	rep.Figures["answered_at_once"+suffix] = float64(atOnce)
	rep.Figures["queued_202"+suffix] = float64(queued)
	rep.Figures["refused"+suffix] = float64(refused)
	rep.Figures["answered"+suffix] = float64(accepted - lost)
	rep.Figures["lost"+suffix] = float64(lost)
	rep.Figures["duplicated"+suffix] = float64(duplicated)
	rep.Figures["queued_not_pollable"+suffix] = float64(unpollable.Load())
	rep.Figures["max_wait_s"+suffix] = maxWaitSeen.Seconds()
	rep.Figures["all_answered_after_s"+suffix] = time.Since(began).Seconds()
	return nil
}

// pollTurn asks for a queued turn by its id, as its owner, and returns the status.
func pollTurn(ctx context.Context, addr, token, turn string) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/turns/"+turn, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// lookupTurn counts the copies of a turn in its session's history, as its owner reads
// it, and when its answer was stored.
func lookupTurn(ctx context.Context, addr, token, session, turn string) (copies int, answered time.Time, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/sessions/"+session+"/messages", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, time.Time{}, nil // a queued turn's new session is stored with its answer
	}
	if resp.StatusCode != http.StatusOK {
		return 0, time.Time{}, errors.New(resp.Status)
	}
	var h struct {
		Messages []struct {
			Role   string `json:"role"`
			TurnID string `json:"turn_id"`
			At     string `json:"at"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return 0, time.Time{}, err
	}
	for _, m := range h.Messages {
		if m.TurnID == turn && m.Role == "assistant" {
			copies++
			answered, _ = time.Parse(time.RFC3339Nano, m.At)
		}
	}
	return copies, answered, nil
}

// scenarioSoak holds a constant open-loop load and compares Fengda's memory and
// goroutines at a fifth of the way (minute 2 of 10) with the end.
func scenarioSoak(ctx context.Context, b *bench) (*Report, error) {
	rate := b.rate
	if rate == 0 {
		rate = 300
	}
	f, err := b.fengdaChild("fengda-soak", fengdaOpts{store: "redis", workers: 64, backlog: 1024})
	if err != nil {
		return nil, err
	}
	defer b.cleanRedis(f.prefix)
	rep := newReport("soak", fmt.Sprintf("open loop at %.0f/s for %s, FAQ engine, Redis store", rate, b.duration), 1)
	l := Load{Name: "fengda-soak", Clients: 256, Rate: rate, Duration: b.duration, Warmup: b.warmup, NewUser: fengdaUsers(f, false)}
	type sample struct{ rss, goroutines float64 }
	// take is the median of five readings a fifth of a second apart, so one burst of
	// in-flight requests does not decide it.
	take := func() sample {
		var rs, gs []float64
		for range 5 {
			if r, err := f.rss(); err == nil {
				rs = append(rs, float64(r))
			}
			if g, err := metric(ctx, "http://"+f.addr+"/metrics", "go_goroutines"); err == nil {
				gs = append(gs, g)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return sample{median(rs), median(gs)}
	}
	var early, late sample
	var wg sync.WaitGroup
	began := time.Now()
	wg.Go(func() {
		sleepUntil(ctx, began.Add(b.warmup+b.duration/5))
		early = take()
		sleepUntil(ctx, began.Add(b.warmup+b.duration-2*time.Second))
		late = take()
	})
	res := l.Run(ctx)
	wg.Wait()
	rep.add("fengda-soak", runOf(res))
	rep.finish()
	rep.Figures["rss_early_mib"] = early.rss / (1 << 20)
	rep.Figures["rss_end_mib"] = late.rss / (1 << 20)
	rep.Figures["goroutines_early"] = early.goroutines
	rep.Figures["goroutines_end"] = late.goroutines
	rep.check("RSS end / early", late.rss/early.rss, false, 1.10, "×")
	rep.check("goroutines end / early", late.goroutines/early.goroutines, false, 1.10, "×")
	rep.check("errors", float64(res.ErrorCount()), false, 0, "")
	return rep, nil
}

// sleepUntil waits until t, or less when ctx ends.
func sleepUntil(ctx context.Context, t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-ctx.Done():
	}
}

// floorSamples is how many round trips each floor is the median of.
const floorSamples = 2000

// latencyFloor measures, one request at a time, what the loopback costs the path a
// turn takes beyond calling the model directly: one more HTTP round trip (the client
// to Fengda; the bare handler's median) and two Redis round trips (PING's median). Their
// sum is the least a Fengda turn can add on this machine with nothing else running.
func (b *bench) latencyFloor(ctx context.Context, rep *Report) error {
	hello, err := b.role("hello")
	if err != nil {
		return err
	}
	res := Load{Name: "hello", Clients: 1, Duration: time.Second, Warmup: 200 * time.Millisecond,
		NewUser: func(int) user { return &helloUser{c: newConn(hello.addr, 0)} }}.Run(ctx)
	if res.OK == 0 {
		return fmt.Errorf("latency floor: the bare handler answered nothing (%v)", res.Errors)
	}
	httpRTT := res.Latency.Quantile(0.5)

	opt, err := redis.ParseURL(b.redisURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	var h Histogram
	for i := range floorSamples + floorSamples/10 {
		t := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("latency floor: redis: %w", err)
		}
		if i >= floorSamples/10 { // the first tenth warms up
			h.Record(time.Since(t))
		}
	}
	redisRTT := h.Quantile(0.5)

	floor := httpRTT + 2*redisRTT
	rep.Figures["floor_http_rtt_p50_ms"] = ms(httpRTT)
	rep.Figures["floor_redis_rtt_p50_ms"] = ms(redisRTT)
	rep.Figures["floor_added_p50_ms"] = ms(floor)
	rep.Notes = append(rep.Notes, fmt.Sprintf("floor: one request at a time, an HTTP round trip to the bare handler takes %.3f ms and a Redis PING %.3f ms (medians); a turn's one more hop and two Redis round trips add at least %.3f ms on this machine", ms(httpRTT), ms(redisRTT), ms(floor)))
	fmt.Fprintf(errOut, "bench: latency floor: HTTP round trip %.3f ms, Redis round trip %.3f ms: at least %.3f ms added\n", ms(httpRTT), ms(redisRTT), ms(floor))
	return nil
}
