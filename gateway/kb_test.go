package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/fengda-ai/fengda/knowledge"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/tenant"
)

const (
	tokenAcmeAdmin = "minted-admin.acme.ops-1"
	tokenBankAdmin = "minted-admin.bank.ops-2"
)

// newKBServer builds a server whose knowledge routes go to a real knowledge service on
// the memory store, tenants acme and bank seeded with an entry each.
func newKBServer(t *testing.T, cfg Config) (*Server, *knowledge.Service) {
	t.Helper()
	store, err := knowledge.NewMemoryStore(knowledge.DefaultVersions)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := knowledge.New(knowledge.Config{}, knowledge.Deps{
		Store: store,
		Seed: func(id tenant.ID) (*knowledge.Base, string, error) {
			return &knowledge.Base{Language: "en", Entries: []knowledge.Entry{
				{ID: "hours", Question: "When are you open?", Answer: "9 to 5, " + string(id) + "."},
			}}, "kb/" + string(id) + ".yaml", nil
		},
		Serve: func(tenant.ID, *knowledge.Base) error { return nil },
	}, "acme", "bank")
	if err != nil {
		t.Fatal(err)
	}
	if err := kb.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	tenants := &fakeTenants{}
	deps := testDeps(t, &fakeDialogue{}, tenants, ratelimit.Config{}, nil, nil)
	deps.Knowledge = kb
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s, kb
}

func TestKBRoutesRequireAdminRole(t *testing.T) {
	s, _ := newKBServer(t, testConfig())
	routes := []request{
		{method: "GET", path: "/v1/admin/kb"},
		{method: "PUT", path: "/v1/admin/kb/entries/x", body: `{"question":"q","answer":"a"}`},
		{method: "DELETE", path: "/v1/admin/kb/entries/hours"},
		{method: "POST", path: "/v1/admin/kb/import", body: `{"entries":[]}`},
		{method: "GET", path: "/v1/admin/kb/versions"},
		{method: "POST", path: "/v1/admin/kb/rollback", body: `{"version":1}`},
		{method: "GET", path: "/v1/admin/kb/export"},
	}
	for _, route := range routes {
		for _, token := range []string{tokenAcme, "minted.acme.u9", tokenAcmeAgent} {
			req := route
			req.header = bearer(token)
			w := do(t, s.Handler(), req)
			if w.Code != http.StatusForbidden || errorOf(t, w.Body.Bytes()).Code != "forbidden" {
				t.Errorf("%s %s with %s: %d %s, want 403 forbidden", route.method, route.path, token, w.Code, w.Body)
			}
		}
		req := route
		w := do(t, s.Handler(), req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", route.method, route.path, w.Code)
		}
	}
	w := do(t, s.Handler(), request{method: "GET", path: "/v1/admin/kb", header: bearer(tokenAcmeAdmin)})
	if w.Code != http.StatusOK {
		t.Fatalf("admin GET: %d %s", w.Code, w.Body)
	}
}

