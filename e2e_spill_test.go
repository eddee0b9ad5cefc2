package main

// End-to-end tests of spillover: the whole program, on a free port, under bursts that
// overflow its workers and backlog, against the embedded JetStream and the NATS server
// on 127.0.0.1:4222, with a stand-in model that answers slowly.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
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

	"github.com/redis/go-redis/v9"

	"github.com/fengda-ai/fengda/nlpclient/openai/openaitest"
	"github.com/fengda-ai/fengda/queue/queuetest"
)

const (
	bankID = "qinghe-bank"
	shopID = "northwind-shop"
)

// apiKeys are the demo tenants' API keys.
var apiKeys = map[string]string{bankID: bankAPIKey, shopID: shopAPIKey}

// TestSpillBurstHTTP sends fifteen times what the workers and backlog hold at once.
// Nothing is refused; the requests whose wait runs out get 202 and poll; every turn is
// answered with its own message, stored once, and put to the model once.
func TestSpillBurstHTTP(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		m := newEchoModel(t, 100*time.Millisecond, 200*time.Millisecond)
		base := testServerWith(t, spillEnv(m, b.Place(t).Env(), map[string]string{
			"FENGDA_DIALOGUE_WORKERS": "4",
			"FENGDA_DIALOGUE_BACKLOG": "4",
			"FENGDA_QUEUE_MAX_WAIT":   "1s",
		}), modelArgs(t), nil)
		const n = 15 * (4 + 4)
		turns := newBurst(t, base, "burst", n, bankID, shopID)
		fireBurst(base, turns)()

		statuses := countStatuses(turns)
		t.Logf("%d turns: statuses %v", n, statuses)
		for _, tr := range turns {
			if tr.err != nil || tr.status != http.StatusOK && tr.status != http.StatusAccepted {
				t.Errorf("%s: status %d, error %v, body %s; want 200 or 202", tr.user, tr.status, tr.err, tr.body)
			}
		}
		if statuses[http.StatusAccepted] == 0 {
			t.Errorf("no request got 202: the burst did not outlast queue.max_wait, so polling went untested")
		}
		for _, tr := range turns {
			if tr.status != http.StatusAccepted {
				continue
			}
			// A queued turn is its sender's only: another user of the tenant, and the
			// same user id at another tenant, are told it does not exist.
			var q queuedReply
			_ = json.Unmarshal(tr.body, &q)
			other := map[string]string{bankID: shopAPIKey, shopID: bankAPIKey}[tr.tenant]
			for who, tok := range map[string]string{
				"another user":   tokenFor(t, base, apiKeys[tr.tenant], "intruder"),
				"another tenant": tokenFor(t, base, other, tr.user),
			} {
				if r := get(base, tok, "/v1/turns/"+q.TurnID); r.status != http.StatusNotFound {
					t.Errorf("%s polls %s's queued turn: status %d, body %s; want 404", who, tr.user, r.status, r.body)
				}
			}
			break
		}
		settleBurst(t, base, m, turns)
		if got := m.total(); got != n {
			t.Errorf("the model was called %d times for %d turns", got, n)
		}

		waitQueueIdle(t, base, bankID, shopID)
		ms := scrapeMetrics(t, base)
		answered := ms.sum("fengda_spilled_turns_total", "outcome", "answered")
		queued := ms.sum("fengda_spilled_turns_total", "outcome", "queued")
		t.Logf("spilled: %v answered while waiting, %v queued; worked from the queue: %v",
			answered, queued, ms.sum("fengda_queued_turns_worked_total"))
		if answered+queued == 0 {
			t.Error("fengda_spilled_turns_total is 0: nothing spilled")
		}
		if want := float64(statuses[http.StatusAccepted]); queued != want {
			t.Errorf("fengda_spilled_turns_total{outcome=queued} = %v, want %v (the 202s)", queued, want)
		}
		if full, failed := ms.sum("fengda_spilled_turns_total", "outcome", "full"), ms.sum("fengda_spilled_turns_total", "outcome", "error"); full+failed != 0 {
			t.Errorf("fengda_spilled_turns_total: full %v, error %v; want none", full, failed)
		}
		if worked := ms.sum("fengda_queued_turns_worked_total"); worked != answered+queued {
			t.Errorf("fengda_queued_turns_worked_total = %v, want %v: each spilled turn worked once", worked, answered+queued)
		}
	})
}

