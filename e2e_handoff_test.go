package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/queue/queuetest"
)

// The handoff to a person, driven as the customer's page, the agents' console and the
// tenant's backend do: over HTTP and SSE, against the whole program.

// handoffStatus is the "handoff" object of a reply or an event.
type handoffStatus struct {
	Status   string `json:"status"`
	Position int    `json:"position"`
	Agent    *struct {
		Name string `json:"name"`
	} `json:"agent"`
}

// handoffReply is a chat reply or POST /v1/sessions/{id}/handoff's answer.
type handoffReply struct {
	SessionID string         `json:"session_id"`
	TurnID    string         `json:"turn_id"`
	Answer    string         `json:"answer"`
	Source    string         `json:"source"`
	Handoff   *handoffStatus `json:"handoff"`
}

// conversationJSON is an agent's view of a conversation.
type conversationJSON struct {
	SessionID   string `json:"session_id"`
	UserID      string `json:"user_id"`
	Status      string `json:"status"`
	Cause       string `json:"cause"`
	Position    int    `json:"position"`
	AgentID     string `json:"agent_id"`
	AgentName   string `json:"agent_name"`
	Resolution  string `json:"resolution"`
	LastMessage string `json:"last_message"`
}

// liveMessage is a message event: an agent's to the customer, or a customer's to the
// agents (with session_id).
type liveMessage struct {
	SessionID string `json:"session_id"`
	Role      string `json:"role"`
	Content   string `json:"content"`
	Agent     *struct {
		Name string `json:"name"`
	} `json:"agent"`
	TurnID string `json:"turn_id"`
}

// agentHistory is a history message as the agent's history shows it.
type agentHistory struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Source  string `json:"source"`
	Agent   *struct {
		Name string `json:"name"`
	} `json:"agent"`
}

// agentTokenFor exchanges a tenant's API key for an agent's token.
func agentTokenFor(t *testing.T, base, apiKey, user, name string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"user_id": user, "role": "agent", "name": name, "ttl_seconds": 600})
	r := sendHeader("POST", base+"/v1/tokens", map[string]string{"X-API-Key": apiKey}, body)
	var out struct {
		Token string `json:"token"`
		Role  string `json:"role"`
	}
	if r.err != nil || r.status != http.StatusCreated || json.Unmarshal(r.body, &out) != nil || out.Token == "" || out.Role != "agent" {
		t.Fatalf("POST /v1/tokens for agent %s: status %d, error %v, body %s", user, r.status, r.err, r.body)
	}
	return out.Token
}

// liveEvent is one event of a stream; comments are not events.
type liveEvent struct {
	ID, Name string
	Data     []byte
}

// sseStream reads an SSE response on a goroutine of its own until the test ends.
type sseStream struct {
	t      *testing.T
	what   string
	events chan liveEvent
}

// openStream GETs path as token's holder, with Last-Event-ID lastID when not empty, and
// checks that an event stream began.
func openStream(t *testing.T, base, token, path, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: status %d, type %q, body %s; want an event stream", path, resp.StatusCode, resp.Header.Get("Content-Type"), buf.Bytes())
	}
	s := &sseStream{t: t, what: path, events: make(chan liveEvent, 256)}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		var ev liveEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" || ev.Data != nil {
					s.events <- ev
				}
				ev = liveEvent{}
			case strings.HasPrefix(line, ":"):
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[len("id: "):]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.Data = append(ev.Data, line[len("data: "):]...)
			}
		}
	}()
	return s
}

// next returns the stream's next event, failing the test after 10s or at its end.
func (s *sseStream) next() liveEvent {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			s.t.Fatalf("%s: the stream ended", s.what)
		}
		return ev
	case <-time.After(10 * time.Second):
		s.t.Fatalf("%s: no event within 10s", s.what)
	}
	return liveEvent{}
}

// waitFor returns the first event named name whose data match, skipping others.
func (s *sseStream) waitFor(name string, match func(data []byte) bool) liveEvent {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("%s: the stream ended before a %s event", s.what, name)
			}
			if ev.Name == name && (match == nil || match(ev.Data)) {
				return ev
			}
		case <-deadline:
			s.t.Fatalf("%s: no matching %s event within 10s", s.what, name)
		}
	}
}

// statusIs matches a handoff event of status.
func statusIs(status string) func([]byte) bool {
	return func(data []byte) bool {
		var h handoffStatus
		return json.Unmarshal(data, &h) == nil && h.Status == status
	}
}

