package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/fengda-ai/fengda/dialogue"
)

// FuzzChatBody feeds arbitrary bodies to the chat decoder and to the whole handler: the
// decoder never panics and lets through only valid input, and no body gets a 5xx.
func FuzzChatBody(f *testing.F) {
	for _, seed := range []string{
		`{"message":"hi"}`,
		`{"message":"营业时间?","session_id":"sess-0001","client_msg_id":"m-1"}`,
		`{"message":"a\u0000b"}`,
		`{"message":"` + strings.Repeat("中", 2001) + `"}`,
		`{"message":"hi"} trailing`,
		`{"message":["not","a","string"]}`,
		`{"message":"hi","session_id":"{x}:y"}`,
		"{\"message\":\"\xff\"}",
		`{"message":"\ud800"}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	s, _ := newTestServer(f, testConfig(func(c *Config) { c.MaxMessageChars = 200 }), &fakeDialogue{quiet: true}, nil)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := parseChatBody(raw, 200)
		if err == nil {
			checkValidInput(t, in, 200)
		}
		r := httptest.NewRequest("POST", "/v1/chat", bytes.NewReader(raw))
		r.Header.Set("Authorization", "Bearer "+tokenAcme)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", w.Code, raw, w.Body)
		}
		if (err == nil) != (w.Code == http.StatusOK) {
			t.Fatalf("decoder error %v but status %d for body %q", err, w.Code, raw)
		}
	})
}

func checkValidInput(t *testing.T, in chatInput, maxChars int) {
	t.Helper()
	if !utf8.ValidString(in.Message) || utf8.RuneCountInString(in.Message) > maxChars || strings.TrimSpace(in.Message) == "" {
		t.Fatalf("accepted message %q", in.Message)
	}
	for _, r := range in.Message {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			t.Fatalf("accepted control character %U in %q", r, in.Message)
		}
	}
	if in.SessionID != "" && !dialogue.ValidID(in.SessionID) {
		t.Fatalf("accepted session id %q", in.SessionID)
	}
	if len(in.ClientMsgID) > 64 {
		t.Fatalf("accepted client_msg_id %q", in.ClientMsgID)
	}
}