// TestSpillRetrySameClientMsgID sends one turn twice at once, with the same session and
// client message id, while the only worker is busy and the backlog is full: both
// requests spill, share one queued message and get the same turn, and a third retry
// afterwards gets it again. The session holds it once and the model answered it once.
func TestSpillRetrySameClientMsgID(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		m := newEchoModel(t, 20*time.Millisecond, 40*time.Millisecond)
		base := testServerWith(t, spillEnv(m, b.Place(t).Env(), map[string]string{
			"FENGDA_DIALOGUE_WORKERS": "1",
			"FENGDA_DIALOGUE_BACKLOG": "1",
			"FENGDA_QUEUE_MAX_WAIT":   "3s",
		}), modelArgs(t), nil)

		// A session with one turn, answered while the server is idle.
		tok := tokenFor(t, base, bankAPIKey, "retry-user")
		opening := post(base, tok, map[string]string{"message": "retry: opening question"})
		var first chatReply
		if opening.err != nil || opening.status != http.StatusOK || json.Unmarshal(opening.body, &first) != nil {
			t.Fatalf("opening turn: status %d, error %v, body %s", opening.status, opening.err, opening.body)
		}

		// Overload: one filler holds the only worker at the model, a second fills the
		// backlog; from then on every turn spills until the model is released.
		var wg sync.WaitGroup
		defer wg.Wait()
		defer m.release() // before waiting for the requests, should a check below fail
		fill := func(user, msg string) {
			tok := tokenFor(t, base, bankAPIKey, user)
			wg.Go(func() {
				if r := post(base, tok, map[string]string{"message": msg}); r.err != nil || r.status != http.StatusOK {
					t.Errorf("filler %s: status %d, error %v, body %s", user, r.status, r.err, r.body)
				}
			})
		}
		fill("filler-1", "hold: filler one")
		eventually(t, 5*time.Second, "the first filler reaches the model", func() bool { return m.calls("hold: filler one") == 1 })
		auth := authCount(t, base)
		fill("filler-2", "hold: filler two")
		eventually(t, 5*time.Second, "the second filler is authenticated", func() bool { return authCount(t, base) == auth+1 })
		time.Sleep(50 * time.Millisecond) // it is accepted right after

		const msg = "retry: same question"
		body := map[string]string{"message": msg, "session_id": first.SessionID, "client_msg_id": "m-retry-1"}
		pair := make([]result, 2)
		start := make(chan struct{})
		for i := range pair {
			wg.Go(func() {
				<-start
				pair[i] = post(base, tok, body)
			})
		}
		close(start)
		eventually(t, 5*time.Second, "both retries are authenticated", func() bool { return authCount(t, base) == auth+3 })
		queued := func() float64 {
			ms := scrapeMetrics(t, base)
			return ms.sum("fengda_queue_pending", "tenant", bankID) + ms.sum("fengda_queue_ack_pending", "tenant", bankID)
		}
		eventually(t, 5*time.Second, "the retried turn is in the queue", func() bool { return queued() >= 1 })
		time.Sleep(200 * time.Millisecond) // for the second publish, which shows only as not adding a message
		if n := queued(); n != 1 {
			t.Errorf("%v messages in the queue, want 1: the retry was published twice", n)
		}
		m.release()
		wg.Wait()

		var ids, answers []string
		for i, r := range pair {
			reply, turnID := finalReply(t, base, tok, r)
			t.Logf("retry %d: status %d, turn %s", i, r.status, turnID)
			ids, answers = append(ids, turnID), append(answers, reply.Answer)
		}
		again := post(base, tok, body)
		var third chatReply
		if again.err != nil || again.status != http.StatusOK || json.Unmarshal(again.body, &third) != nil {
			t.Fatalf("third retry: status %d, error %v, body %s", again.status, again.err, again.body)
		}
		ids, answers = append(ids, third.TurnID), append(answers, third.Answer)
		if ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
			t.Errorf("turn ids %q, want one turn", ids)
		}
		for i, a := range answers {
			if a != "echo: "+msg {
				t.Errorf("answer %d: %q, want %q", i, a, "echo: "+msg)
			}
		}

		h := history(t, base, tok, first.SessionID)
		want := []historyMessage{
			{Role: "user", Content: "retry: opening question", TurnID: first.TurnID},
			{Role: "assistant", Content: first.Answer, TurnID: first.TurnID},
			{Role: "user", Content: msg, TurnID: ids[0]},
			{Role: "assistant", Content: "echo: " + msg, TurnID: ids[0]},
		}
		if !slices.Equal(h, want) {
			t.Errorf("history %+v, want %+v", h, want)
		}
		if n := m.calls(msg); n != 1 {
			t.Errorf("the model was asked %d times, want once", n)
		}
		ms := scrapeMetrics(t, base)
		if spilled := ms.sum("fengda_spilled_turns_total", "tenant", bankID); spilled != 2 {
			t.Errorf("fengda_spilled_turns_total = %v, want 2: both retries spilled", spilled)
		}
		waitQueueIdle(t, base, bankID, shopID)
	})
}

