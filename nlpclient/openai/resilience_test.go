package openai

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	l := &LLM{cfg: Config{BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond}}
	for retries, ceil := range []time.Duration{50, 100, 200, 400, 500, 500, 500} {
		ceil *= time.Millisecond
		for range 100 {
			if d := l.backoff(retries); d < ceil/2 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", retries, d, ceil/2, ceil)
			}
		}
	}
}