// decode unmarshals a result's body, failing the test on a status other than want.
func decode(t *testing.T, what string, r result, want int, v any) {
	t.Helper()
	if r.err != nil || r.status != want {
		t.Fatalf("%s: status %d, error %v, body %s; want %d", what, r.status, r.err, r.body, want)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("%s: body %s: %v", what, r.body, err)
		}
	}
}

// wantError fails the test unless r is status with the error code.
func wantError(t *testing.T, what string, r result, status int, code string) {
	t.Helper()
	var e errorReply
	if r.err != nil || r.status != status || json.Unmarshal(r.body, &e) != nil || e.Error.Code != code {
		t.Errorf("%s: status %d, error %v, body %s; want %d %s", what, r.status, r.err, r.body, status, code)
	}
}

// chatIn sends message in session sid (a new one when empty) and decodes the reply.
func chatIn(t *testing.T, base, token, sid, message string) handoffReply {
	t.Helper()
	body := map[string]string{"message": message}
	if sid != "" {
		body["session_id"] = sid
	}
	var r handoffReply
	decode(t, "POST /v1/chat "+message, post(base, token, body), http.StatusOK, &r)
	return r
}

// agentPost sends an agent's message.
func agentPost(base, token, sid, content string) result {
	b, _ := json.Marshal(map[string]string{"content": content})
	return send("POST", base+"/v1/agent/conversations/"+sid+"/messages", token, b)
}

// listConversations returns the tenant's conversations of status as token's agent sees them.
func listConversations(t *testing.T, base, token, status string) []conversationJSON {
	t.Helper()
	var out struct {
		Conversations []conversationJSON `json:"conversations"`
	}
	decode(t, "GET /v1/agent/conversations?status="+status, get(base, token, "/v1/agent/conversations?status="+status), http.StatusOK, &out)
	return out.Conversations
}

func findConversation(cs []conversationJSON, sid string) (conversationJSON, bool) {
	for _, c := range cs {
		if c.SessionID == sid {
			return c, true
		}
	}
	return conversationJSON{}, false
}

// randomID returns a session id of the test's own.
func randomID(prefix string) string { return prefix + "-" + strings.ToLower(rand.Text()[:12]) }

func TestHandoff(t *testing.T) {
	// The memory store and the embedded NATS server; the demo tenants' rate limits are
	// below what the suite sends at once.
	base := testServer(t, map[string]string{"FENGDA_RATELIMIT_ENABLED": "false"})
	t.Run("asked, claimed, answered, closed", func(t *testing.T) { handoffFlow(t, base, base) })
	t.Run("bad input", func(t *testing.T) { handoffBadInput(t, base) })
	t.Run("the button and unresolved answers", func(t *testing.T) { handoffCauses(t, base) })
}