// TestQueueFullHTTP bursts into a queue capped at two turns: the turns the queue
// refuses get 429 queue_full with Retry-After and are never answered; every turn
// accepted (200 or 202) is answered and stored once.
func TestQueueFullHTTP(t *testing.T) {
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		m := newEchoModel(t, 150*time.Millisecond, 200*time.Millisecond)
		base := testServerWith(t, spillEnv(m, b.Place(t).Env(), map[string]string{
			"FENGDA_DIALOGUE_WORKERS":          "1",
			"FENGDA_DIALOGUE_BACKLOG":          "1",
			"FENGDA_QUEUE_MAX_MSGS":            "2",
			"FENGDA_QUEUE_MAX_MSGS_PER_TENANT": "2",
			"FENGDA_QUEUE_MAX_WAIT":            "1s",
		}), modelArgs(t), nil)
		turns := newBurst(t, base, "full", 16, bankID)
		fireBurst(base, turns)()

		statuses := countStatuses(turns)
		t.Logf("%d turns: statuses %v", len(turns), statuses)
		var accepted []*burstTurn
		for _, tr := range turns {
			switch {
			case tr.err != nil:
				t.Errorf("%s: %v", tr.user, tr.err)
			case tr.status == http.StatusOK || tr.status == http.StatusAccepted:
				accepted = append(accepted, tr)
			case tr.status == http.StatusTooManyRequests:
				var e errorReply
				_ = json.Unmarshal(tr.body, &e)
				if e.Error.Code != "queue_full" {
					t.Errorf("%s: 429 with code %q, want queue_full", tr.user, e.Error.Code)
				}
				if ra, err := strconv.Atoi(tr.header.Get("Retry-After")); err != nil || ra < 1 {
					t.Errorf("%s: 429 with Retry-After %q, want a positive number of seconds", tr.user, tr.header.Get("Retry-After"))
				}
			default:
				t.Errorf("%s: status %d, body %s; want 200, 202 or 429", tr.user, tr.status, tr.body)
			}
		}
		if statuses[http.StatusTooManyRequests] == 0 {
			t.Fatal("no request got 429 queue_full")
		}
		settleBurst(t, base, m, accepted)
		for _, tr := range turns {
			if tr.status == http.StatusTooManyRequests && m.calls(tr.msg) != 0 {
				t.Errorf("%s: refused with 429, yet the model was asked %d times", tr.user, m.calls(tr.msg))
			}
		}
		if got := m.total(); got != len(accepted) {
			t.Errorf("the model was called %d times for %d accepted turns", got, len(accepted))
		}

		waitQueueIdle(t, base, bankID, shopID)
		ms := scrapeMetrics(t, base)
		if full, want := ms.sum("fengda_spilled_turns_total", "outcome", "full"), float64(statuses[http.StatusTooManyRequests]); full != want {
			t.Errorf("fengda_spilled_turns_total{outcome=full} = %v, want %v (the 429s)", full, want)
		}
		// Once the burst is worked off the queue takes turns again.
		after := newBurst(t, base, "after-full", 1, bankID)
		fireBurst(base, after)()
		if after[0].status != http.StatusOK {
			t.Errorf("after the burst: status %d, body %s", after[0].status, after[0].body)
		}
	})
}

