package openai

import (
	"path/filepath"
	"testing"

	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/nlpclient/faq"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// noLeaks checks, once the test's servers and clients are closed, that the test left no
// goroutine behind. Call it first, so that its cleanup runs last.
func noLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// confidentMsg is a question the bank's knowledge base answers confidently.
const confidentMsg = "怎么开立青禾银行的借记卡账户?"

// newTestFAQ returns the FAQ engine of the knowledge base kb/<name>.yaml.
func newTestFAQ(t testing.TB, name string) *faq.FAQ {
	t.Helper()
	kb, err := nlpclient.LoadKB(filepath.Join("..", "..", "kb", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := faq.New(kb, faq.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// served returns f as LLMDeps.FAQ gives an engine: always f.
func served(f FAQ) func() FAQ { return func() FAQ { return f } }
