package faq

import "github.com/fengda-ai/fengda/nlpclient"

// Explanation is what the engine makes of a message: a tuning aid, for fitting and
// sweeping the weights (nlpclient/faq/tune).
type Explanation struct {
	// Ranked are the ids of the best-ranked entries, best first, at most five.
	Ranked []string
	// Features are the confidence model's inputs, in the order of FeatureNames.
	Features [NumFeatures]float64
	// Confidence is the engine's confidence in Ranked[0], unrounded; 0 for a message
	// addressed to the bot itself.
	Confidence float64
}

// Explain ranks req as Answer does and returns what Answer decides from.
func (f *FAQ) Explain(req nlpclient.Request) Explanation {
	r := f.resolve(req)
	x := Explanation{Features: r.feat.vec(), Confidence: r.conf}
	for _, c := range r.cands {
		x.Ranked = append(x.Ranked, f.kb.Entries[c.ent].ID)
	}
	return x
}

// ConfidenceWith returns the confidence the model gives x's features under weights w
// (a Weights.Confidence), as if x were not addressed to the bot.
func (x Explanation) ConfidenceWith(w *[NumFeatures]float64) float64 {
	return confidence(w, x.Features)
}