// TestShutdownDrainsQueue stops the program (as SIGTERM does) while a burst that
// spilled is in flight: every request gets 200 or 202, the program returns within its
// shutdown timeout, and the program started again on the same queue and Redis answers
// every turn left queued, each stored once.
func TestShutdownDrainsQueue(t *testing.T) {
	requireRedis(t)
	queuetest.ForEach(t, func(t *testing.T, b queuetest.Backend) {
		m := newEchoModel(t, 150*time.Millisecond, 250*time.Millisecond)
		const shutdownTimeout = 3 * time.Second
		env := spillEnv(m, b.Place(t).Env(), redisEnv(t), map[string]string{
			"FENGDA_DIALOGUE_WORKERS":        "2",
			"FENGDA_DIALOGUE_BACKLOG":        "2",
			"FENGDA_QUEUE_MAX_WAIT":          "10s",
			"FENGDA_SERVER_SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
		})
		first := startProgram(t, env, modelArgs(t), nil)
		turns := newBurst(t, first.base, "shutdown", 30, bankID, shopID)
		auth := authCount(t, first.base)
		wait := fireBurst(first.base, turns)
		eventually(t, 10*time.Second, "every request is being handled", func() bool {
			return authCount(t, first.base) == auth+len(turns)
		})
		eventually(t, 5*time.Second, "turns are in the queue", func() bool {
			ms := scrapeMetrics(t, first.base)
			return ms.sum("fengda_queue_pending")+ms.sum("fengda_queue_ack_pending") > 0
		})
		err, took := first.stop()
		t.Logf("run returned %v after %v", err, took)
		if err != nil {
			t.Errorf("run: %v", err)
		}
		if limit := shutdownTimeout + 2*time.Second; took > limit {
			t.Errorf("run returned %v after the cancel, want within %v", took, limit)
		}
		wait()
		statuses := countStatuses(turns)
		t.Logf("%d turns: statuses %v", len(turns), statuses)
		for _, tr := range turns {
			if tr.err != nil || tr.status != http.StatusOK && tr.status != http.StatusAccepted {
				t.Errorf("%s: status %d, error %v, body %s; want 200 or 202", tr.user, tr.status, tr.err, tr.body)
			}
		}
		if statuses[http.StatusAccepted] == 0 {
			t.Error("no request got 202: the shutdown came after the burst was worked off")
		}
		answeredBefore := m.total()

		// The users' tokens, minted by the first run, are valid for the second: they are
		// signed with the tenants' keys.
		second := startProgram(t, env, modelArgs(t), nil)
		settleBurst(t, second.base, m, turns)
		t.Logf("the model answered %d turns before the restart, %d after", answeredBefore, m.total()-answeredBefore)
		if got := m.total(); got != len(turns) {
			t.Errorf("the model was called %d times for %d turns", got, len(turns))
		}
		waitQueueIdle(t, second.base, bankID, shopID)
	})
}

