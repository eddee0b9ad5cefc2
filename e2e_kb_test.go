package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/queue/queuetest"
)

// The live knowledge base, end to end: a tenant's admin edits it over HTTP, customers
// get the new answers at once, on every replica, across restarts; the configured file
// seeds it once.

// bankQuestion is an entry of kb/bank-zh.yaml, asked word for word.
const (
	bankEntry    = "account-open"
	bankQuestion = "怎么开立青禾银行的借记卡账户?"
)

// adminTokenFor exchanges a tenant's API key for an admin token.
func adminTokenFor(t *testing.T, base, apiKey, user string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/tokens", strings.NewReader(fmt.Sprintf(`{"user_id":%q,"role":"admin","ttl_seconds":600}`, user)))
	req.Header.Set("X-API-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("POST /v1/tokens (admin): status %d, err %v", resp.StatusCode, err)
	}
	return out.Token
}

// kbResponse is a raw response of the admin API.
type kbResponse struct {
	status int
	header http.Header
	body   []byte
}

// kbDo sends a request of the admin API with a body of the given Content-Type.
func kbDo(t *testing.T, method, url, token, contentType, body string) kbResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return kbResponse{status: resp.StatusCode, header: resp.Header, body: data}
}

// putEntry replaces an entry through the admin API and returns the new version.
func putEntry(t *testing.T, base, token, id, question, answer string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"question": question, "answer": answer, "tags": []string{"live"}})
	r := kbDo(t, "PUT", base+"/v1/admin/kb/entries/"+id, token, "application/json", string(body))
	var out struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || r.status != http.StatusOK || out.Version < 1 {
		t.Fatalf("PUT entry %s: %d %s", id, r.status, r.body)
	}
	return out.Version
}

// askAnswer asks one question as a customer and returns the reply.
func askAnswer(t *testing.T, base, token, question string) chatReply {
	t.Helper()
	var r chatReply
	resp := client{t, base, token}.do("POST", "/v1/chat", map[string]string{"message": question}, &r)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/chat: %d", resp.StatusCode)
	}
	return r
}

// wantAnswer fails unless the reply is answer, from the FAQ entry id.
func wantAnswer(t *testing.T, what string, r chatReply, id, answer string) {
	t.Helper()
	if r.Answer != answer || r.Source != "faq" || citedID(r) != id {
		t.Errorf("%s: %s %s %q, want faq %s %q", what, r.Source, citedID(r), r.Answer, id, answer)
	}
}

