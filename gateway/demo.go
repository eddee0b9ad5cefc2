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

// demoAgentPrefix starts the user id of every demo agent; demoAgentName is the name the
// demo agents show to customers. demoAdminPrefix and demoAdminName are the same for the
// demo admins, who edit a demo tenant's knowledge base in the admin console.
const (
	demoAgentPrefix = demoUserPrefix + "agent-"
	demoAgentName   = "Demo agent"
	demoAdminPrefix = demoUserPrefix + "admin-"
	demoAdminName   = "Demo admin"
)

// demoRoles are the roles a demo token may have, each with the prefix of its user ids
// and the name it is minted with. A random demo user id has no "-" after "demo-", so
// no id of one role ever has the prefix of another.
var demoRoles = map[string]struct{ prefix, name string }{
	tenant.RoleUser:  {demoUserPrefix, ""},
	tenant.RoleAgent: {demoAgentPrefix, demoAgentName},
	tenant.RoleAdmin: {demoAdminPrefix, demoAdminName},
}

// errNotDemoTenant is a demo token asked for a tenant that is not on the demo page.
var errNotDemoTenant = fmt.Errorf("%w: not a demo tenant", errRouteNotFound)

// demoTokenRequest is the body of POST /v1/demo/token.
type demoTokenRequest struct {
	Tenant *string `json:"tenant"`
	// Role is "user" (the default), "agent" or "admin".
	Role *string `json:"role"`
}

// handleDemoToken serves POST /v1/demo/token, present in demo mode only: a short-lived
// token for a new anonymous user of a demo tenant, or, with "role":"agent", for a new
// demo agent named "Demo agent", or, with "role":"admin", for a new demo admin named
// "Demo admin", who may edit the demo tenant's knowledge base. A request that carries a valid demo token of the same
// tenant and role gets a fresh token for that same user or agent, so that a page open
// longer than a token's life keeps its conversation. Rate limited by the tenant's limit,
// and refused to pages of origins the tenant does not allow.
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
	role := tenant.RoleUser
	if req.Role != nil {
		if _, ok := demoRoles[*req.Role]; !ok {
			s.writeError(w, r, invalid(fmt.Sprintf("Field \"role\" must be %q, %q or %q.", tenant.RoleUser, tenant.RoleAgent, tenant.RoleAdmin)))
			return
		}
		role = *req.Role
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
	user, renewed := s.demoUser(r, t.ID, role, now)
	token, expires, err := s.tenants.MintRole(t.ID, user, role, demoRoles[role].name, s.cfg.Demo.TokenTTL, now)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("mint demo token: %w", err))
		return
	}
	s.log.Debug("demo token", zap.String("request_id", infoFrom(r.Context()).requestID()),
		zap.String("tenant", string(t.ID)), zap.String("role", role), zap.Bool("renewed", renewed))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenJSON{Token: token, ExpiresAt: expires.UTC().Format(time.RFC3339), Role: role})
}

// demoUser returns the user of the request's bearer token when it is a valid demo
// token of tenant id and role (an anonymous user's, a demo agent's or a demo admin's),
// else a new one.
func (s *Server) demoUser(r *http.Request, id tenant.ID, role string, now time.Time) (user string, renewed bool) {
	prefix := demoRoles[role].prefix
	if r.Header.Get("Authorization") != "" {
		p, err := s.verify(r, now)
		if err == nil && p.Tenant == id && roleOf(p) == role && strings.HasPrefix(p.User, prefix) {
			return p.User, true
		}
	}
	return newDemoUser(prefix), false
}

// newDemoUser returns a random demo user id: 100 bits, as prefix and 20 letters and
// digits.
func newDemoUser(prefix string) string {
	var b [20 * 5 / 8]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
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