// TestTwoProcessesShareRedisAndNATS runs two programs on one Redis prefix and one
// stream of the NATS server: a conversation alternating between them keeps its context,
// and a burst sent to one of them is worked by both.
func TestTwoProcessesShareRedisAndNATS(t *testing.T) {
	requireRedis(t)
	m := newEchoModel(t, 150*time.Millisecond, 200*time.Millisecond)
	env := spillEnv(m, queuetest.Backends[1].Place(t).Env(), redisEnv(t), map[string]string{
		"FENGDA_DIALOGUE_WORKERS": "2",
		"FENGDA_DIALOGUE_BACKLOG": "2",
		"FENGDA_QUEUE_MAX_WAIT":   "5s",
	})
	a := testServerWith(t, env, modelArgs(t), nil)
	b := testServerWith(t, env, modelArgs(t), nil)

	t.Run("conversation alternates", func(t *testing.T) {
		tok := tokenFor(t, a, bankAPIKey, "alternating")
		questions := []string{"借记卡丢了怎么挂失?", "那补一张要多少钱?", "补卡要带什么证件?", "多久能拿到新卡?"}
		var sessionID string
		var want []historyMessage
		for i, q := range questions {
			base := []string{a, b}[i%2]
			body := map[string]string{"message": q}
			if sessionID != "" {
				body["session_id"] = sessionID
			}
			r := post(base, tok, body)
			var reply chatReply
			if r.err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, &reply) != nil {
				t.Fatalf("turn %d: status %d, error %v, body %s", i, r.status, r.err, r.body)
			}
			sessionID = reply.SessionID
			// The model got every earlier turn, whichever process answered it.
			var earlier []string
			for _, h := range want {
				earlier = append(earlier, h.Role+": "+h.Content)
			}
			if got := m.request(q); !slices.Equal(got, append(earlier, "user: "+q)) {
				t.Errorf("turn %d on process %d: the model got %q, want the earlier turns %q then the question", i, i%2, got, earlier)
			}
			want = append(want,
				historyMessage{Role: "user", Content: q, TurnID: reply.TurnID},
				historyMessage{Role: "assistant", Content: reply.Answer, TurnID: reply.TurnID})
		}
		for i, base := range []string{a, b} {
			if h := history(t, base, tok, sessionID); !slices.Equal(h, want) {
				t.Errorf("history on process %d: %+v, want %+v", i, h, want)
			}
		}
	})

	t.Run("burst to one is worked by both", func(t *testing.T) {
		turns := newBurst(t, a, "two", 40, shopID)
		fireBurst(a, turns)()
		statuses := countStatuses(turns)
		t.Logf("%d turns to process 0: statuses %v", len(turns), statuses)
		for _, tr := range turns {
			if tr.err != nil || tr.status != http.StatusOK && tr.status != http.StatusAccepted {
				t.Errorf("%s: status %d, error %v, body %s; want 200 or 202", tr.user, tr.status, tr.err, tr.body)
			}
		}
		settleBurst(t, b, m, turns) // the other process reads the same sessions
		waitQueueIdle(t, a, bankID, shopID)

		ma, mb := scrapeMetrics(t, a), scrapeMetrics(t, b)
		spilled := ma.sum("fengda_spilled_turns_total", "tenant", shopID)
		workedA := ma.sum("fengda_queued_turns_worked_total", "tenant", shopID)
		workedB := mb.sum("fengda_queued_turns_worked_total", "tenant", shopID)
		t.Logf("process 0 spilled %v turns; worked from the queue: %v by process 0, %v by process 1", spilled, workedA, workedB)
		if workedA == 0 || workedB == 0 {
			t.Errorf("fengda_queued_turns_worked_total: %v on process 0, %v on process 1; want both above 0", workedA, workedB)
		}
		if workedA+workedB != spilled {
			t.Errorf("worked %v queued turns in all, want %v: each spilled turn once", workedA+workedB, spilled)
		}
		// More requests to process 0 got their queued turn's answer while they waited
		// than process 0 worked: the rest came from process 1 over NATS.
		if answered := ma.sum("fengda_spilled_turns_total", "tenant", shopID, "outcome", "answered"); answered <= workedA {
			t.Errorf("process 0: %v spilled turns answered while waiting, %v worked by itself; want answers from process 1 too", answered, workedA)
		}
		if got := mb.sum("fengda_spilled_turns_total"); got != 0 {
			t.Errorf("process 1 spilled %v turns, yet it was sent none", got)
		}
	})
}

// echoModel stands in for an OpenAI-compatible chat completions API. It answers each
// request with "echo: " and the request's last message, after a delay between minDelay
// and maxDelay that is fixed for each message, and keeps what it was asked. A message
// starting with "hold:" is answered only after release. The vendor stand-in of
// model_test.go answers the same text to every message; these tests need to tell the
// answers apart.
type echoModel struct {
	srv                *httptest.Server
	minDelay, maxDelay time.Duration
	gate               chan struct{}
	release            func()

	mu   sync.Mutex
	asks map[string][][]string // by last message: each request's messages after the system one, as "role: content"
}

func newEchoModel(t *testing.T, minDelay, maxDelay time.Duration) *echoModel {
	t.Helper()
	m := &echoModel{minDelay: minDelay, maxDelay: maxDelay, gate: make(chan struct{}), asks: make(map[string][][]string)}
	m.release = sync.OnceFunc(func() { close(m.gate) })
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	t.Cleanup(m.release) // Close waits for held requests
	return m
}

func (m *echoModel) serve(w http.ResponseWriter, r *http.Request) {
	req, ok := openaitest.ReadRequest(w, r)
	if !ok {
		return
	}
	if len(req.Messages) < 2 || req.Stream {
		http.Error(w, `{"error":{"message":"not a chat completion this stand-in answers"}}`, http.StatusBadRequest)
		return
	}
	msg := req.Last()
	var asked []string
	for _, x := range req.Messages[1:] {
		asked = append(asked, x.Role+": "+x.Content)
	}
	m.mu.Lock()
	m.asks[msg] = append(m.asks[msg], asked)
	m.mu.Unlock()

	if strings.HasPrefix(msg, "hold:") {
		select {
		case <-m.gate:
		case <-r.Context().Done():
			return
		}
	}
	h := fnv.New32a()
	h.Write([]byte(msg))
	delay := m.minDelay
	if span := m.maxDelay - m.minDelay; span > 0 {
		delay += time.Duration(h.Sum32()) % span
	}
	select {
	case <-time.After(delay):
	case <-r.Context().Done():
		return
	}
	openaitest.WriteAnswer(w, "echo: "+msg)
}