// handoffFlow runs one conversation from the bot to an agent and back; the customer is
// on cbase, the agents on abase (the same program, or another replica).
func handoffFlow(t *testing.T, cbase, abase string) {
	user := randomID("cust")
	cust := tokenFor(t, cbase, bankAPIKey, user)
	agents := []string{
		agentTokenFor(t, abase, bankAPIKey, "agent-li", "李伟"),
		agentTokenFor(t, abase, bankAPIKey, "agent-wang", "王芳"),
		agentTokenFor(t, abase, bankAPIKey, "agent-zhao", "赵强"),
	}
	names := map[string]string{agents[0]: "李伟", agents[1]: "王芳", agents[2]: "赵强"}
	// An agent's console is open: the agent counts as online.
	console := openStream(t, abase, agents[0], "/v1/agent/events", "")

	first := chatIn(t, cbase, cust, "", "借记卡丢了怎么挂失？")
	if first.Source != "faq" || first.Handoff != nil {
		t.Fatalf("first turn: %+v, want an FAQ answer without handoff", first)
	}
	sid := first.SessionID

	asked := chatIn(t, cbase, cust, sid, "转人工")
	if asked.Source != "handoff" || asked.Handoff == nil || asked.Handoff.Status != "waiting" || asked.Handoff.Position < 1 || asked.Answer == "" {
		t.Fatalf("转人工: %+v, want source handoff, waiting with a position and a notice", asked)
	}
	console.waitFor("conversation", func(d []byte) bool {
		var c conversationJSON
		return json.Unmarshal(d, &c) == nil && c.SessionID == sid && c.Status == "waiting"
	})

	events := openStream(t, cbase, cust, "/v1/sessions/"+sid+"/events", "")
	if ev := events.next(); ev.Name != "handoff" || !statusIs("waiting")(ev.Data) {
		t.Errorf("first event %s %s, want handoff waiting", ev.Name, ev.Data)
	}

	// While it waits, the bot is silent and the message reaches the agents.
	held := chatIn(t, cbase, cust, sid, "卡是昨天丢的，很着急")
	if held.Source != "handoff" || held.Answer != "" || held.Handoff == nil || held.Handoff.Status != "waiting" {
		t.Errorf("message while waiting: %+v, want source handoff, no answer, waiting", held)
	}
	console.waitFor("message", func(d []byte) bool {
		var m liveMessage
		return json.Unmarshal(d, &m) == nil && m.SessionID == sid && m.Role == "user" && m.Content == "卡是昨天丢的，很着急"
	})
	c, ok := findConversation(listConversations(t, abase, agents[1], "waiting"), sid)
	if !ok || c.UserID != user || c.Cause != "asked" || c.LastMessage != "卡是昨天丢的，很着急" || c.Position < 1 {
		t.Errorf("queue entry %+v (found %v), want user %s, cause asked, the last message, a position", c, ok, user)
	}

	// Three agents claim at once: one wins.
	var wg sync.WaitGroup
	claims := make([]result, len(agents))
	for i, tok := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			claims[i] = send("POST", abase+"/v1/agent/conversations/"+sid+"/claim", tok, nil)
		}()
	}
	wg.Wait()
	winner, losers := "", []string{}
	for i, r := range claims {
		switch r.status {
		case http.StatusOK:
			if winner != "" {
				t.Errorf("two claims won: %s", r.body)
			}
			winner = agents[i]
			var out struct {
				Conversation conversationJSON `json:"conversation"`
			}
			if json.Unmarshal(r.body, &out) != nil || out.Conversation.Status != "agent" || out.Conversation.AgentName != names[agents[i]] {
				t.Errorf("winning claim %s", r.body)
			}
		default:
			wantError(t, "a losing claim", r, http.StatusConflict, "conflict")
			losers = append(losers, agents[i])
		}
	}
	if winner == "" {
		t.Fatal("no claim won")
	}
	name := names[winner]
	events.waitFor("handoff", func(d []byte) bool {
		var h handoffStatus
		return json.Unmarshal(d, &h) == nil && h.Status == "agent" && h.Agent != nil && h.Agent.Name == name
	})
	wantError(t, "a claim of a claimed conversation", send("POST", abase+"/v1/agent/conversations/"+sid+"/claim", losers[0], nil), http.StatusConflict, "conflict")

	// The agent reads the whole history: the bot's turn too.
	var h struct {
		Messages []agentHistory `json:"messages"`
	}
	decode(t, "the agent's history", get(abase, winner, "/v1/agent/conversations/"+sid+"/messages"), http.StatusOK, &h)
	var seen []string
	for _, m := range h.Messages {
		seen = append(seen, m.Role+":"+m.Content)
	}
	for _, want := range []string{"user:借记卡丢了怎么挂失？", "assistant:" + first.Answer, "user:转人工", "user:卡是昨天丢的，很着急"} {
		if !slices.Contains(seen, want) {
			t.Errorf("the agent's history %q lacks %q", seen, want)
		}
	}

	// Only the holder writes; content is bounded.
	wantError(t, "a message by a non-holder", agentPost(abase, losers[0], sid, "我来帮您"), http.StatusConflict, "conflict")
	wantError(t, "an empty message", agentPost(abase, winner, sid, ""), http.StatusBadRequest, "invalid_request")
	wantError(t, "a message of blanks", agentPost(abase, winner, sid, "  \n "), http.StatusBadRequest, "invalid_request")
	wantError(t, "a message of 4001 characters", agentPost(abase, winner, sid, strings.Repeat("长", 4001)), http.StatusRequestEntityTooLarge, "too_large")
	reply := "您好，我是" + name + "，已为您冻结卡片。"
	var posted struct {
		Message liveMessage `json:"message"`
	}
	decode(t, "the agent's message", agentPost(abase, winner, sid, reply), http.StatusCreated, &posted)
	if posted.Message.Role != "agent" || posted.Message.Content != reply || posted.Message.TurnID == "" {
		t.Errorf("posted message %+v", posted.Message)
	}
	got := events.waitFor("message", nil)
	var m liveMessage
	if json.Unmarshal(got.Data, &m) != nil || m.Role != "agent" || m.Content != reply || m.Agent == nil || m.Agent.Name != name || m.TurnID != posted.Message.TurnID || got.ID == "" {
		t.Errorf("the customer's stream got %s %s (id %q), want the agent's message with the agent's name", got.Name, got.Data, got.ID)
	}

	// A reconnect after the claim's event gets the message again.
	again := openStream(t, cbase, cust, "/v1/sessions/"+sid+"/events", prevID(t, got.ID))
	replayed := again.waitFor("message", nil)
	if !bytes.Equal(replayed.Data, got.Data) || replayed.ID != got.ID {
		t.Errorf("replayed %s %s, want %s %s", replayed.ID, replayed.Data, got.ID, got.Data)
	}

	// The customer's status and history.
	var st handoffReply
	decode(t, "GET handoff", get(cbase, cust, "/v1/sessions/"+sid+"/handoff"), http.StatusOK, &st)
	if st.Handoff == nil || st.Handoff.Status != "agent" || st.Handoff.Agent == nil || st.Handoff.Agent.Name != name {
		t.Errorf("GET /v1/sessions/{id}/handoff: %+v, want agent %s", st.Handoff, name)
	}
	agentTurns := 0
	for _, hm := range history(t, cbase, cust, sid) {
		if hm.Role == "agent" {
			agentTurns++
			if hm.Content != reply {
				t.Errorf("agent message in history %q, want %q", hm.Content, reply)
			}
		}
	}
	if agentTurns != 1 {
		t.Errorf("history holds %d agent messages, want 1", agentTurns)
	}

	// Close: only by the holder; then the bot answers again.
	closeAs := func(tok string) result {
		return send("POST", abase+"/v1/agent/conversations/"+sid+"/close", tok, []byte(`{"resolution":"card frozen"}`))
	}
	wantError(t, "a close by a non-holder", closeAs(losers[0]), http.StatusConflict, "conflict")
	var closed struct {
		Conversation conversationJSON `json:"conversation"`
	}
	decode(t, "close", closeAs(winner), http.StatusOK, &closed)
	if closed.Conversation.Status != "closed" || closed.Conversation.Resolution != "card frozen" {
		t.Errorf("closed conversation %+v", closed.Conversation)
	}
	events.waitFor("handoff", statusIs("closed"))
	wantError(t, "a claim of a closed conversation", send("POST", abase+"/v1/agent/conversations/"+sid+"/claim", losers[0], nil), http.StatusConflict, "conflict")
	if c, ok := findConversation(listConversations(t, abase, winner, "closed"), sid); !ok || c.Resolution != "card frozen" {
		t.Errorf("closed list entry %+v (found %v)", c, ok)
	}
	if _, ok := findConversation(listConversations(t, abase, winner, "waiting"), sid); ok {
		t.Error("a closed conversation is still in the queue")
	}
	back := chatIn(t, cbase, cust, sid, "信用卡年费怎么收？")
	if back.Source != "faq" || back.Handoff != nil {
		t.Errorf("after close: %+v, want the bot's FAQ answer", back)
	}
}

