package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/fengda-ai/fengda/knowledge"
	"github.com/fengda-ai/fengda/tenant"
)

// Knowledge is the tenants' live knowledge bases as the gateway's admin routes use them
// (*knowledge.Service). Every method is for the caller's own tenant only.
type Knowledge interface {
	// Current returns the tenant's newest version and its base.
	Current(ctx context.Context, t tenant.ID) (knowledge.Version, *knowledge.Base, error)
	// Versions returns the versions kept, newest first.
	Versions(ctx context.Context, t tenant.ID) ([]knowledge.Version, error)
	// PutEntry creates or replaces an entry (an *knowledge.InvalidError if invalid)
	// and returns the new version and the entry stored.
	PutEntry(ctx context.Context, t tenant.ID, e knowledge.Entry, by string) (int, knowledge.Entry, error)
	// DeleteEntry deletes an entry, or returns knowledge.ErrNotFound.
	DeleteEntry(ctx context.Context, t tenant.ID, id, by string) (int, error)
	// Import replaces the whole base with a file of the given Content-Type; a file with
	// errors is an *knowledge.InvalidError and changes nothing; knowledge.ErrUnsupported
	// is a type it does not read, knowledge.ErrTooLarge a base past the limits.
	Import(ctx context.Context, t tenant.ID, contentType string, data []byte, by string) (version, entries int, err error)
	// Rollback writes a new version with version n's content, or returns
	// knowledge.ErrNotFound for a version unknown or pruned.
	Rollback(ctx context.Context, t tenant.ID, n int, by string) (int, error)
}

// kbPathPrefix is the prefix of the knowledge-base routes, whose bodies may be as large
// as a base (Config.KBMaxBodyBytes).
const kbPathPrefix = "/v1/admin/kb"

// kbTimeout bounds one knowledge-base request: a write of a large base puts its object
// and rebuilds this replica's engine.
const kbTimeout = 30 * time.Second

// kbEntryJSON is an entry as the admin API shows it; its lists are never null.
type kbEntryJSON struct {
	ID         string   `json:"id"`
	Question   string   `json:"question"`
	Alternates []string `json:"alternates"`
	Answer     string   `json:"answer"`
	Tags       []string `json:"tags"`
	UpdatedAt  string   `json:"updated_at"` // RFC 3339
}

