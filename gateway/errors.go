package gateway

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/insights"
	"github.com/fengda-ai/fengda/knowledge"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

// Errors the gateway itself raises; the table in classify maps them with the rest.
var (
	errTooLarge         = errors.New("request body too large")
	errHeaderTooLarge   = errors.New("request header too large")
	errRouteNotFound    = errors.New("route not found")
	errMethodNotAllowed = errors.New("method not allowed")
	// errNotShared is a revocation in force on this replica that could not be shared
	// with the others.
	errNotShared = errors.New("not shared with the other replicas")
	// errUnsupportedMediaType is a body that is not JSON by its Content-Type.
	errUnsupportedMediaType = errors.New("unsupported media type")
	// errForbidden is a valid credential that may not call the route: a token of
	// another role, or a feature the tenant has turned off.
	errForbidden = errors.New("forbidden")
)

// invalidError is a request the gateway refused while decoding or validating it. Its
// reason is our own text, safe to show to the client.
type invalidError struct{ reason string }

func (e *invalidError) Error() string        { return "invalid request: " + e.reason }
func (e *invalidError) Is(target error) bool { return target == dialogue.ErrInvalid }

func invalid(reason string) error { return &invalidError{reason: reason} }

// queueFullRetryAfter is the Retry-After of a queue_full refusal: long enough for the
// replicas to work off part of a full queue.
const queueFullRetryAfter = 5 * time.Second

// statusClientClosed is logged (never sent) for a request whose client left first, as
// nginx does.
const statusClientClosed = 499

// errorClass is one row of the error table.
type errorClass struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // sent as Retry-After when positive, in whole seconds ≥ 1
	internal   bool          // logged, with request id and tenant
}

