package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// user is one virtual user: it owns its connection and conversation state, and makes
// its next exchange when asked. One goroutine drives it.
type user interface {
	exchange() outcome
	close()
}

// outcome is how one exchange went. ok is false for a status other than the one
// expected, a broken connection or a stream that ended in an error.
type outcome struct {
	ok     bool
	status int
	ttft   time.Duration // streams: time to the first token
	err    error
}

// Load is one load run: closed loop (Clients users, each sending its next request when
// the last is answered) or open loop (Rate requests a second on a fixed schedule,
// latency measured from each request's scheduled time, so a stall shows as latency of
// every request it delayed instead of as fewer requests).
type Load struct {
	Name     string
	Clients  int           // closed loop: users; open loop: most requests in flight
	Rate     float64       // requests a second; > 0 makes the run open loop
	Duration time.Duration // the measured window
	Warmup   time.Duration // run before the window, not recorded
	NewUser  func(i int) user
}

// Result is what one load run measured.
type Result struct {
	Name    string
	Mode    string
	Clients int
	Rate    float64
	Elapsed time.Duration
	OK      uint64
	Errors  map[string]uint64
	Latency Histogram // of the exchanges that went well
	TTFT    Histogram // streams only
}

// RPS is the rate of exchanges that went well.
func (r *Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// ErrorCount is the number of exchanges that did not go well.
func (r *Result) ErrorCount() uint64 {
	var n uint64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// tally is one goroutine's share of a Result.
type tally struct {
	ok      uint64
	errors  map[string]uint64
	latency Histogram
	ttft    Histogram
}

func (t *tally) add(o outcome, lat time.Duration) {
	if o.ok {
		t.ok++
		t.latency.Record(lat)
		if o.ttft > 0 {
			t.ttft.Record(o.ttft)
		}
		return
	}
	if t.errors == nil {
		t.errors = map[string]uint64{}
	}
	t.errors[errorKey(o)]++
}

// errorKey groups failures: by status, or by the kind of transport error.
func errorKey(o outcome) string {
	switch {
	case o.err != nil && o.status != 0:
		return fmt.Sprintf("status %d: %s", o.status, shortErr(o.err))
	case o.err != nil:
		return shortErr(o.err)
	default:
		return fmt.Sprintf("status %d", o.status)
	}
}

func shortErr(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, errStreamError):
		return "stream error event"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// Run drives the load until its window ends or ctx does.
func (l Load) Run(ctx context.Context) *Result {
	if l.Rate > 0 {
		return l.open(ctx)
	}
	return l.closed(ctx)
}

func (l Load) closed(ctx context.Context) *Result {
	start := time.Now()
	from, until := start.Add(l.Warmup), start.Add(l.Warmup+l.Duration)
	tallies := make([]tally, l.Clients)
	var wg sync.WaitGroup
	for i := range l.Clients {
		wg.Go(func() {
			u := l.NewUser(i)
			defer u.close()
			t := &tallies[i]
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				o := u.exchange()
				if t0.Before(from) {
					continue
				}
				t.add(o, time.Since(t0))
			}
		})
	}
	wg.Wait()
	return l.result("closed", tallies, l.Duration)
}

// maxSchedule bounds the requests an open-loop run holds back when every sender is
// busy; past it the client itself is saturated and says so.
const maxSchedule = 1 << 16

func (l Load) open(ctx context.Context) *Result {
	start := time.Now()
	from, until := start.Add(l.Warmup), start.Add(l.Warmup+l.Duration)
	due := make(chan time.Time, maxSchedule)
	tallies := make([]tally, l.Clients+1)
	var wg sync.WaitGroup
	for i := range l.Clients {
		wg.Go(func() {
			u := l.NewUser(i)
			defer u.close()
			t := &tallies[i]
			for at := range due {
				late := time.Since(at) // a stall before the send counts, as for latency
				o := u.exchange()
				if at.Before(from) {
					continue
				}
				if o.ttft > 0 {
					o.ttft += late
				}
				t.add(o, time.Since(at))
			}
		})
	}
	// The schedule: request k is due at start + k/Rate, whatever happened before it.
	interval := time.Duration(float64(time.Second) / l.Rate)
	dropped := &tallies[l.Clients]
	for k := 0; ctx.Err() == nil; {
		now := time.Now()
		for ; ; k++ {
			at := start.Add(time.Duration(k) * interval)
			if at.After(now) || !at.Before(until) {
				break
			}
			select {
			case due <- at:
			default:
				if !at.Before(from) {
					dropped.add(outcome{err: errors.New("client saturated: request not sent")}, 0)
				}
			}
		}
		if !now.Before(until) {
			break
		}
		time.Sleep(min(interval, time.Millisecond))
	}
	close(due)
	wg.Wait()
	return l.result("open", tallies, l.Duration)
}

func (l Load) result(mode string, tallies []tally, elapsed time.Duration) *Result {
	r := &Result{Name: l.Name, Mode: mode, Clients: l.Clients, Rate: l.Rate, Elapsed: elapsed, Errors: map[string]uint64{}}
	for i := range tallies {
		t := &tallies[i]
		r.OK += t.ok
		for k, v := range t.errors {
			r.Errors[k] += v
		}
		r.Latency.Merge(&t.latency)
		r.TTFT.Merge(&t.ttft)
	}
	return r
}
