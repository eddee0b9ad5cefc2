package nlpclient

import "context"

// requestIDKey is the context key of WithRequestID.
type requestIDKey struct{}

// WithRequestID returns a context carrying the id of the request a call answers: the
// engines' log lines about the call carry it as request_id. (The tenant is on the
// logger an engine is given.)
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