// classify is the single table mapping an error to a status, a code and a message.
// Order matters: the engine's sentinels are checked before the context errors they may
// wrap.
func classify(err error) errorClass {
	var inv *invalidError
	var rl *ratelimit.LimitedError
	var kbInvalid *knowledge.InvalidError
	switch {
	case errors.As(err, &inv):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: inv.reason}
	case errors.Is(err, dialogue.ErrInvalid):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: "The request is invalid."}
	case errors.Is(err, tenant.ErrNoSigningKey):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: "This tenant's user tokens come from its identity provider; Fengda does not issue them."}
	case errors.Is(err, tenant.ErrInvalidClaim):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: "The token's user, role or name is invalid."}
	case errors.Is(err, tenant.ErrUnauthenticated):
		return errorClass{status: http.StatusUnauthorized, code: "unauthenticated", message: "A valid credential is required."}
	case errors.Is(err, handoff.ErrConflict):
		return errorClass{status: http.StatusConflict, code: "conflict", message: "The conversation is not in a state that allows this: another agent holds it, or it is closed or not yours."}
	case errors.Is(err, handoff.ErrDisabled):
		return errorClass{status: http.StatusForbidden, code: "forbidden", message: "This tenant has turned the handoff to a person off."}
	case errors.Is(err, handoff.ErrInvalid):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: "The message must be non-empty text."}
	case errors.Is(err, handoff.ErrTooLong):
		return errorClass{status: http.StatusRequestEntityTooLarge, code: "too_large", message: "The message is too long."}
	case errors.As(err, &kbInvalid):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: "The knowledge base or entry is invalid; \"errors\" lists every problem."}
	case errors.Is(err, knowledge.ErrNotFound):
		return errorClass{status: http.StatusNotFound, code: "not_found", message: "Not found."}
	case errors.Is(err, knowledge.ErrConflict):
		return errorClass{status: http.StatusConflict, code: "conflict", message: "Other changes to the knowledge base were written at the same time; send it again."}
	case errors.Is(err, knowledge.ErrTooLarge):
		return errorClass{status: http.StatusRequestEntityTooLarge, code: "too_large", message: "The knowledge base is too large."}
	case errors.Is(err, knowledge.ErrUnsupported):
		return errorClass{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "A knowledge base is imported as YAML (application/yaml), JSON (application/json) or CSV (text/csv)."}
	case errors.Is(err, knowledge.ErrUnavailable):
		return errorClass{status: http.StatusServiceUnavailable, code: "unavailable", message: "The knowledge base store is unavailable; retry shortly.", retryAfter: time.Second}
	case errors.Is(err, insights.ErrInvalid):
		return errorClass{status: http.StatusBadRequest, code: "invalid_request", message: "The rating must be \"up\" or \"down\", and the comment at most 1000 characters."}
	case errors.Is(err, insights.ErrNotFound):
		return errorClass{status: http.StatusNotFound, code: "not_found", message: "Not found."}
	case errors.Is(err, insights.ErrUnavailable):
		return errorClass{status: http.StatusServiceUnavailable, code: "unavailable", message: "The service is unavailable; retry shortly.", retryAfter: time.Second}
	case errors.Is(err, errForbidden):
		return errorClass{status: http.StatusForbidden, code: "forbidden", message: "This credential may not call this route."}
	case errors.Is(err, dialogue.ErrNotFound), errors.Is(err, errRouteNotFound):
		return errorClass{status: http.StatusNotFound, code: "not_found", message: "Not found."}
	case errors.Is(err, errOriginNotAllowed):
		return errorClass{status: http.StatusForbidden, code: "origin_not_allowed", message: "Pages of this web origin may not call the API for this tenant (see the tenant's allowed_origins)."}
	case errors.Is(err, errMethodNotAllowed):
		return errorClass{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "This method is not allowed here."}
	case errors.Is(err, errTooLarge):
		return errorClass{status: http.StatusRequestEntityTooLarge, code: "too_large", message: "The request body is too large."}
	case errors.Is(err, errUnsupportedMediaType):
		return errorClass{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", message: "The request body must be JSON (Content-Type: application/json)."}
	case errors.Is(err, errHeaderTooLarge):
		return errorClass{status: http.StatusRequestHeaderFieldsTooLarge, code: "too_large", message: "The request headers are too large."}
	case errors.As(err, &rl):
		return errorClass{status: http.StatusTooManyRequests, code: "rate_limited", message: "Too many requests; retry later.", retryAfter: rl.RetryAfter}
	case errors.Is(err, dialogue.ErrQueueFull):
		return errorClass{status: http.StatusTooManyRequests, code: "queue_full", message: "The service is at capacity and its queue is full; retry later.", retryAfter: queueFullRetryAfter}
	case errors.Is(err, dialogue.ErrOverloaded):
		return errorClass{status: http.StatusServiceUnavailable, code: "overloaded", message: "The service is busy; retry shortly.", retryAfter: time.Second}
	case errors.Is(err, errNotShared):
		return errorClass{status: http.StatusServiceUnavailable, code: "unavailable", message: "The revocation applies on this server but could not yet be shared with the others; send it again.", retryAfter: time.Second}
	case errors.Is(err, dialogue.ErrUnavailable), errors.Is(err, dialogue.ErrDraining):
		return errorClass{status: http.StatusServiceUnavailable, code: "unavailable", message: "The service is unavailable; retry shortly.", retryAfter: 5 * time.Second}
	case errors.Is(err, dialogue.ErrIncomplete):
		return errorClass{status: http.StatusBadGateway, code: "incomplete", message: "The answer was cut short; the part sent is stored with the turn."}
	case errors.Is(err, context.DeadlineExceeded):
		return errorClass{status: http.StatusGatewayTimeout, code: "timeout", message: "The answer took too long."}
	case errors.Is(err, context.Canceled):
		// The client left: nothing useful can be written. writeError only sends this
		// row when the client is, in fact, still there.
		return errorClass{status: http.StatusServiceUnavailable, code: "unavailable", message: "The service is unavailable; retry shortly.", retryAfter: 5 * time.Second}
	default:
		return errorClass{status: http.StatusInternalServerError, code: "internal", message: "Internal error.", internal: true}
	}
}

// errorBody is the JSON of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// retryAfterSeconds renders d as a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// writeError answers r with err's row of the table. A request whose client has gone is
// only marked for the access log; an internal error is logged here, once.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	info := infoFrom(r.Context())
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		if info != nil {
			info.clientGone = true
		}
		return
	}
	c := s.classifyLogged(r, err)
	if c.retryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(c.retryAfter))
	}
	writeErrorJSON(w, c.status, s.errorDetail(r, c))
}

// classifyLogged classifies err and logs it when it is internal: the one place an
// internal error is logged.
func (s *Server) classifyLogged(r *http.Request, err error) errorClass {
	c := classify(err)
	// An internal error is logged on a line of its own below, not on the access line.
	if c.status >= 500 && !c.internal {
		if info := infoFrom(r.Context()); info != nil {
			info.cause = err
		}
	}
	if c.internal {
		info := infoFrom(r.Context())
		s.log.Error("internal error",
			zap.String("request_id", info.requestID()),
			zap.String("tenant", string(info.tenantID())),
			zap.Error(err))
	}
	return c
}

func (s *Server) errorDetail(r *http.Request, c errorClass) errorDetail {
	return errorDetail{Code: c.code, Message: c.message, RequestID: infoFrom(r.Context()).requestID()}
}