// calls returns how many requests asked msg.
func (m *echoModel) calls(msg string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.asks[msg])
}

// total returns how many requests the model got.
func (m *echoModel) total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, a := range m.asks {
		n += len(a)
	}
	return n
}

// request returns the messages of the first request that asked msg.
func (m *echoModel) request(msg string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.asks[msg]) == 0 {
		return nil
	}
	return m.asks[msg][0]
}

// modelArgs returns the arguments that run the program with examples/openai.yaml, its
// model deadline raised from 1.5s to 5s: a loaded machine must not turn a slow answer
// into the fallback, which these tests would take for a wrong answer.
func modelArgs(t *testing.T) []string {
	t.Helper()
	return modelArgsWithin(t, "5s")
}

// modelArgsWithin is modelArgs with both model deadlines (to the answer and to the first
// token) set to deadline.
func modelArgsWithin(t *testing.T, deadline string) []string {
	t.Helper()
	data, err := os.ReadFile("examples/openai.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(string(data), " timeout: 1.5s", " timeout: "+deadline)
	if strings.Count(cfg, " timeout: "+deadline) != 2 {
		t.Fatal("examples/openai.yaml: the model deadlines are not where this test expects them")
	}
	path := filepath.Join(t.TempDir(), "openai.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-config", path}
}

// spillEnv is the environment of a program answering with m, rate limits off, with the
// other sets of variables on top.
func spillEnv(m *echoModel, sets ...map[string]string) map[string]string {
	env := map[string]string{
		"FENGDA_LLM_BASE_URL":      m.srv.URL + "/v1",
		"FENGDA_LLM_MODEL":         "test-model",
		"FENGDA_LLM_API_KEY":       "sk-test-key",
		"FENGDA_RATELIMIT_ENABLED": "false",
	}
	for _, s := range sets {
		maps.Copy(env, s)
	}
	return env
}

// redisEnv stores sessions in the machine's Redis under a prefix of the test's own,
// deleted when the test ends.
func redisEnv(t testing.TB) map[string]string {
	t.Helper()
	return map[string]string{
		"FENGDA_SESSION_STORE":            "redis",
		"FENGDA_SESSION_REDIS_URL":        "redis://127.0.0.1:6379/0",
		"FENGDA_SESSION_REDIS_KEY_PREFIX": redisPrefix(t),
	}
}

// redisPrefix returns a key prefix of the test's own, deleted when the test ends.
func redisPrefix(t testing.TB) string {
	t.Helper()
	prefix := "fdtest:" + rand.Text()[:10] + ":"
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
		defer rdb.Close()
		deletePrefix(rdb, prefix)
	})
	return prefix
}

// result is one HTTP response, or the error that stood for it.
type result struct {
	status int
	header http.Header
	body   []byte
	err    error
}

// httpClient is shared by the requests of the tests; safe to use from any goroutine.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// post sends POST /v1/chat with body as the user of token. It may run on any goroutine.
func post(base, token string, body map[string]string) result {
	b, _ := json.Marshal(body)
	return send("POST", base+"/v1/chat", token, b)
}

// get sends GET path as the user of token. It may run on any goroutine.
func get(base, token, path string) result {
	return send("GET", base+path, token, nil)
}

func send(method, url, token string, body []byte) result {
	header := map[string]string{}
	if token != "" {
		header["Authorization"] = "Bearer " + token
	}
	return sendHeader(method, url, header, body)
}

// sendHeader sends a JSON request with the given headers. It may run on any goroutine.
func sendHeader(method, url string, header map[string]string, body []byte) result {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: data, err: err}
}

// queuedReply is the body of a 202: a turn waiting in the spillover queue.
type queuedReply struct {
	Status    string `json:"status"`
	SessionID string `json:"session_id"`
	TurnID    string `json:"turn_id"`
}

