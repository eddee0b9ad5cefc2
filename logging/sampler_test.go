package logging

import (
	"testing"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// TestTenantSampler: the first line of each tenant in each second goes through, and the
// next one let through says how many were left out; tenants are counted apart.
func TestTenantSampler(t *testing.T) {
	var s TenantSampler
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type step struct {
		id      tenant.ID
		now     time.Time
		ok      bool
		skipped int
	}
	for i, st := range []step{
		{"bank-a", at, true, 0},
		{"bank-a", at.Add(100 * time.Millisecond), false, 0},
		{"shop-b", at.Add(200 * time.Millisecond), true, 0},
		{"bank-a", at.Add(900 * time.Millisecond), false, 0},
		{"bank-a", at.Add(time.Second), true, 2},
		{"bank-a", at.Add(3 * time.Second), true, 0},
		{"shop-b", at.Add(3 * time.Second), true, 0},
	} {
		if ok, skipped := s.Admit(st.id, st.now); ok != st.ok || skipped != st.skipped {
			t.Errorf("step %d (%s): got %v, %d; want %v, %d", i, st.id, ok, skipped, st.ok, st.skipped)
		}
	}
}
