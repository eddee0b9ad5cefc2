package gateway

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/fengda-ai/fengda/tenant"
)

// Feedback takes the customers' ratings of answers (*insights.Recorder).
type Feedback interface {
	// Feedback records user's rating ("up" or "down") of turn turnID, with an optional
	// comment, replacing an earlier one. It returns insights.ErrInvalid, ErrNotFound
	// (another user's turn, another tenant's, or none: it waits up to a second for a
	// turn answered moments ago) or ErrUnavailable.
	Feedback(ctx context.Context, t tenant.ID, user, turnID, rating, comment string) error
}

// feedbackRequest is the body of POST /v1/turns/{turn_id}/feedback.
type feedbackRequest struct {
	Rating  string `json:"rating"`
	Comment string `json:"comment"`
}

// handleFeedback serves POST /v1/turns/{turn_id}/feedback: the turn's own user rates its
// answer up or down, with an optional comment; a second rating replaces the first. 204.
func (s *Server) handleFeedback(w http.ResponseWriter, r *http.Request) {
	p, _ := tenant.FromContext(r.Context())
	raw, err := readBody(r, s.cfg.MaxBodyBytes)
	var req feedbackRequest
	if err == nil {
		err = unmarshalBody(raw, &req)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.feedback.Feedback(ctx, p.Tenant, p.User, chi.URLParam(r, "turn_id"), req.Rating, req.Comment); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