// finalReply returns the answer to a chat request that got 200, or, for one that got
// 202, the answer GET /v1/turns/{turn_id} gives once it is ready; and the turn id the
// first response named.
func finalReply(t *testing.T, base, token string, r result) (chatReply, string) {
	t.Helper()
	var reply chatReply
	switch {
	case r.err != nil:
		t.Fatalf("chat: %v", r.err)
	case r.status == http.StatusOK:
		if err := json.Unmarshal(r.body, &reply); err != nil {
			t.Fatalf("chat: 200 with body %s: %v", r.body, err)
		}
		return reply, reply.TurnID
	case r.status == http.StatusAccepted:
		var q queuedReply
		if err := json.Unmarshal(r.body, &q); err != nil || q.Status != "queued" || q.TurnID == "" || q.SessionID == "" {
			t.Fatalf("chat: 202 with body %s, want status queued, session_id and turn_id", r.body)
		}
		reply := pollTurn(t, base, token, q, time.Now().Add(30*time.Second))
		return reply, q.TurnID
	}
	t.Fatalf("chat: status %d, body %s; want 200 or 202", r.status, r.body)
	return reply, ""
}

// pollTurn polls GET /v1/turns/{turn_id} until it answers 200 or deadline passes.
func pollTurn(t *testing.T, base, token string, q queuedReply, deadline time.Time) chatReply {
	t.Helper()
	for {
		r := get(base, token, "/v1/turns/"+q.TurnID)
		switch {
		case r.err != nil:
			t.Fatalf("GET /v1/turns/%s: %v", q.TurnID, r.err)
		case r.status == http.StatusOK:
			var reply chatReply
			if err := json.Unmarshal(r.body, &reply); err != nil {
				t.Fatalf("GET /v1/turns/%s: 200 with body %s: %v", q.TurnID, r.body, err)
			}
			if reply.TurnID != q.TurnID || reply.SessionID != q.SessionID {
				t.Errorf("GET /v1/turns/%s: turn %s of session %s, want turn %s of session %s",
					q.TurnID, reply.TurnID, reply.SessionID, q.TurnID, q.SessionID)
			}
			return reply
		case r.status != http.StatusAccepted:
			t.Fatalf("GET /v1/turns/%s: status %d, body %s; want 202 then 200", q.TurnID, r.status, r.body)
		case time.Now().After(deadline):
			t.Fatalf("GET /v1/turns/%s: still 202 at the deadline", q.TurnID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// historyMessage is one message of GET /v1/sessions/{id}/messages.
type historyMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	TurnID  string `json:"turn_id"`
}

// history returns the messages of a session of token's user.
func history(t *testing.T, base, token, sessionID string) []historyMessage {
	t.Helper()
	r := get(base, token, "/v1/sessions/"+sessionID+"/messages")
	var h struct {
		Messages []historyMessage `json:"messages"`
	}
	if r.err != nil || r.status != http.StatusOK || json.Unmarshal(r.body, &h) != nil {
		t.Fatalf("history of %s: status %d, error %v, body %s", sessionID, r.status, r.err, r.body)
	}
	return h.Messages
}

// burstTurn is one chat request of a burst: a user of its own asking a message of its
// own in a new session, and the response it got.
type burstTurn struct {
	user, tenant, token, msg string
	result
}

// newBurst mints n users named after label, spread over tenants in turn, each with a
// message of their own.
func newBurst(t *testing.T, base, label string, n int, tenants ...string) []*burstTurn {
	t.Helper()
	turns := make([]*burstTurn, n)
	for i := range turns {
		user, tn := fmt.Sprintf("%s-%d", label, i), tenants[i%len(tenants)]
		turns[i] = &burstTurn{
			user:   user,
			tenant: tn,
			token:  tokenFor(t, base, apiKeys[tn], user),
			msg:    fmt.Sprintf("%s question %d, asked by %s", label, i, user),
		}
	}
	return turns
}

// fireBurst sends every turn's request at once and returns a function that waits for
// the responses.
func fireBurst(base string, turns []*burstTurn) (wait func()) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, tr := range turns {
		wg.Go(func() {
			<-start
			tr.result = post(base, tr.token, map[string]string{"message": tr.msg})
		})
	}
	close(start)
	return wg.Wait
}

// countStatuses counts the turns by status; 0 counts transport errors.
func countStatuses(turns []*burstTurn) map[int]int {
	out := make(map[int]int)
	for _, tr := range turns {
		out[tr.status]++
	}
	return out
}

// settleBurst checks every turn that got 200 or 202 (polling on base for the latter):
// its answer is to its own message, its new session holds it once, and the model was
// asked it once.
func settleBurst(t *testing.T, base string, m *echoModel, turns []*burstTurn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, tr := range turns {
		var reply chatReply
		switch tr.status {
		case http.StatusOK:
			if err := json.Unmarshal(tr.body, &reply); err != nil {
				t.Errorf("%s: 200 with body %s", tr.user, tr.body)
				continue
			}
		case http.StatusAccepted:
			var q queuedReply
			if err := json.Unmarshal(tr.body, &q); err != nil || q.Status != "queued" || q.TurnID == "" || q.SessionID == "" {
				t.Errorf("%s: 202 with body %s, want status queued, session_id and turn_id", tr.user, tr.body)
				continue
			}
			reply = pollTurn(t, base, tr.token, q, deadline)
		default:
			continue
		}
		if want := "echo: " + tr.msg; reply.Answer != want || reply.Source != "llm" || reply.TurnID == "" {
			t.Errorf("%s: answer %q from %s in turn %q, want %q from llm", tr.user, reply.Answer, reply.Source, reply.TurnID, want)
		}
		want := []historyMessage{
			{Role: "user", Content: tr.msg, TurnID: reply.TurnID},
			{Role: "assistant", Content: reply.Answer, TurnID: reply.TurnID},
		}
		if h := history(t, base, tr.token, reply.SessionID); !slices.Equal(h, want) {
			t.Errorf("%s: session %s holds %+v, want %+v", tr.user, reply.SessionID, h, want)
		}
		if n := m.calls(tr.msg); n != 1 {
			t.Errorf("%s: the model was asked %d times, want once", tr.user, n)
		}
	}
}

// eventually polls cond until it holds, or fails the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
	}
}