// prevID returns the SSE id before id, so that a reconnect naming it replays id.
func prevID(t *testing.T, id string) string {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(id, &n); err != nil || n < 1 {
		t.Fatalf("event id %q is not a positive number", id)
	}
	return fmt.Sprint(n - 1)
}

func handoffBadInput(t *testing.T, base string) {
	cust := tokenFor(t, base, bankAPIKey, randomID("cust"))
	other := tokenFor(t, base, bankAPIKey, randomID("other"))
	agent := agentTokenFor(t, base, bankAPIKey, "agent-bad", "A")
	shopAgent := agentTokenFor(t, base, shopAPIKey, "agent-shop", "S")
	sid := chatIn(t, base, cust, "", "转人工").SessionID

	for _, tc := range []struct {
		what, method, path, token string
		body                      string
		status                    int
		code                      string
	}{
		{"unknown conversation: claim", "POST", "/v1/agent/conversations/no-such-conversation/claim", agent, "", 404, "not_found"},
		{"unknown conversation: history", "GET", "/v1/agent/conversations/no-such-conversation/messages", agent, "", 404, "not_found"},
		{"unknown conversation: message", "POST", "/v1/agent/conversations/no-such-conversation/messages", agent, `{"content":"hi"}`, 404, "not_found"},
		{"unknown conversation: close", "POST", "/v1/agent/conversations/no-such-conversation/close", agent, "", 404, "not_found"},
		{"another tenant's agent: claim", "POST", "/v1/agent/conversations/" + sid + "/claim", shopAgent, "", 404, "not_found"},
		{"another tenant's agent: history", "GET", "/v1/agent/conversations/" + sid + "/messages", shopAgent, "", 404, "not_found"},
		{"another tenant's agent: message", "POST", "/v1/agent/conversations/" + sid + "/messages", shopAgent, `{"content":"hi"}`, 404, "not_found"},
		{"another user's session: events", "GET", "/v1/sessions/" + sid + "/events", other, "", 404, "not_found"},
		{"another user's session: status", "GET", "/v1/sessions/" + sid + "/handoff", other, "", 404, "not_found"},
		{"another user's session: handoff", "POST", "/v1/sessions/" + sid + "/handoff", other, "", 404, "not_found"},
		{"a user on the agents' queue", "GET", "/v1/agent/conversations", cust, "", 403, "forbidden"},
		{"a user claiming", "POST", "/v1/agent/conversations/" + sid + "/claim", cust, "", 403, "forbidden"},
		{"a user on the agents' events", "GET", "/v1/agent/events", cust, "", 403, "forbidden"},
		{"an agent chatting", "POST", "/v1/chat", agent, `{"message":"hi"}`, 403, "forbidden"},
		{"an agent on a customer's events", "GET", "/v1/sessions/" + sid + "/events", agent, "", 403, "forbidden"},
		{"no token", "GET", "/v1/agent/conversations", "", "", 401, "unauthenticated"},
		{"a status that does not exist", "GET", "/v1/agent/conversations?status=lost", agent, "", 400, "invalid_request"},
		{"a malformed conversation id", "POST", "/v1/agent/conversations/x/claim", agent, "", 400, "invalid_request"},
		{"a body that is not JSON", "POST", "/v1/agent/conversations/" + sid + "/messages", agent, `content=hi`, 400, "invalid_request"},
		{"content that is not a string", "POST", "/v1/agent/conversations/" + sid + "/messages", agent, `{"content":7}`, 400, "invalid_request"},
		{"a Last-Event-ID that is not an id", "GET", "/v1/sessions/" + sid + "/events", cust, "", 400, "invalid_request"},
	} {
		h := map[string]string{}
		if tc.token != "" {
			h["Authorization"] = "Bearer " + tc.token
		}
		if strings.HasPrefix(tc.what, "a Last-Event-ID") {
			h["Last-Event-ID"] = "abc"
		}
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		wantError(t, tc.what, sendHeader(tc.method, base+tc.path, h, body), tc.status, tc.code)
	}

	// None of that changed the conversation: it still waits, unclaimed.
	if c, ok := findConversation(listConversations(t, base, agent, "waiting"), sid); !ok || c.AgentID != "" {
		t.Errorf("after the bad requests: %+v (found %v), want it waiting and unclaimed", c, ok)
	}
	// The shop's agents do not see the bank's queue.
	if _, ok := findConversation(listConversations(t, base, shopAgent, "waiting"), sid); ok {
		t.Error("the shop's agent sees the bank's conversation")
	}
}

