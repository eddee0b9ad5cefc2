package logging

import (
	"sync"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// TenantSampler lets one line of a kind through per tenant and second, so that a
// tenant cannot flood the log every tenant shares (the gateway thins the access lines
// of 429s with it). Its zero value is ready to use.
type TenantSampler struct {
	mu sync.Mutex
	m  map[tenant.ID]*sampleWindow // bounded by the configured tenants, and ""
}

type sampleWindow struct {
	second  int64 // Unix second of the last line let through
	skipped int   // lines left out since then
}

// Admit reports whether a line of tenant id may be written at now, and how many were
// left out since the last one let through.
func (r *TenantSampler) Admit(id tenant.ID, now time.Time) (ok bool, skipped int) {
	sec := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = make(map[tenant.ID]*sampleWindow)
	}
	w := r.m[id]
	if w == nil {
		r.m[id] = &sampleWindow{second: sec}
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
