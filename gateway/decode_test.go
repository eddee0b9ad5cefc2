package gateway

import (
	"strings"
	"testing"
)

// chatBodies are request bodies of every shape: the usual ones the scanner reads, and
// the unusual ones it leaves to encoding/json.
var chatBodies = []string{
	`{"message":"hi"}`,
	`{"message":"营业时间?","session_id":"sess-0001","client_msg_id":"m-1"}`,
	` { "client_msg_id" : "m-1" , "session_id":"sess-0001",	"message" : "hi" } ` + "\r\n",
	`{}`, ` { } `, `{"session_id":"sess-0001"}`,
	`{"message":"line\nbreak \"quoted\" back\\slash \/ \b\f\r\t"}`,
	`{"message":"\u4fe1\u7528\u5361 \u00e9 \u0041 \uFFFD \u0000"}`,
	`{"message":"\ud83d\ude00 pair"}`, `{"message":"\ud800"}`, `{"message":"\udc00 alone"}`,
	`{"message":"\u12"}`, `{"message":"\u12g4"}`, `{"message":"\x"}`, `{"message":"\`,
	`{"message":"emoji 😀 <b>&amp;</b>"}`,
	"{\"message\":\"\xff\"}", "{\"message\":\"ok\"}\xff", "{\"mess\xffage\":\"ok\"}",
	"{\"message\":\"a\u2028b\"}",
	"{\"message\":\"tab\tinside\"}", "{\"message\":\"nl\ninside\"}",
	`{"message":"hi"} trailing`, `{"message":"hi"}{}`, `{"message":"hi"},`,
	`{"message":"hi",}`, `{"message":"hi" "session_id":"x"}`, `{"message" "hi"}`,
	`{"message":["not","a","string"]}`, `{"message":1}`, `{"message":null}`,
	`{"message":true}`, `{"message":{}}`, `{"session_id":null,"message":"hi"}`,
	`{"message":"hi","extra":1}`, `{"message":"hi","extra":"x"}`,
	`{"Message":"hi"}`, `{"MESSAGE":"hi","Session_ID":""}`,
	`{"message":"hi","message":"again"}`, `{"message":"hi","message":" "}`,
	`{"mess\u0061ge":"hi"}`, `{"message":"hi","session_id":"{x}:y"}`,
	`[]`, `null`, ``, ` `, "\u3000", `{`, `{"`, `{"message`, `{"message":`,
	`{"message":"`, `{"message":"hi"`, `"message"`, "\ufeff{\"message\":\"hi\"}",
	"\u00a0{\"message\":\"hi\"}", `{"message":"` + strings.Repeat("中", 2001) + `"}`,
	`{"message":"hi","client_msg_id":"\u007f"}`, `{"message":"` + "\x01" + `"}`,
}

// TestScanChatBodyMatchesDecoder: whenever the scanner reads a body, it reads what
// encoding/json does; and parseChatBody answers every body as encoding/json alone would.
func TestScanChatBodyMatchesDecoder(t *testing.T) {
	read := 0
	for _, body := range chatBodies {
		checkScanChatBody(t, []byte(body))
		if _, ok := scanChatBody([]byte(body)); ok {
			read++
		}
	}
	if read < 10 {
		t.Errorf("the scanner read %d of the bodies, want at least 10", read)
	}
}

func checkScanChatBody(t *testing.T, raw []byte) {
	t.Helper()
	want, wantErr := decodeChatBody(raw)
	if got, ok := scanChatBody(raw); ok && (wantErr != nil || got != want) {
		t.Fatalf("body %q: scanned %+v, encoding/json gives %+v, %v", raw, got, want, wantErr)
	}
	in, err := parseChatBody(raw, 200)
	wantIn, wantErr := parseChatBodyWithDecoder(raw, 200)
	if in != wantIn || errText(err) != errText(wantErr) {
		t.Fatalf("body %q: parsed %+v, %v; with encoding/json alone %+v, %v", raw, in, err, wantIn, wantErr)
	}
}

// parseChatBodyWithDecoder is parseChatBody without the scanner.
func parseChatBodyWithDecoder(raw []byte, maxMessageChars int) (chatInput, error) {
	f, err := decodeChatBody(raw)
	if err != nil {
		return chatInput{}, err
	}
	return f.input(maxMessageChars)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzScanChatBody compares the scanner with encoding/json on arbitrary bodies.
func FuzzScanChatBody(f *testing.F) {
	for _, body := range chatBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkScanChatBody(t, raw)
	})
}