// sample is one series of /metrics.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type metricSet []sample

// scrapeMetrics reads /metrics.
func scrapeMetrics(t *testing.T, base string) metricSet {
	t.Helper()
	r := get(base, "", "/metrics")
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d, error %v", r.status, r.err)
	}
	var out metricSet
	for line := range strings.Lines(string(r.body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := cutLast(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		s := sample{name: series, labels: map[string]string{}, value: v}
		if name, rest, ok := strings.Cut(series, "{"); ok {
			s.name = name
			// Label values here are tenant ids and simple words: no escaped quotes.
			for pair := range strings.SplitSeq(strings.TrimSuffix(rest, "}"), `",`) {
				k, v, _ := strings.Cut(pair, "=")
				if k != "" {
					s.labels[k] = strings.Trim(v, `"`)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// sum adds the series of name whose labels include the given name, value pairs.
func (ms metricSet) sum(name string, labels ...string) float64 {
	total := 0.0
next:
	for _, s := range ms {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		total += s.value
	}
	return total
}

// has reports whether a series of name has the given label pairs.
func (ms metricSet) has(name string, labels ...string) bool {
next:
	for _, s := range ms {
		if s.name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return true
	}
	return false
}

// authCount is how many requests the server has authenticated (or refused to).
func authCount(t *testing.T, base string) int {
	t.Helper()
	return int(scrapeMetrics(t, base).sum("fengda_stage_duration_seconds_count", "stage", "auth"))
}

// waitQueueIdle waits until the queue reports, for each tenant, nothing pending,
// nothing unacknowledged and nothing delivered twice.
func waitQueueIdle(t *testing.T, base string, tenants ...string) {
	t.Helper()
	var last string
	idle := func() bool {
		ms := scrapeMetrics(t, base)
		var b strings.Builder
		ok := true
		for _, tn := range tenants {
			for _, name := range []string{"fengda_queue_pending", "fengda_queue_ack_pending", "fengda_queue_redelivered"} {
				v := ms.sum(name, "tenant", tn)
				fmt.Fprintf(&b, "%s{tenant=%s}=%v ", name, tn, v)
				if v != 0 || !ms.has(name, "tenant", tn) {
					ok = false
				}
			}
		}
		last = b.String()
		return ok
	}
	for deadline := time.Now().Add(10 * time.Second); !idle(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the queue did not settle within 10s: %s", last)
			return
		}
	}
}
