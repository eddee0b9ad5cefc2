package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestImportDirection keeps the module graph of the design honest: dependencies point
// down only (gateway → dialogue → handoff → session → tenant; dialogue → nlpclient/queue;
// gateway → ratelimit → tenant; the engines below nlpclient are wired by main).
func TestImportDirection(t *testing.T) {
	const module = "github.com/fengda-ai/fengda/"
	// nlpclient imports nothing of ours, tenant only the model client's Config.
	allowed := map[string][]string{
		// The allocation budgets' checks, imported by tests only.
		"internal/allocbudget": {},
		// The configuration loader: YAML, ${NAME} references, FENGDA_* overrides.
		"internal/yamlenv": {},
		// A tenant's engine.llm is the model client's own Config (one definition, no copy).
		"tenant":    {"nlpclient/openai"},
		"nlpclient": {},
		// The root logger, redaction and the tenant log files sit below every package
		// that logs; they need tenant for its IDs only.
		"logging": {"tenant"},
		// The text folding both engines compare by, a leaf.
		"nlpclient/internal/fold": {},
		// The engines: each imports the shared types, never the other engine. The model
		// client reaches the FAQ engine through its own interface (openai.FAQ), so a
		// new retrieval engine can ground it too.
		"nlpclient/faq": {"nlpclient", "nlpclient/internal/fold"},
		// The weights' tuning tool, a command: it reaches the engine only through its
		// exported tuning aids (Options.Weights, Explain).
		"nlpclient/faq/tune": {"nlpclient", "nlpclient/faq"},
		// Stand-ins for the model vendor, for tests.
		"nlpclient/openai/openaitest": {},
		"nlpclient/openai":            {"nlpclient", "nlpclient/internal/fold"},
		"queue":                       {"tenant"},
		// Imported by the tests of queue itself, so it may import nothing of ours.
		"queue/queuetest": {},
		// session masks the passwords of Redis URLs in its errors with logging.RedactURLs.
		"session": {"tenant", "logging"},
		// The rate limits read each tenant's configured limits; the Redis client is
		// given to them, so they need nothing of session.
		"ratelimit": {"tenant"},
		// Human handoff: its state is in the session store, its live events on a Bus
		// (the queue's connection, given by serve.go), so it needs nothing of queue.
		"handoff":  {"session", "tenant"},
		"dialogue": {"session", "nlpclient", "queue", "tenant", "handoff"},
		// The Prometheus metrics implement the observer interfaces the other packages
		// declare; they need only tenant.ID, and nothing imports them but serve.go.
		"metrics": {"tenant"},
		// Not session: the gateway reaches conversations only through the engine, whose
		// API (dialogue.Ref, dialogue.ValidID) is dialogue's own, and the rate limits
		// through its RateLimiter interface (ratelimit's error type maps to 429). It
		// thins its access lines with logging.TenantSampler. The handoff's routes reach
		// the desk through its Handoff interface, with handoff's own names.
		// The tenants' admins edit their knowledge bases through the Knowledge
		// interface, with knowledge's types and errors; customers rate answers through
		// the Feedback interface, with insights' errors.
		"gateway": {"dialogue", "ratelimit", "tenant", "logging", "handoff", "knowledge", "insights"},
		// The records of answered turns and feedback: it reads dialogue's stored turns
		// (session's types), redacts with logging, and is given its JetStream handle by
		// serve.go, so it needs nothing of queue (its tests open one).
		"insights": {"session", "tenant", "logging"},
		// The live knowledge bases: the FAQ engine is built by serve.go (Deps.Serve), and
		// the JetStream handle is given by it, so it needs nothing of queue or faq.
		"knowledge": {"nlpclient", "tenant"},
	}
	for pkg, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("package %s: no Go files (%v)", pkg, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue // tests may wire real neighbours together
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, internal := strings.CutPrefix(path, module)
				if internal && !slices.Contains(ok, dep) {
					t.Errorf("%s imports %s: %s may import only %v", f, dep, pkg, ok)
				}
			}
		}
	}
}