func TestKBLiveEditsOneProcess(t *testing.T) {
	env := map[string]string{"FENGDA_QUEUE_DATA_DIR": t.TempDir(), "FENGDA_RATELIMIT_ENABLED": "false"}
	p := startProgram(t, env, nil, nil)
	admin := adminTokenFor(t, p.base, bankAPIKey, "ops")
	user := tokenFor(t, p.base, bankAPIKey, "u1")

	seeded := askAnswer(t, p.base, user, bankQuestion)
	if citedID(seeded) != bankEntry {
		t.Fatalf("before any edit: %+v, want entry %s", seeded, bankEntry)
	}

	// An admin's PUT answers the next customer.
	const first = "请携带身份证到任一网点办理(第一版 canary-live-1)。"
	v1 := putEntry(t, p.base, admin, bankEntry, bankQuestion, first)
	wantAnswer(t, "after the PUT", askAnswer(t, p.base, user, bankQuestion), bankEntry, first)

	// A file with errors changes nothing: 400 with every problem, the old base serves.
	bad := kbDo(t, "POST", p.base+"/v1/admin/kb/import", admin, "application/json",
		`{"entries":[{"id":"a","question":"","answer":"x"},{"id":"b","question":"q","answer":""}]}`)
	var badBody struct {
		Error  struct{ Code string } `json:"error"`
		Errors []map[string]any      `json:"errors"`
	}
	if err := json.Unmarshal(bad.body, &badBody); err != nil || bad.status != http.StatusBadRequest ||
		badBody.Error.Code != "invalid_request" || len(badBody.Errors) < 2 {
		t.Errorf("a bad import: %d %s, want 400 listing both problems", bad.status, bad.body)
	}
	wantAnswer(t, "after the bad import", askAnswer(t, p.base, user, bankQuestion), bankEntry, first)

	// Another edit, then a rollback restores the exact earlier answer.
	const second = "第二版答案 canary-live-2。"
	putEntry(t, p.base, admin, bankEntry, bankQuestion, second)
	wantAnswer(t, "after the second PUT", askAnswer(t, p.base, user, bankQuestion), bankEntry, second)
	rb := kbDo(t, "POST", p.base+"/v1/admin/kb/rollback", admin, "application/json", fmt.Sprintf(`{"version":%d}`, v1))
	if rb.status != http.StatusOK {
		t.Fatalf("rollback: %d %s", rb.status, rb.body)
	}
	wantAnswer(t, "after the rollback", askAnswer(t, p.base, user, bankQuestion), bankEntry, first)

	vs := kbDo(t, "GET", p.base+"/v1/admin/kb/versions", admin, "", "")
	var versions struct {
		Versions []struct {
			Version int    `json:"version"`
			By      string `json:"by"`
			Change  string `json:"change"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(vs.body, &versions); err != nil || len(versions.Versions) != 4 {
		t.Fatalf("versions: %d %s", vs.status, vs.body)
	}
	var changes []string
	for _, v := range versions.Versions {
		changes = append(changes, v.By+": "+v.Change)
	}
	want := []string{"ops: rollback to 2", "ops: put entry " + bankEntry, "ops: put entry " + bankEntry, "fengda: seed from kb/bank-zh.yaml"}
	if strings.Join(changes, "|") != strings.Join(want, "|") {
		t.Errorf("versions %q, want %q", changes, want)
	}

	// A restart on the same data keeps the live base, not the file's.
	if err, _ := p.stop(); err != nil {
		t.Fatal(err)
	}
	p = startProgram(t, env, nil, nil)
	user = tokenFor(t, p.base, bankAPIKey, "u1")
	wantAnswer(t, "after a restart", askAnswer(t, p.base, user, bankQuestion), bankEntry, first)

	// The export is the version served, as a file to download.
	admin = adminTokenFor(t, p.base, bankAPIKey, "ops")
	ex := kbDo(t, "GET", p.base+"/v1/admin/kb/export?format=json", admin, "", "")
	if ex.status != http.StatusOK || ex.header.Get("Content-Disposition") != `attachment; filename="qinghe-bank-kb-v4.json"` ||
		!strings.Contains(string(ex.body), "canary-live-1") {
		t.Errorf("export: %d %v", ex.status, ex.header)
	}
}

// The configured file seeds the base once: neither the reload signal nor a restart
// reads it again over the live base.
func TestKnowledgeBaseFileSeedsOnce(t *testing.T) {
	dir := t.TempDir()
	kbPath := filepath.Join(dir, "shop.yaml")
	writeKB := func(answer string) {
		t.Helper()
		body := `tenant: "northwind-shop"
language: "en"
version: 1
entries:
  - id: "gift-wrap"
    question: "Do you offer gift wrapping?"
    alternates: ["can you wrap my order as a gift"]
    answer: "` + answer + `"
  - id: "store-hours"
    question: "What are your store hours?"
    answer: "10 am to 8 pm."
`
		if err := os.WriteFile(kbPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKB("Yes, for 5 dollars.")
	cfg := strings.Replace(string(defaultConfigYAML), "kb: kb/shop-en.yaml", "kb: "+kbPath, 1)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FENGDA_QUEUE_DATA_DIR": filepath.Join(dir, "js"), "FENGDA_RATELIMIT_ENABLED": "false"}
	reload := make(chan os.Signal, 1)
	p := startProgram(t, env, []string{"-config", cfgPath}, reload)
	user := tokenFor(t, p.base, shopAPIKey, "u1")
	const q = "Do you offer gift wrapping?"
	wantAnswer(t, "seeded from the file", askAnswer(t, p.base, user, q), "gift-wrap", "Yes, for 5 dollars.")

	admin := adminTokenFor(t, p.base, shopAPIKey, "ops")
	putEntry(t, p.base, admin, "gift-wrap", q, "Yes, free since today.")
	writeKB("Yes, for 9 dollars.")
	reload <- syscall.SIGHUP
	time.Sleep(200 * time.Millisecond) // the signal is handled, or not, by now
	wantAnswer(t, "after the signal", askAnswer(t, p.base, user, q), "gift-wrap", "Yes, free since today.")

	if err, _ := p.stop(); err != nil {
		t.Fatal(err)
	}
	p = startProgram(t, env, []string{"-config", cfgPath}, nil)
	user = tokenFor(t, p.base, shopAPIKey, "u1")
	wantAnswer(t, "after a restart", askAnswer(t, p.base, user, q), "gift-wrap", "Yes, free since today.")
}

// Two processes share the machine's NATS: a change on one is answered by the other
// within 2 seconds, and one tenant's admin sees nothing of another's.
func TestKBTwoProcesses(t *testing.T) {
	env := map[string]string{"FENGDA_RATELIMIT_ENABLED": "false"}
	for k, v := range queuetest.Backends[1].Place(t).Env() {
		env[k] = v
	}
	a := testServer(t, env)
	b := testServer(t, env)
	adminA := adminTokenFor(t, a, bankAPIKey, "ops")
	userB := tokenFor(t, b, bankAPIKey, "u1")

	const canary = "两进程之间的新答案 canary-bank-7f3a。"
	start := time.Now()
	putEntry(t, a, adminA, bankEntry, bankQuestion, canary)
	for {
		r := askAnswer(t, b, userB, bankQuestion)
		if r.Answer == canary {
			wantAnswer(t, "on the other process", r, bankEntry, canary)
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("the other process still answers %q 2s after the PUT", r.Answer)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Tenant isolation: the shop's admin and customers see none of the bank's base.
	adminShop := adminTokenFor(t, b, shopAPIKey, "shop-ops")
	for _, path := range []string{"/v1/admin/kb", "/v1/admin/kb/versions", "/v1/admin/kb/export", "/v1/admin/kb/export?format=json"} {
		r := kbDo(t, "GET", b+path, adminShop, "", "")
		if r.status != http.StatusOK || strings.Contains(string(r.body), "canary-bank") || strings.Contains(string(r.body), bankEntry) {
			t.Errorf("the shop's %s: %d, shows the bank's base: %.200s", path, r.status, r.body)
		}
	}
	if r := kbDo(t, "DELETE", b+"/v1/admin/kb/entries/"+bankEntry, adminShop, "", ""); r.status != http.StatusNotFound {
		t.Errorf("the shop deleting the bank's entry: %d, want 404", r.status)
	}
	userShop := tokenFor(t, a, shopAPIKey, "s1")
	for _, base := range []string{a, b} {
		if r := askAnswer(t, base, userShop, bankQuestion); strings.Contains(r.Answer, "canary-bank") {
			t.Errorf("a shop customer got the bank's answer: %q", r.Answer)
		}
	}
	// The bank's own admin, on the other process, sees the change.
	r := kbDo(t, "GET", b+"/v1/admin/kb/export", adminTokenFor(t, b, bankAPIKey, "ops"), "", "")
	if !strings.Contains(string(r.body), "canary-bank") {
		t.Errorf("the bank's export on the other process lacks the change: %d", r.status)
	}
}