func handoffCauses(t *testing.T, base string) {
	cust := tokenFor(t, base, bankAPIKey, randomID("cust"))
	agent := agentTokenFor(t, base, bankAPIKey, "agent-causes", "C")

	// The widget's button, on a session that does not exist yet.
	sid := randomID("btn")
	var b handoffReply
	decode(t, "the button", send("POST", base+"/v1/sessions/"+sid+"/handoff", cust, nil), http.StatusOK, &b)
	if b.SessionID != sid || b.Source != "handoff" || b.Handoff == nil || b.Handoff.Status != "waiting" || b.Answer == "" {
		t.Errorf("button: %+v", b)
	}
	var again handoffReply
	decode(t, "the button again", send("POST", base+"/v1/sessions/"+sid+"/handoff", cust, []byte(`{}`)), http.StatusOK, &again)
	if again.Handoff == nil || again.Handoff.Status != "waiting" || again.TurnID != "" {
		t.Errorf("button pressed twice: %+v, want the status and no new notice", again)
	}
	if c, ok := findConversation(listConversations(t, base, agent, "waiting"), sid); !ok || c.Cause != "button" {
		t.Errorf("button conversation %+v (found %v), want cause button", c, ok)
	}

	// Unresolved answers in a row (after_unresolved 2).
	r1 := chatIn(t, base, cust, "", "今天火星上的天气怎么样")
	if r1.Source != "clarify" && r1.Source != "fallback" {
		t.Fatalf("out-of-scope question answered %+v, want clarify or fallback", r1)
	}
	r2 := chatIn(t, base, cust, r1.SessionID, "那明天火星上的天气呢")
	if r2.Source != "handoff" || r2.Handoff == nil || r2.Handoff.Status != "waiting" {
		t.Errorf("second unresolved answer: %+v, want the handoff", r2)
	}
	if c, ok := findConversation(listConversations(t, base, agent, "waiting"), r1.SessionID); !ok || c.Cause != "unresolved" {
		t.Errorf("unresolved conversation %+v (found %v), want cause unresolved", c, ok)
	}

	ms := scrapeMetrics(t, base)
	for _, cause := range []string{"asked", "button", "unresolved"} {
		if n := ms.sum("fengda_handoffs_total", "tenant", bankID, "cause", cause); n < 1 {
			t.Errorf("fengda_handoffs_total{cause=%q} = %v, want at least 1", cause, n)
		}
	}
	if n := ms.sum("fengda_handoffs_total", "tenant", shopID); n != 0 {
		t.Errorf("the shop's fengda_handoffs_total = %v, want 0", n)
	}
	if n := ms.sum("fengda_handoff_waiting", "tenant", bankID); n < 2 {
		t.Errorf("fengda_handoff_waiting = %v, want at least the 2 conversations of this test", n)
	}
	if n := ms.sum("fengda_handoff_wait_seconds_count", "tenant", bankID); n < 1 {
		t.Errorf("fengda_handoff_wait_seconds_count = %v, want the claim of the flow", n)
	}
}

