package gateway

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/tenant"
)

// demoUserPrefix starts the user id of every anonymous demo user, so that a demo token
// can only ever renew a demo user's token, never a real user's.
const demoUserPrefix = "demo-"

// errNotDemoTenant is a demo token asked for a tenant that is not on the demo page.
var errNotDemoTenant = fmt.Errorf("%w: not a demo tenant", errRouteNotFound)

// demoTokenRequest is the body of POST /v1/demo/token.
type demoTokenRequest struct {
	Tenant *string `json:"tenant"`
}

// handleDemoToken serves POST /v1/demo/token, present in demo mode only: a short-lived
// token for a new anonymous user of a demo tenant. A request that carries a valid
// token of an anonymous user of the same tenant gets a fresh token for that same user,
// so that a page open longer than a token's life keeps its conversation. Rate limited
// by the tenant's limit, and refused to pages of origins the tenant does not allow.
func (s *Server) handleDemoToken(w http.ResponseWriter, r *http.Request) {
	raw, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req demoTokenRequest
	if err := unmarshalBody(raw, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Tenant == nil {
		s.writeError(w, r, invalid("Field \"tenant\" is required."))
		return
	}
	t := s.web.demo[tenant.ID(*req.Tenant)]
	if t == nil {
		s.writeError(w, r, errNotDemoTenant)
		return
	}
	if info := infoFrom(r.Context()); info != nil {
		info.tenant = t.ID
	}
	if !s.originAllowed(r, t.ID) {
		s.writeError(w, r, errOriginNotAllowed)
		return
	}
	if err := s.allow(r.Context(), t.ID, ""); err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	user, renewed := s.demoUser(r, t.ID, now)
	token, expires, err := s.tenants.Mint(t.ID, user, s.cfg.Demo.TokenTTL, now)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("mint demo token: %w", err))
		return
	}
	s.log.Debug("demo token", zap.String("request_id", infoFrom(r.Context()).requestID()),
		zap.String("tenant", string(t.ID)), zap.Bool("renewed", renewed))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenJSON{Token: token, ExpiresAt: expires.UTC().Format(time.RFC3339)})
}

// demoUser returns the user of the request's bearer token when it is a valid token of
// an anonymous demo user of id, else a new anonymous user.
func (s *Server) demoUser(r *http.Request, id tenant.ID, now time.Time) (user string, renewed bool) {
	if r.Header.Get("Authorization") != "" {
		p, err := s.verify(r, now)
		if err == nil && p.Tenant == id && strings.HasPrefix(p.User, demoUserPrefix) {
			return p.User, true
		}
	}
	return newDemoUser(), false
}

// newDemoUser returns a random anonymous user id: 100 bits, as "demo-" and 20 letters
// and digits.
func newDemoUser() string {
	var b [20 * 5 / 8]byte
	_, _ = rand.Read(b[:])
	return demoUserPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// demoTenants picks the demo page's tenants: cfg's list in its order, or every tenant
// that can mint tokens. Each must exist and be able to mint.
func demoTenants(cfg DemoConfig, tenants Tenants, all []*tenant.Tenant) ([]*tenant.Tenant, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	if len(cfg.Tenants) == 0 {
		var out []*tenant.Tenant
		for _, t := range all {
			if t.Mints {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, errors.New("demo.enabled: no tenant has an HS256 key to sign demo tokens")
		}
		return out, nil
	}
	out := make([]*tenant.Tenant, 0, len(cfg.Tenants))
	for i, id := range cfg.Tenants {
		t, err := tenants.Get(tenant.ID(id))
		switch {
		case err != nil:
			return nil, fmt.Errorf("demo.tenants[%d]: no tenant %q", i, id)
		case !t.Mints:
			return nil, fmt.Errorf("demo.tenants[%d]: tenant %q has no HS256 key to sign demo tokens", i, id)
		}
		for _, o := range out {
			if o.ID == t.ID {
				return nil, fmt.Errorf("demo.tenants[%d]: %q is listed twice", i, id)
			}
		}
		out = append(out, t)
	}
	return out, nil
}