func toKBEntryJSON(e knowledge.Entry) kbEntryJSON {
	out := kbEntryJSON{ID: e.ID, Question: e.Question, Alternates: e.Alternates, Answer: e.Answer, Tags: e.Tags}
	if out.Alternates == nil {
		out.Alternates = []string{}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if !e.UpdatedAt.IsZero() {
		out.UpdatedAt = e.UpdatedAt.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// kbBaseJSON answers GET /v1/admin/kb.
type kbBaseJSON struct {
	Version int           `json:"version"`
	Entries []kbEntryJSON `json:"entries"`
}

// kbEntryRequest is the body of PUT /v1/admin/kb/entries/{id}. An id, if given, must be
// the path's.
type kbEntryRequest struct {
	ID         *string  `json:"id"`
	Question   string   `json:"question"`
	Alternates []string `json:"alternates"`
	Answer     string   `json:"answer"`
	Tags       []string `json:"tags"`
}

type kbPutJSON struct {
	Version int         `json:"version"`
	Entry   kbEntryJSON `json:"entry"`
}

type kbImportJSON struct {
	Version int `json:"version"`
	Entries int `json:"entries"`
}

type kbVersionJSON struct {
	Version int    `json:"version"`
	At      string `json:"at"`
	By      string `json:"by"`
	Change  string `json:"change"`
}

type kbVersionsJSON struct {
	Versions []kbVersionJSON `json:"versions"`
}

type kbRollbackRequest struct {
	Version *int `json:"version"`
}

type kbRollbackJSON struct {
	Version int `json:"version"`
}

// kbInvalidBody is the error body of a refused base or entry: the usual error, and
// every problem found.
type kbInvalidBody struct {
	Error  errorDetail            `json:"error"`
	Errors []knowledge.FieldError `json:"errors"`
}

// kbExportFormats are the formats of GET /v1/admin/kb/export, by their file extension.
var kbExportFormats = map[string]bool{"yaml": true, "json": true, "csv": true}

// admin returns the caller's tenant and user; the route's requireRole let only admins in.
func admin(r *http.Request) (tenant.ID, string) {
	p, _ := tenant.FromContext(r.Context())
	return p.Tenant, p.User
}

// writeKBError answers with err's row of the table; a refused base or entry lists its
// problems beside the error.
func (s *Server) writeKBError(w http.ResponseWriter, r *http.Request, err error) {
	var inv *knowledge.InvalidError
	if !errors.As(err, &inv) {
		s.writeError(w, r, err)
		return
	}
	c := s.classifyLogged(r, err)
	list := inv.Errors
	if list == nil {
		list = []knowledge.FieldError{}
	}
	writeJSON(w, c.status, kbInvalidBody{Error: s.errorDetail(r, c), Errors: list})
}

// handleKBGet serves GET /v1/admin/kb: the tenant's newest version and every entry.
func (s *Server) handleKBGet(w http.ResponseWriter, r *http.Request) {
	t, _ := admin(r)
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	v, b, err := s.kb.Current(ctx, t)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	out := kbBaseJSON{Version: v.Version, Entries: make([]kbEntryJSON, len(b.Entries))}
	for i, e := range b.Entries {
		out.Entries[i] = toKBEntryJSON(e)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// handleKBEntryPut serves PUT /v1/admin/kb/entries/{id}: creates or replaces an entry.
func (s *Server) handleKBEntryPut(w http.ResponseWriter, r *http.Request) {
	t, by := admin(r)
	id := chi.URLParam(r, "id")
	raw, err := readBody(r, s.cfg.KBMaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req kbEntryRequest
	if err := unmarshalBody(raw, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.ID != nil && *req.ID != id {
		s.writeError(w, r, invalid("The body's \"id\" is not the path's."))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	e := knowledge.Entry{ID: id, Question: req.Question, Alternates: req.Alternates, Answer: req.Answer, Tags: req.Tags}
	n, stored, err := s.kb.PutEntry(ctx, t, e, by)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, kbPutJSON{Version: n, Entry: toKBEntryJSON(stored)})
}

// handleKBEntryDelete serves DELETE /v1/admin/kb/entries/{id}: 204, or 404 when the
// base has no such entry.
func (s *Server) handleKBEntryDelete(w http.ResponseWriter, r *http.Request) {
	t, by := admin(r)
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	if _, err := s.kb.DeleteEntry(ctx, t, chi.URLParam(r, "id"), by); err != nil {
		s.writeKBError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleKBImport serves POST /v1/admin/kb/import: replaces the whole base with a YAML,
// JSON or CSV file, by its Content-Type, at once. A file with errors is 400 with the
// list of them, and the base before keeps serving.
func (s *Server) handleKBImport(w http.ResponseWriter, r *http.Request) {
	t, by := admin(r)
	ct := r.Header.Values("Content-Type")
	if len(ct) != 1 {
		s.writeError(w, r, fmt.Errorf("%w: %d Content-Type headers", knowledge.ErrUnsupported, len(ct)))
		return
	}
	raw, err := readRawBody(nil, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	n, count, err := s.kb.Import(ctx, t, ct[0], raw, by)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, kbImportJSON{Version: n, Entries: count})
}

// handleKBVersions serves GET /v1/admin/kb/versions: the versions kept, newest first.
func (s *Server) handleKBVersions(w http.ResponseWriter, r *http.Request) {
	t, _ := admin(r)
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	vs, err := s.kb.Versions(ctx, t)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	out := kbVersionsJSON{Versions: make([]kbVersionJSON, len(vs))}
	for i, v := range vs {
		out.Versions[i] = kbVersionJSON{Version: v.Version, At: v.At.UTC().Format(time.RFC3339Nano), By: v.By, Change: v.Change}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// handleKBRollback serves POST /v1/admin/kb/rollback: a new version whose content is
// exactly that of {"version":N}; 404 when N is unknown or pruned.
func (s *Server) handleKBRollback(w http.ResponseWriter, r *http.Request) {
	t, by := admin(r)
	raw, err := readBody(r, s.cfg.KBMaxBodyBytes)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req kbRollbackRequest
	if err := unmarshalBody(raw, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Version == nil || *req.Version < 1 {
		s.writeError(w, r, invalid("Give the \"version\" to roll back to, a positive number."))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	n, err := s.kb.Rollback(ctx, t, *req.Version, by)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, kbRollbackJSON{Version: n})
}

// handleKBExport serves GET /v1/admin/kb/export?format=yaml|json|csv (default json): the
// newest version as a file to download, named <tenant>-kb-v<N>.<format>.
func (s *Server) handleKBExport(w http.ResponseWriter, r *http.Request) {
	t, _ := admin(r)
	format := strings.ToLower(r.URL.Query().Get("format"))
	if format == "" {
		format = "json"
	}
	if !kbExportFormats[format] {
		s.writeError(w, r, invalid("The format must be yaml, json or csv."))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), kbTimeout)
	defer cancel()
	v, b, err := s.kb.Current(ctx, t)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	var buf bytes.Buffer
	ctype, err := knowledge.Export(&buf, b, format)
	if err != nil {
		s.writeKBError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-kb-v%d.%s"`, t, v.Version, format))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