func TestKBHandlers(t *testing.T) {
	s, _ := newKBServer(t, testConfig())
	h := s.Handler()
	admin := bearer(tokenAcmeAdmin)

	t.Run("get shows the seeded base, lists never null", func(t *testing.T) {
		w := do(t, h, request{method: "GET", path: "/v1/admin/kb", header: admin})
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%d %s: %v", w.Code, w.Body, err)
		}
		entries := got["entries"].([]any)
		e := entries[0].(map[string]any)
		if got["version"] != 1.0 || len(entries) != 1 || e["id"] != "hours" || e["alternates"] == nil || e["tags"] == nil || e["updated_at"] == "" {
			t.Errorf("GET /v1/admin/kb: %s", w.Body)
		}
	})

	t.Run("put creates and replaces", func(t *testing.T) {
		w := do(t, h, request{method: "PUT", path: "/v1/admin/kb/entries/card-lost", header: admin,
			body: `{"question":"I lost my card","alternates":["card gone"],"answer":"Call us.","tags":["cards"]}`})
		var out struct {
			Version int         `json:"version"`
			Entry   kbEntryJSON `json:"entry"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 {
			t.Fatalf("PUT: %d %s", w.Code, w.Body)
		}
		if out.Version != 2 || out.Entry.ID != "card-lost" || out.Entry.Answer != "Call us." || out.Entry.Alternates[0] != "card gone" {
			t.Errorf("PUT: %s", w.Body)
		}
	})

	t.Run("invalid entry is 400 with the errors", func(t *testing.T) {
		w := do(t, h, request{method: "PUT", path: "/v1/admin/kb/entries/x", header: admin, body: `{"question":"","answer":""}`})
		var out struct {
			Error  errorDetail            `json:"error"`
			Errors []knowledge.FieldError `json:"errors"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 400 || out.Error.Code != "invalid_request" || len(out.Errors) == 0 {
			t.Errorf("invalid PUT: %d %s", w.Code, w.Body)
		}
		w = do(t, h, request{method: "PUT", path: "/v1/admin/kb/entries/x", header: admin, body: `{"question":"q","answer":"a","colour":"red"}`})
		if w.Code != 400 {
			t.Errorf("PUT with an unknown field: %d %s", w.Code, w.Body)
		}
	})

	t.Run("delete: 204, then 404", func(t *testing.T) {
		if w := do(t, h, request{method: "DELETE", path: "/v1/admin/kb/entries/card-lost", header: admin}); w.Code != 204 {
			t.Errorf("DELETE: %d %s", w.Code, w.Body)
		}
		w := do(t, h, request{method: "DELETE", path: "/v1/admin/kb/entries/card-lost", header: admin})
		if w.Code != 404 || errorOf(t, w.Body.Bytes()).Code != "not_found" {
			t.Errorf("DELETE again: %d %s", w.Code, w.Body)
		}
	})

	t.Run("another tenant's entries are not found", func(t *testing.T) {
		do(t, h, request{method: "PUT", path: "/v1/admin/kb/entries/acme-only", header: admin, body: `{"question":"Secret?","answer":"canary-acme"}`})
		w := do(t, h, request{method: "DELETE", path: "/v1/admin/kb/entries/acme-only", header: bearer(tokenBankAdmin)})
		if w.Code != 404 {
			t.Errorf("bank deleting acme's entry: %d", w.Code)
		}
		for _, path := range []string{"/v1/admin/kb", "/v1/admin/kb/versions", "/v1/admin/kb/export"} {
			w := do(t, h, request{method: "GET", path: path, header: bearer(tokenBankAdmin)})
			if w.Code != 200 || strings.Contains(w.Body.String(), "canary-acme") || strings.Contains(w.Body.String(), "acme-only") {
				t.Errorf("bank's %s: %d %s", path, w.Code, w.Body)
			}
		}
	})

	t.Run("import: 415 for another type, 400 for a bad file, 200", func(t *testing.T) {
		hdr := map[string]string{"Authorization": "Bearer " + tokenAcmeAdmin, "Content-Type": "application/x-foo"}
		w := do(t, h, request{method: "POST", path: "/v1/admin/kb/import", header: hdr, body: "x"})
		if w.Code != 415 || errorOf(t, w.Body.Bytes()).Code != "unsupported_media_type" {
			t.Errorf("import of another type: %d %s", w.Code, w.Body)
		}
		w = do(t, h, request{method: "POST", path: "/v1/admin/kb/import", header: admin, body: `{"entries":[{"id":"a","question":"","answer":"x"}]}`})
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"errors":[`) {
			t.Errorf("a bad import: %d %s", w.Code, w.Body)
		}
		w = do(t, h, request{method: "POST", path: "/v1/admin/kb/import", header: admin,
			body: `{"entries":[{"id":"a","question":"Q a?","answer":"A a."},{"id":"b","question":"Q b?","answer":"A b."}]}`})
		var out kbImportJSON
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 || out.Entries != 2 {
			t.Errorf("import: %d %s", w.Code, w.Body)
		}
	})

	t.Run("versions, rollback, export", func(t *testing.T) {
		w := do(t, h, request{method: "GET", path: "/v1/admin/kb/versions", header: admin})
		var vs kbVersionsJSON
		if err := json.Unmarshal(w.Body.Bytes(), &vs); err != nil || len(vs.Versions) < 2 {
			t.Fatalf("versions: %d %s", w.Code, w.Body)
		}
		if v := vs.Versions[0]; !strings.HasPrefix(v.Change, "import 2 entries") || v.By != "ops-1" {
			t.Errorf("newest version %+v", v)
		}
		if last := vs.Versions[len(vs.Versions)-1]; last.Version != 1 || last.Change != "seed from kb/acme.yaml" {
			t.Errorf("oldest version %+v", last)
		}
		w = do(t, h, request{method: "POST", path: "/v1/admin/kb/rollback", header: admin, body: `{"version":1}`})
		var rb kbRollbackJSON
		if err := json.Unmarshal(w.Body.Bytes(), &rb); err != nil || w.Code != 200 || rb.Version != vs.Versions[0].Version+1 {
			t.Errorf("rollback: %d %s", w.Code, w.Body)
		}
		if w := do(t, h, request{method: "POST", path: "/v1/admin/kb/rollback", header: admin, body: `{"version":999}`}); w.Code != 404 {
			t.Errorf("rollback to an unknown version: %d %s", w.Code, w.Body)
		}
		w = do(t, h, request{method: "GET", path: "/v1/admin/kb/export", header: admin})
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") ||
			w.Header().Get("Content-Disposition") != `attachment; filename="acme-kb-v`+itoa(rb.Version)+`.json"` {
			t.Errorf("export: %d %v", w.Code, w.Header())
		}
		if !strings.Contains(w.Body.String(), "9 to 5, acme.") {
			t.Errorf("export after the rollback lacks the seeded answer: %s", w.Body)
		}
		if w := do(t, h, request{method: "GET", path: "/v1/admin/kb/export?format=pdf", header: admin}); w.Code != 400 {
			t.Errorf("export as pdf: %d", w.Code)
		}
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// A body past the base limit is 413 too_large; the customer API keeps its own limit.
func TestKBBodyLimit(t *testing.T) {
	s, _ := newKBServer(t, testConfig(func(c *Config) { c.KBMaxBodyBytes = 64 << 10 }))
	big := `{"entries":[{"id":"a","question":"q","answer":"` + strings.Repeat("x", 70<<10) + `"}]}`
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/admin/kb/import", header: bearer(tokenAcmeAdmin), body: big})
	if w.Code != 413 || errorOf(t, w.Body.Bytes()).Code != "too_large" {
		t.Errorf("import over the limit: %d %s", w.Code, w.Body)
	}
	mid := `{"question":"q","answer":"` + strings.Repeat("x", 20<<10) + `"}`
	w = do(t, s.Handler(), request{method: "PUT", path: "/v1/admin/kb/entries/a", header: bearer(tokenAcmeAdmin), body: mid})
	if w.Code == 413 {
		t.Errorf("a 20 KiB entry under the base limit: 413")
	}
	w = do(t, s.Handler(), request{method: "POST", path: "/v1/chat", header: bearer(tokenAcme), body: `{"message":"` + strings.Repeat("x", 20<<10) + `"}`})
	if w.Code != 413 {
		t.Errorf("a 20 KiB chat body: %d, want 413", w.Code)
	}
}

// A YAML file imports by its Content-Type.
func TestKBImportYAML(t *testing.T) {
	yaml := "language: en\nentries:\n  - id: a\n    question: Q a?\n    answer: A a.\n"
	s, _ := newKBServer(t, testConfig())
	hdr := map[string]string{"Authorization": "Bearer " + tokenAcmeAdmin, "Content-Type": "application/yaml"}
	w := do(t, s.Handler(), request{method: "POST", path: "/v1/admin/kb/import", header: hdr, body: yaml})
	var out kbImportJSON
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 || out.Entries != 1 {
		t.Errorf("YAML import: %d %s", w.Code, w.Body)
	}
}
