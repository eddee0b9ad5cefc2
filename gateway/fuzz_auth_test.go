package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/golang-jwt/jwt/v5"
)

// FuzzAuthorization feeds arbitrary Authorization headers, through the real registry, to
// the whole handler: nothing panics, nothing gets a 5xx, and only the one valid token
// (or the valid token with the scheme in another case or padded with spaces) is let in.
func FuzzAuthorization(f *testing.F) {
	reg := realRegistry(f)
	// Signed here with fixed claims, so that every fuzzing process has the same one.
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"tid": "bank-a", "sub": "u1", "iss": "fengda", "aud": "fengda", "jti": "fuzz-1",
		"iat": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), "exp": time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC).Unix(),
	})
	tok.Header["kid"] = "a1"
	good, err := tok.SignedString([]byte("test-only-secret-a-0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	for _, seed := range []string{
		"Bearer " + good,
		"bearer  " + good + " ",
		"Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer eyJhbGciOiJub25lIn0." + parts[1] + ".",
		"Bearer " + strings.Repeat(".", 300),
		"Basic dTpw",
		"Bearer",
		"Bearer a b",
		"Bearer \x00",
		"Bearer " + good + "\t",
		"",
	} {
		f.Add(seed)
	}
	s, err := New(testConfig(), testDeps(f, &fakeDialogue{quiet: true}, reg, ratelimit.Config{}, nil, nil))
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("POST", "/v1/chat", strings.NewReader(`{"message":"hi"}`))
		r.Header["Authorization"] = []string{header}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case http.StatusOK:
			scheme, tok, _ := strings.Cut(header, " ")
			if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) != good {
				t.Fatalf("header %q was let in", header)
			}
		case http.StatusUnauthorized, http.StatusRequestHeaderFieldsTooLarge:
		default:
			t.Fatalf("status %d for header %q: %s", w.Code, header, w.Body)
		}
	})
}
