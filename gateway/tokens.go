package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// defaultTokenTTL is the lifetime of a token when the request names none.
const defaultTokenTTL = time.Hour

// maxAPIKeyBytes caps the X-API-Key header before the registry compares it.
const maxAPIKeyBytes = 512

// maxUserIDChars caps a user id, in runes.
const maxUserIDChars = 128

// tokenRequest is the body of POST /v1/tokens.
type tokenRequest struct {
	UserID     *string `json:"user_id"`
	TTLSeconds *int64  `json:"ttl_seconds"`
	Role       *string `json:"role"`
	Name       *string `json:"name"`
}

// tokenJSON is the reply of POST /v1/tokens and of the demo token.
type tokenJSON struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	Role      string `json:"role"`
}

// tokenGrant is a validated POST /v1/tokens: whom the token names and for how long.
type tokenGrant struct {
	user, role, name string
	ttl              time.Duration
}

// parseTokenBody decodes and validates the body of POST /v1/tokens.
func parseTokenBody(raw []byte, maxTTL time.Duration) (tokenGrant, error) {
	var req tokenRequest
	if err := unmarshalBody(raw, &req); err != nil {
		return tokenGrant{}, err
	}
	if req.UserID == nil {
		return tokenGrant{}, invalid("Field \"user_id\" is required.")
	}
	if err := checkText("user_id", *req.UserID, maxUserIDChars, false); err != nil {
		return tokenGrant{}, err
	}
	g := tokenGrant{user: *req.UserID, role: tenant.RoleUser, ttl: defaultTokenTTL}
	if req.TTLSeconds != nil {
		maxSeconds := int64(maxTTL / time.Second)
		if *req.TTLSeconds < 1 || *req.TTLSeconds > maxSeconds {
			return tokenGrant{}, invalid(fmt.Sprintf("Field \"ttl_seconds\" must be between 1 and %d.", maxSeconds))
		}
		g.ttl = time.Duration(*req.TTLSeconds) * time.Second
	}
	g.ttl = min(g.ttl, maxTTL)
	if req.Role != nil {
		if !tenant.ValidRole(*req.Role) {
			return tokenGrant{}, invalid(fmt.Sprintf("Field \"role\" must be %q, %q or %q.", tenant.RoleUser, tenant.RoleAgent, tenant.RoleAdmin))
		}
		g.role = *req.Role
	}
	if req.Name != nil {
		if err := checkText("name", *req.Name, tenant.MaxName, false); err != nil {
			return tokenGrant{}, err
		}
		g.name = *req.Name
	}
	return g, nil
}

// handleTokenCreate serves POST /v1/tokens: a tenant's backend, authenticated by its
// X-API-Key, gets a short-lived token for one of its users, agents (role "agent", with
// the display name customers see) or administrators. Rate limited per tenant.
func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	t, raw, err := s.apiKeyRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := parseTokenBody(raw, s.cfg.TokenMaxTTL)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, expires, err := s.tenants.MintRole(t.ID, g.user, g.role, g.name, g.ttl, s.now())
	if err != nil {
		s.writeError(w, r, fmt.Errorf("mint token: %w", err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, tokenJSON{Token: token, ExpiresAt: expires.UTC().Format(time.RFC3339), Role: g.role})
}

// apiKeyRequest authenticates a request of a tenant's backend by its X-API-Key, applies
// the tenant's rate limit and reads the body: the start of every API-key endpoint.
func (s *Server) apiKeyRequest(r *http.Request) (*tenant.Tenant, []byte, error) {
	t, err := s.apiKeyTenant(r)
	if err != nil {
		return nil, nil, err
	}
	if info := infoFrom(r.Context()); info != nil {
		info.tenant = t.ID
	}
	if err := s.allow(r.Context(), t.ID, ""); err != nil {
		return nil, nil, err
	}
	raw, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return nil, nil, err
	}
	return t, raw, nil
}

// apiKeyTenant returns the tenant owning the request's X-API-Key.
func (s *Server) apiKeyTenant(r *http.Request) (*tenant.Tenant, error) {
	key := r.Header.Get("X-API-Key")
	if key == "" || len(key) > maxAPIKeyBytes {
		return nil, fmt.Errorf("%w: missing or oversized api key", tenant.ErrUnauthenticated)
	}
	t, err := s.tenants.ByAPIKey(key)
	if errors.Is(err, tenant.ErrUnknown) {
		return nil, fmt.Errorf("%w: unknown api key", tenant.ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("look up api key: %w", err)
	}
	return t, nil
}
