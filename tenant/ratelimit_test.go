package tenant

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewRegistryUserRateLimit(t *testing.T) {
	tests := []struct {
		name string
		in   RateLimit
		want RateLimit
	}{
		{"off by default", RateLimit{RPS: 5}, RateLimit{RPS: 5, Burst: 10}},
		{"user burst defaults to twice the rate", RateLimit{RPS: 50, UserRPS: 2.5}, RateLimit{RPS: 50, Burst: 100, UserRPS: 2.5, UserBurst: 5}},
		{"as configured", RateLimit{RPS: 50, Burst: 60, UserRPS: 5, UserBurst: 10}, RateLimit{RPS: 50, Burst: 60, UserRPS: 5, UserBurst: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := NewRegistry([]Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Value: secretA}}}, RateLimit: tt.in}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := reg.Get("bank-a")
			if diff := cmp.Diff(got.RateLimit, tt.want); diff != "" {
				t.Errorf("RateLimit (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNewRegistryRateLimitErrors(t *testing.T) {
	tests := []struct {
		name string
		in   RateLimit
		want string
	}{
		{"NaN rps", RateLimit{RPS: math.NaN()}, "tenants[0].rate_limit.rps:"},
		{"negative user rps", RateLimit{UserRPS: -1}, "tenants[0].rate_limit.user_rps:"},
		{"NaN user rps", RateLimit{UserRPS: math.NaN()}, "tenants[0].rate_limit.user_rps:"},
		{"infinite user rps", RateLimit{UserRPS: math.Inf(1)}, "tenants[0].rate_limit.user_rps:"},
		{"negative user burst", RateLimit{UserRPS: 1, UserBurst: -1}, "tenants[0].rate_limit.user_burst:"},
		{"user burst without user rps", RateLimit{UserBurst: 5}, "tenants[0].rate_limit.user_burst: set without user_rps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegistry([]Config{{ID: "bank-a", Keys: []KeyConfig{{KID: "k1", Alg: AlgHS256, Secret: Secret{Value: secretA}}}, RateLimit: tt.in}}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("NewRegistry error = %v, want prefix %q", err, tt.want)
			}
		})
	}
}