// TestHandoffTwoProcesses runs the handoff on two processes sharing Redis and NATS: the
// customer on one, the agents on the other.
func TestHandoffTwoProcesses(t *testing.T) {
	requireRedis(t)
	env := map[string]string{"FENGDA_RATELIMIT_ENABLED": "false"}
	for _, set := range []map[string]string{queuetest.Backends[1].Place(t).Env(), redisEnv(t)} {
		for k, v := range set {
			env[k] = v
		}
	}
	a := testServer(t, env)
	b := testServer(t, env)

	t.Run("customer on one, agents on the other", func(t *testing.T) { handoffFlow(t, a, b) })

	t.Run("20 agents race for 50 conversations", func(t *testing.T) {
		const conversations, agents = 50, 20
		sids := make([]string, conversations)
		var wg sync.WaitGroup
		for i := range sids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := tokenFor(t, a, bankAPIKey, fmt.Sprintf("race-%d-%s", i, randomID("u")))
				sids[i] = chatIn(t, []string{a, b}[i%2], tok, "", "转人工").SessionID
			}()
		}
		wg.Wait()
		toks := make([]string, agents)
		for i := range toks {
			toks[i] = agentTokenFor(t, b, bankAPIKey, fmt.Sprintf("racer-%d", i), fmt.Sprintf("Racer %d", i))
		}
		var mu sync.Mutex
		owners := map[string][]int{}
		other := map[int]int{}
		start := make(chan struct{})
		for i, tok := range toks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for k := range sids {
					sid := sids[(k+i*7)%conversations] // each agent starts elsewhere
					r := send("POST", []string{a, b}[(i+k)%2]+"/v1/agent/conversations/"+sid+"/claim", tok, nil)
					mu.Lock()
					if r.status == http.StatusOK {
						owners[sid] = append(owners[sid], i)
					} else {
						other[r.status]++
					}
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, sid := range sids {
			if n := len(owners[sid]); n != 1 {
				t.Errorf("conversation %s won by %d agents %v, want exactly 1", sid, n, owners[sid])
			}
		}
		if want := conversations * (agents - 1); other[http.StatusConflict] != want || len(other) != 1 {
			t.Errorf("losing claims by status %v, want %d conflicts only", other, want)
		}
		// Each store agrees on the owner.
		for _, base := range []string{a, b} {
			mine := listConversations(t, base, toks[0], "agent")
			for _, sid := range sids {
				c, ok := findConversation(mine, sid)
				if !ok || c.AgentID != fmt.Sprintf("racer-%d", owners[sid][0]) {
					t.Errorf("%s on %s: %+v (found %v), want agent racer-%d", sid, base, c, ok, owners[sid][0])
				}
			}
		}
	})

	t.Run("no message lost or stored twice across replicas", func(t *testing.T) {
		user := randomID("both")
		cust := tokenFor(t, a, bankAPIKey, user)
		agent := agentTokenFor(t, b, bankAPIKey, "agent-both", "双")
		sid := chatIn(t, a, cust, "", "我要找人工").SessionID
		decode(t, "claim", send("POST", a+"/v1/agent/conversations/"+sid+"/claim", agent, nil), http.StatusOK, nil)
		stream := openStream(t, a, cust, "/v1/sessions/"+sid+"/events", "")
		console := openStream(t, b, agent, "/v1/agent/events", "")
		const n = 10
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				r := post([]string{a, b}[i%2], cust, map[string]string{"session_id": sid, "message": fmt.Sprintf("客户消息 %d", i), "client_msg_id": fmt.Sprintf("c-%d", i)})
				if r.status != http.StatusOK {
					t.Errorf("customer message %d: status %d, body %s", i, r.status, r.body)
				}
			}()
			go func() {
				defer wg.Done()
				if r := agentPost([]string{b, a}[i%2], agent, sid, fmt.Sprintf("客服回复 %d", i)); r.status != http.StatusCreated {
					t.Errorf("agent message %d: status %d, body %s", i, r.status, r.body)
				}
			}()
		}
		wg.Wait()
		// A customer's message sent again with its client_msg_id is not stored twice.
		if r := post(b, cust, map[string]string{"session_id": sid, "message": "客户消息 0", "client_msg_id": "c-0"}); r.status != http.StatusOK {
			t.Errorf("repeated message: status %d, body %s", r.status, r.body)
		}

		// The customer's stream on a got every agent message, once each, in seq order.
		got := map[string]int{}
		var lastID int64
		for len(got) < n {
			ev := stream.waitFor("message", nil)
			var m liveMessage
			json.Unmarshal(ev.Data, &m)
			got[m.Content]++
			var id int64
			fmt.Sscan(ev.ID, &id)
			if id <= lastID {
				t.Errorf("event id %d after %d", id, lastID)
			}
			lastID = id
		}
		// The agents' stream on b got every customer message.
		fromCustomer := map[string]bool{}
		for len(fromCustomer) < n {
			ev := console.waitFor("message", func(d []byte) bool {
				var m liveMessage
				return json.Unmarshal(d, &m) == nil && m.SessionID == sid && m.Role == "user"
			})
			var m liveMessage
			json.Unmarshal(ev.Data, &m)
			fromCustomer[m.Content] = true
		}
		for i := range n {
			if got[fmt.Sprintf("客服回复 %d", i)] != 1 {
				t.Errorf("agent message %d reached the customer %d times, want 1", i, got[fmt.Sprintf("客服回复 %d", i)])
			}
		}

		// Both replicas' histories hold each message exactly once.
		for _, base := range []string{a, b} {
			count := map[string]int{}
			for _, m := range history(t, base, cust, sid) {
				count[m.Role+":"+m.Content]++
			}
			for i := range n {
				for _, k := range []string{fmt.Sprintf("user:客户消息 %d", i), fmt.Sprintf("agent:客服回复 %d", i)} {
					if count[k] != 1 {
						t.Errorf("history on %s holds %q %d times, want 1", base, k, count[k])
					}
				}
			}
		}
	})
}

