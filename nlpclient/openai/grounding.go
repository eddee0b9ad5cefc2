package openai

import (
	"context"

	"github.com/fengda-ai/fengda/nlpclient"
)

// FAQ is what a model client needs of the tenant's FAQ engine (*faq.FAQ is one): the
// reference material of a prompt, the answer when the model gives none, and the
// knowledge base's texts, which the model may quote past the prompt leak guard.
type FAQ interface {
	// References returns the entries that best match req, best first, at most k of
	// them, and the confidence of the best match, in [0, 1].
	References(req nlpclient.Request, k int) ([]nlpclient.Reference, float64)
	// Answer answers req from the knowledge base alone. It returns an error only when
	// ctx is done.
	Answer(ctx context.Context, req nlpclient.Request) (nlpclient.Answer, error)
	// KB returns the knowledge base answered from, which the caller must not modify.
	KB() *nlpclient.KB
}
