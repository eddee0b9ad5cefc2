package openaitest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestStandIn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, ok := ReadRequest(w, r)
		if !ok {
			return
		}
		if !req.Stream {
			WriteAnswer(w, "echo: "+req.Last())
			return
		}
		st := NewStream(w)
		_ = st.Delta("a")
		_ = st.Delta("b")
		st.Done()
	}))
	defer srv.Close()
	post := func(path, body string) (int, string) {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`); code != 200 || !strings.Contains(body, `"content":"echo: hi"`) {
		t.Errorf("JSON answer: %d %s", code, body)
	}
	code, body := post("/v1/chat/completions", `{"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if code != 200 || strings.Count(body, "data: ") != 3 || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("stream: %d %q", code, body)
	}
	if code, _ := post("/v1/other", `{}`); code != http.StatusBadRequest {
		t.Errorf("another path: %d, want 400", code)
	}
}