// webhookCall is one POST the tenant's helpdesk received.
type webhookCall struct {
	header http.Header
	body   []byte
}

// TestHandoffWebhook sends a handoff's events to the tenant's own helpdesk: signed, at
// least once, each with its event_id.
func TestHandoffWebhook(t *testing.T) {
	const secret = "bank-webhook-secret-0123456789"
	var mu sync.Mutex
	var calls []webhookCall
	failed := map[string]bool{}
	desk := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, webhookCall{r.Header.Clone(), body})
		// The helpdesk fails each event's first delivery.
		id := r.Header.Get("X-Fengda-Event-Id")
		if !failed[id] {
			failed[id] = true
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(desk.Close)

	dir := t.TempDir()
	cfg := strings.Replace(string(defaultConfigYAML), "    history_ttl: 168h\n",
		"    history_ttl: 168h\n    handoff:\n      webhook_url: "+desk.URL+"/fengda\n      webhook_secret: {value: \""+secret+"\"}\n", 1)
	if cfg == string(defaultConfigYAML) {
		t.Fatal("config.yaml has no history_ttl line to put the webhook after")
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := testServerWith(t, map[string]string{"FENGDA_RATELIMIT_ENABLED": "false"}, []string{"-config", cfgPath}, nil)

	user := randomID("hook")
	cust := tokenFor(t, base, bankAPIKey, user)
	agent := agentTokenFor(t, base, bankAPIKey, "agent-hook", "周")
	sid := chatIn(t, base, cust, "", "人工客服").SessionID
	chatIn(t, base, cust, sid, "我的转账没到账")
	decode(t, "claim", send("POST", base+"/v1/agent/conversations/"+sid+"/claim", agent, nil), http.StatusOK, nil)
	decode(t, "agent message", agentPost(base, agent, sid, "我来查一下"), http.StatusCreated, nil)
	decode(t, "close", send("POST", base+"/v1/agent/conversations/"+sid+"/close", agent, nil), http.StatusOK, nil)
	// The shop has no webhook: its handoff sends nothing.
	chatIn(t, base, tokenFor(t, base, shopAPIKey, randomID("shopper")), "", "talk to a person")

	type event struct {
		EventID   string `json:"event_id"`
		Type      string `json:"type"`
		Tenant    string `json:"tenant"`
		SessionID string `json:"session_id"`
		UserID    string `json:"user_id"`
		At        string `json:"at"`
		Handoff   *struct {
			Status      string `json:"status"`
			Cause       string `json:"cause"`
			LastMessage string `json:"last_message"`
		} `json:"handoff"`
		Message *struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
	}
	// Each event is delivered twice: refused, then accepted a second later.
	// waiting (its last_message the one that asked), the message that asked, the
	// customer's next message, agent, the agent's message, closed.
	const events = 6
	var got []webhookCall
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got = slices.Clone(calls)
		mu.Unlock()
		if len(got) >= 2*events {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	var delivered []event
	for _, c := range got {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(c.body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); c.header.Get("X-Fengda-Signature") != want {
			t.Errorf("signature %q, want %q", c.header.Get("X-Fengda-Signature"), want)
		}
		ts, err := strconv.ParseInt(c.header.Get("X-Fengda-Timestamp"), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
			t.Errorf("X-Fengda-Timestamp %q, want the unix time of sending", c.header.Get("X-Fengda-Timestamp"))
		}
		var ev event
		if err := json.Unmarshal(c.body, &ev); err != nil {
			t.Fatalf("webhook body %s: %v", c.body, err)
		}
		if ev.EventID == "" || ev.EventID != c.header.Get("X-Fengda-Event-Id") {
			t.Errorf("event_id %q, header %q", ev.EventID, c.header.Get("X-Fengda-Event-Id"))
		}
		if ev.Tenant != bankID || ev.SessionID != sid || ev.UserID != user {
			t.Errorf("event %s: tenant %s session %s user %s, want %s %s %s", ev.EventID, ev.Tenant, ev.SessionID, ev.UserID, bankID, sid, user)
		}
		if seen[ev.EventID]++; seen[ev.EventID] == 2 {
			delivered = append(delivered, ev)
		}
	}
	if len(got) != 2*events {
		t.Errorf("the helpdesk got %d calls, want %d: each of %d events refused once, then delivered", len(got), 2*events, events)
	}
	for id, n := range seen {
		if n != 2 {
			t.Errorf("event %s arrived %d times, want 2 (refused, retried)", id, n)
		}
	}
	var kinds []string
	for _, ev := range delivered {
		switch {
		case ev.Type == "handoff" && ev.Handoff != nil:
			kinds = append(kinds, "handoff:"+ev.Handoff.Status)
			if ev.Handoff.Status == "waiting" && (ev.Handoff.Cause != "asked" || ev.Handoff.LastMessage != "人工客服") {
				t.Errorf("waiting event: cause %q, last message %q; want asked, 人工客服", ev.Handoff.Cause, ev.Handoff.LastMessage)
			}
		case ev.Type == "message" && ev.Message != nil:
			kinds = append(kinds, "message:"+ev.Message.Role+":"+ev.Message.Content)
		default:
			kinds = append(kinds, "?"+ev.Type)
		}
	}
	slices.Sort(kinds)
	want := []string{"handoff:agent", "handoff:closed", "handoff:waiting", "message:agent:我来查一下", "message:user:人工客服", "message:user:我的转账没到账"}
	if !slices.Equal(kinds, want) {
		t.Errorf("delivered events %q, want %q", kinds, want)
	}
}
