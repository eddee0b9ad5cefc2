package faq

import "github.com/fengda-ai/fengda/nlpclient"

// Ranking weights. Those of Weights (answer, unigram, second, k1, b, history, tag) were
// each chosen from a sweep of top-1 accuracy on the self-check and the evaluation sets
// (go run ./nlpclient/faq/tune sweep NAME); the others are set by hand.
const (
	// answerWeight scales the answer text's BM25 score: it helps recall, but a long
	// answer mentions many topics and would otherwise attract wrong matches.
	answerWeight = 0.5
	// unigramWeight is a single CJK character's weight relative to a bigram or word.
	unigramWeight = 0.8
	// secondPhrasingWeight adds a share of an entry's second-best phrasing to its best:
	// an entry several of whose phrasings match is more likely the one meant. The sweep
	// found no gain, so it is off.
	secondPhrasingWeight = 0.0
	// bm25K1 and bm25B are the usual BM25 parameters: phrasings are short and of similar
	// length, so length normalisation matters little either way.
	bm25K1 = 1.2
	bm25B  = 0.75
	// historyWeight scales the previous user turn's terms in a follow-up query.
	historyWeight = 0.35
	// tagBoost favours, in a follow-up, entries sharing a tag with the previous answer.
	tagBoost = 0.15
	// repeatPenalty lowers the entry just answered: a follow-up rarely asks it again.
	repeatPenalty = 0.1
	// followUpSlack lowers the confidence a follow-up needs when its best entry shares a
	// tag with the entry answered before.
	followUpSlack = 0.15
	// correctedWeight is the weight of a word found by typo correction.
	correctedWeight = 0.8
	// numberWeight is the weight of a word of digits: it says little about the topic.
	numberWeight = 0.3
	// suggestRatio: a suggestion must score at least this share of the best entry.
	suggestRatio = 0.35
	// maxSuggestions is how many questions a clarify answer offers.
	maxSuggestions = 3
	// plausibleCoverage: below this share of the query's weight matched, nothing is
	// suggested, only a request to rephrase.
	plausibleCoverage = 0.2
)

// NumFeatures is the length of the confidence model's feature vector.
const NumFeatures = 10

// FeatureNames returns the names of the confidence model's features, in the order of
// Explanation.Features and Weights.Confidence.
func FeatureNames() [NumFeatures]string {
	return [...]string{"bias", "score", "coverage", "margin", "unseen", "recall", "missed", "length", "gap", "foreign"}
}

// Weights are the engine's tunable weights. An engine uses DefaultWeights; other
// values, through Options.Weights, are a tuning aid (nlpclient/faq/tune).
type Weights struct {
	Answer         float64 // scales the answer text's BM25 score
	Unigram        float64 // a CJK character's weight relative to a bigram or word
	SecondPhrasing float64 // share of an entry's second-best phrasing added to its best
	K1, B          float64 // BM25's term saturation and length normalisation
	History        float64 // scales the previous user turn's terms in a follow-up
	TagBoost       float64 // favours, in a follow-up, entries sharing the previous answer's tag
	// Confidence weighs the features of the logistic confidence model.
	Confidence [NumFeatures]float64
}

// DefaultWeights returns the shipped weights for a knowledge base in lang (zh or en).
//
// The confidence weights are one set per language, since Chinese n-grams and English
// words behave differently. They were fitted by logistic regression (tune fit) on each
// language's self-check and on testdata/eval-synth; testdata/eval-dev is held out. The
// foreign weight is set by hand, and strongly: too few questions name another company
// to fit it, and such a question is about that company.
func DefaultWeights(lang string) Weights {
	w := Weights{
		Answer: answerWeight, Unigram: unigramWeight, SecondPhrasing: secondPhrasingWeight,
		K1: bm25K1, B: bm25B, History: historyWeight, TagBoost: tagBoost,
	}
	switch lang {
	case nlpclient.LangZH:
		w.Confidence = [NumFeatures]float64{-1.35, 0.88, -0.30, 3.03, -1.02, 0.04, -3.77, 3.70, 1.67, -3}
	case nlpclient.LangEN:
		w.Confidence = [NumFeatures]float64{-2.20, 0.44, 0.62, 0.73, -0.36, 1.28, -1.37, 4.29, 3.73, -3}
	}
	return w
}

// kindWeight is a query term's weight by kind: a single Chinese character says less
// than a word or a pair of characters; a number says little about the topic.
func (w *Weights) kindWeight(k tokenKind, text string) float64 {
	switch k {
	case kindUnigram:
		return w.Unigram
	case kindWord:
		if isNumber(text) {
			return numberWeight
		}
	}
	return 1
}

func isNumber(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
