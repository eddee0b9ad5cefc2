package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// revocationRequest is the body of POST /v1/admin/revocations: exactly one of jti and
// user_id.
type revocationRequest struct {
	JTI    *string `json:"jti"`
	UserID *string `json:"user_id"`
}

// revocationJSON answers a revocation: what was revoked, and for a user, the cut.
type revocationJSON struct {
	Revoked      string `json:"revoked"` // "token" or "user"
	JTI          string `json:"jti,omitempty"`
	UserID       string `json:"user_id,omitempty"`
	IssuedBefore string `json:"issued_before,omitempty"` // RFC 3339: tokens issued up to this second are refused
}

// parseRevocationBody decodes and validates the body of POST /v1/admin/revocations.
func parseRevocationBody(raw []byte) (revocationRequest, error) {
	var req revocationRequest
	if err := unmarshalBody(raw, &req); err != nil {
		return req, err
	}
	if (req.JTI == nil) == (req.UserID == nil) {
		return req, invalid("Give exactly one of \"jti\" (one token) and \"user_id\" (every token of the user issued until now).")
	}
	if req.JTI != nil {
		if err := checkText("jti", *req.JTI, tenant.MaxTokenID, false); err != nil {
			return req, err
		}
	}
	if req.UserID != nil {
		if err := checkText("user_id", *req.UserID, maxUserIDChars, false); err != nil {
			return req, err
		}
	}
	return req, nil
}

// handleRevocationCreate serves POST /v1/admin/revocations: a tenant's backend,
// authenticated by its X-API-Key, revokes one of its users' tokens by jti, or every
// token of one of its users issued until now. Every replica refuses them within a
// second. It is idempotent: sending it again is harmless.
func (s *Server) handleRevocationCreate(w http.ResponseWriter, r *http.Request) {
	t, raw, err := s.apiKeyRequest(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req, err := parseRevocationBody(raw)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	now := s.now()
	rv := tenant.Revocation{Tenant: t.ID}
	out := revocationJSON{}
	if req.JTI != nil {
		rv.TokenID, out.Revoked, out.JTI = *req.JTI, "token", *req.JTI
	} else {
		rv.User, rv.Before = *req.UserID, now
		out.Revoked, out.UserID = "user", *req.UserID
		out.IssuedBefore = now.UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	if err := s.tenants.Revoke(r.Context(), rv, now); err != nil {
		if errors.Is(err, tenant.ErrInvalidRevocation) {
			s.writeError(w, r, invalid("The token id or user id cannot be revoked: it is malformed."))
			return
		}
		// Revoked on this replica, not yet on the others: the caller retries.
		s.writeError(w, r, fmt.Errorf("%w: %w", errNotShared, err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}
