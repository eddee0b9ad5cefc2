package logging

import (
	"sync"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// RefusalSampler thins the access lines of refused requests (429). A tenant sending
// many times its limit would otherwise write a line for each request refused, spending
// CPU and disk that every tenant shares, and burying the other lines. The first 429 of
// each tenant in each second is logged, with how many were left out since the last
// one logged; the request metrics still count every one.
type RefusalSampler struct {
	mu sync.Mutex
	m  map[tenant.ID]*refusalWindow // bounded by the configured tenants, and ""
}

type refusalWindow struct {
	second  int64 // Unix second of the last line logged
	skipped int   // 429s not logged since then
}

// Admit reports whether the access line of a 429 of tenant id may be written at now,
// and how many were left out before it.
func (r *RefusalSampler) Admit(id tenant.ID, now time.Time) (ok bool, skipped int) {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[tenant.ID]*refusalWindow)
	}
	w := r.m[id]
	if w == nil {
		r.m[id] = &refusalWindow{second: sec}
		return true, 0
	}
	if w.second == sec {
		w.skipped++
		return false, 0
	}
	skipped = w.skipped
	w.second, w.skipped = sec, 0
	return true, skipped
}
