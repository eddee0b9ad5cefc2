package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/nlpclient/openai/openaitest"
	"github.com/redis/go-redis/v9"
)

// The canary stress test: two tenants of 50 users each, every message carrying a canary
// that names its tenant, user and session, 20,000 turns (FENGDA_STRESS_TURNS) through the
// model engine with Redis as the store, some streamed, some cancelled by their client,
// while the store's connections are cut mid-run. The model stand-in echoes every user
// message of the prompt it gets, so a history mixed up between tenants, users or
// sessions would show in the replies. No reply, stored history or Redis value may hold
// a canary of anyone else, and no log line may hold any.

// canaryPattern matches a canary: tenant letter, user, session index, sequence number.
var canaryPattern = regexp.MustCompile(`CNRY([AB])(\d{3})S(\d)N(\d{5})`)

type canaryOwner struct {
	tenant  string // "A" or "B"
	user    int
	session int
}

func (o canaryOwner) canary(seq int) string {
	return fmt.Sprintf("CNRY%s%03dS%dN%05d", o.tenant, o.user, o.session, seq)
}

// foreignCanaries returns the canaries in text that are not owner's.
func foreignCanaries(text string, owner canaryOwner) []string {
	var out []string
	for _, m := range canaryPattern.FindAllStringSubmatch(text, -1) {
		u, _ := strconv.Atoi(m[2])
		s, _ := strconv.Atoi(m[3])
		if (canaryOwner{m[1], u, s}) != owner {
			out = append(out, m[0])
		}
	}
	return out
}

// stressModel is an OpenAI-compatible stand-in that answers with every user message of
// its prompt, as JSON or as a stream in three pieces.
type stressModel struct {
	srv   *httptest.Server
	calls atomic.Int64
}

func newStressModel(t *testing.T) *stressModel {
	m := &stressModel{}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *stressModel) serve(w http.ResponseWriter, r *http.Request) {
	m.calls.Add(1)
	req, ok := openaitest.ReadRequest(w, r)
	if !ok {
		return
	}
	var users []string
	for _, msg := range req.Messages {
		if msg.Role == "user" {
			users = append(users, msg.Content)
		}
	}
	answer := "seen: " + strings.Join(users, " | ")
	if !req.Stream {
		openaitest.WriteAnswer(w, answer)
		return
	}
	st := openaitest.NewStream(w)
	third := len(answer) / 3
	for _, piece := range []string{answer[:third], answer[third : 2*third], answer[2*third:]} {
		if st.Delta(piece) != nil {
			return
		}
	}
	st.Done()
}

// cutProxy forwards TCP connections to a server and can cut them all at once.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cuts   atomic.Int32
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every connection through the proxy; new ones are still accepted.
func (p *cutProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c := range p.conns {
		c.Close()
	}
	p.cuts.Add(1)
	return n
}

func TestCanaryStress(t *testing.T) {
	requireRedis(t)
	turns := 20000
	if v := os.Getenv("FENGDA_STRESS_TURNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("FENGDA_STRESS_TURNS=%q: want a number of at least 100", v)
		}
		turns = n
	}
	const usersPerTenant = 50
	perUser := turns / (2 * usersPerTenant)

	m := newStressModel(t)
	proxy := newCutProxy(t, "127.0.0.1:6379")
	renv := redisEnv(t)
	env := map[string]string{
		"FENGDA_LLM_BASE_URL":                m.srv.URL + "/v1",
		"FENGDA_LLM_MODEL":                   "stress-model",
		"FENGDA_LLM_API_KEY":                 "sk-test-key",
		"FENGDA_RATELIMIT_ENABLED":           "false",
		"FENGDA_SESSION_STORE":               "redis",
		"FENGDA_SESSION_REDIS_URL":           "redis://" + proxy.ln.Addr().String() + "/0",
		"FENGDA_SESSION_REDIS_KEY_PREFIX":    renv["FENGDA_SESSION_REDIS_KEY_PREFIX"],
		"FENGDA_SESSION_REDIS_READ_TIMEOUT":  "2s",
		"FENGDA_SESSION_REDIS_WRITE_TIMEOUT": "2s",
		"FENGDA_LOG_LEVEL":                   "info",
	}
	prog, logs := startLogged(t, env, modelArgs(t), nil)
	base := prog.base

	type user struct {
		owner    canaryOwner // session set per turn
		tenantID string
		token    string
		sessions [2]string
	}
	var users []*user
	for _, tn := range []struct{ letter, id, key string }{{"A", "qinghe-bank", bankAPIKey}, {"B", "northwind-shop", shopAPIKey}} {
		for u := range usersPerTenant {
			users = append(users, &user{
				owner:    canaryOwner{tenant: tn.letter, user: u},
				tenantID: tn.id,
				token:    tokenFor(t, base, tn.key, fmt.Sprintf("stress-user-%03d", u)), // same user ids in both tenants
			})
		}
	}

	var (
		done      atomic.Int64
		cancelled atomic.Int64
		streamed  atomic.Int64
		statusMu  sync.Mutex
		statuses  = map[int]int{}
		leaksMu   sync.Mutex
		leaks     []string
	)
	leak := func(format string, args ...any) {
		leaksMu.Lock()
		defer leaksMu.Unlock()
		if len(leaks) < 20 {
			leaks = append(leaks, fmt.Sprintf(format, args...))
		}
	}
	count := func(status int) {
		statusMu.Lock()
		statuses[status]++
		statusMu.Unlock()
	}
	// The store's connections are cut three times during the run.
	cutAt := map[int64]bool{int64(turns) / 4: true, int64(turns) / 2: true, 3 * int64(turns) / 4: true}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}
	start := time.Now()

	var wg sync.WaitGroup
	for ui, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ui), 7))
			for i := range perUser {
				if n := done.Add(1); cutAt[n] {
					t.Logf("turn %d: cut %d connections to Redis", n, proxy.cut())
				}
				owner := u.owner
				owner.session = i % 2
				body := map[string]string{"message": "请问信用卡怎么办理 " + owner.canary(i)}
				if sid := u.sessions[owner.session]; sid != "" {
					body["session_id"] = sid
				}
				raw, _ := json.Marshal(body)
				ctx, cancel := context.WithCancel(context.Background())
				cancelling := rng.IntN(40) == 0
				if cancelling {
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(20))*time.Millisecond)
				}
				stream := rng.IntN(10) == 0
				req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat", strings.NewReader(string(raw)))
				req.Header.Set("Authorization", "Bearer "+u.token)
				req.Header.Set("Content-Type", "application/json")
				if stream {
					req.Header.Set("Accept", "text/event-stream")
					streamed.Add(1)
				}
				resp, err := client.Do(req)
				if err != nil {
					cancel()
					if cancelling && errors.Is(err, context.DeadlineExceeded) {
						cancelled.Add(1)
						continue
					}
					leak("user %v turn %d: %v", owner, i, err)
					continue
				}
				reply, status := readStressReply(resp, stream)
				resp.Body.Close()
				cancel()
				if cancelling && ctx.Err() != nil {
					cancelled.Add(1)
					continue
				}
				count(status)
				if status != http.StatusOK {
					continue
				}
				if f := foreignCanaries(reply.Answer, owner); len(f) > 0 {
					leak("reply to %v turn %d holds %v", owner, i, f)
				}
				if !strings.Contains(reply.Answer, owner.canary(i)) && reply.Source == "llm" {
					leak("reply to %v turn %d lacks its own canary: %q", owner, i, reply.Answer)
				}
				if u.sessions[owner.session] == "" {
					u.sessions[owner.session] = reply.SessionID
				} else if reply.SessionID != u.sessions[owner.session] {
					leak("turn of %v answered in session %s, want %s", owner, reply.SessionID, u.sessions[owner.session])
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d turns in %s (%.0f/s): statuses %v, %d cancelled by their client, %d streamed, model called %d times, %d cuts",
		done.Load(), elapsed.Round(time.Millisecond), float64(done.Load())/elapsed.Seconds(), statuses, cancelled.Load(), streamed.Load(), m.calls.Load(), proxy.cuts.Load())
	for status := range statuses {
		if status != http.StatusOK && status != http.StatusServiceUnavailable && status != http.StatusGatewayTimeout {
			t.Errorf("%d answers with status %d", statuses[status], status)
		}
	}
	if statuses[http.StatusOK] < turns/2 {
		t.Errorf("only %d of %d turns answered", statuses[http.StatusOK], turns)
	}

	// Every stored history, read back through the API by its owner.
	owners := map[string]canaryOwner{}
	for _, u := range users {
		for s, sid := range u.sessions {
			if sid == "" {
				continue
			}
			owner := u.owner
			owner.session = s
			owners[sid] = owner
			msgs := history(t, base, u.token, sid)
			for _, h := range msgs {
				if f := foreignCanaries(h.Content, owner); len(f) > 0 {
					leak("stored history of %v holds %v", owner, f)
				}
			}
		}
	}
	// And every value under the test's prefix in Redis, by the session its key names.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	ctx := context.Background()
	keyPattern := regexp.MustCompile(`\{([a-z0-9-]+):([A-Za-z0-9_-]+)\}`)
	iter := rdb.Scan(ctx, 0, renv["FENGDA_SESSION_REDIS_KEY_PREFIX"]+"*", 500).Iterator()
	scanned, found := 0, 0
	for iter.Next(ctx) {
		key := iter.Val()
		km := keyPattern.FindStringSubmatch(key)
		if km == nil {
			continue
		}
		owner, known := owners[km[2]]
		dump, err := redisText(ctx, rdb, key)
		if err != nil {
			continue // expired meanwhile
		}
		scanned++
		cs := canaryPattern.FindAllString(dump, -1)
		found += len(cs)
		if !known {
			// A session whose first reply never reached its client (cancelled): its
			// canaries must still be of one owner.
			if len(cs) > 0 {
				first := canaryPattern.FindStringSubmatch(cs[0])
				u, _ := strconv.Atoi(first[2])
				s, _ := strconv.Atoi(first[3])
				owner = canaryOwner{first[1], u, s}
			}
		}
		if f := foreignCanaries(dump, owner); len(f) > 0 {
			leak("redis key %s (%v) holds %v", key, owner, f)
		}
		if tid := map[string]string{"A": "qinghe-bank", "B": "northwind-shop"}[owner.tenant]; len(cs) > 0 && km[1] != tid {
			leak("redis key %s holds canaries of tenant %s", key, owner.tenant)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	// And every line of the log, which never holds message text: no canary at all.
	entries := logs.entries(t)
	for _, e := range entries {
		if c := canaryPattern.FindString(e.raw); c != "" {
			leak("log line holds canary %s: %s", c, e.raw)
		}
	}
	t.Logf("checked %d sessions through the API, %d Redis keys (%d canaries in them) and %d log lines", len(owners), scanned, found, len(entries))
	if scanned == 0 || found == 0 {
		t.Errorf("%d Redis keys checked, %d canaries read in them: the check of stored values saw nothing", scanned, found)
	}
	for _, l := range leaks {
		t.Error(l)
	}
}

// redisText returns the value of key as plain text, whatever its type, so that a
// pattern can be searched in it (DUMP would give the compressed serialised form).
func redisText(ctx context.Context, rdb *redis.Client, key string) (string, error) {
	typ, err := rdb.Type(ctx, key).Result()
	if err != nil {
		return "", err
	}
	var parts []string
	switch typ {
	case "string":
		v, err := rdb.Get(ctx, key).Result()
		return v, err
	case "list":
		parts, err = rdb.LRange(ctx, key, 0, -1).Result()
	case "hash":
		var m map[string]string
		m, err = rdb.HGetAll(ctx, key).Result()
		for k, v := range m {
			parts = append(parts, k, v)
		}
	case "set":
		parts, err = rdb.SMembers(ctx, key).Result()
	case "zset":
		parts, err = rdb.ZRange(ctx, key, 0, -1).Result()
	case "none":
		return "", redis.Nil
	default:
		return "", fmt.Errorf("redis key %s: type %s not read by the test", key, typ)
	}
	return strings.Join(parts, "\n"), err
}

// stressReply is what the stress test reads of a reply.
type stressReply struct {
	SessionID string `json:"session_id"`
	Answer    string `json:"answer"`
	Source    string `json:"source"`
}

// readStressReply reads a JSON reply, or a stream up to its done or error event.
func readStressReply(resp *http.Response, stream bool) (stressReply, int) {
	var r stressReply
	if !stream || resp.StatusCode != http.StatusOK {
		if json.NewDecoder(resp.Body).Decode(&r) != nil {
			return r, resp.StatusCode
		}
		return r, resp.StatusCode
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "done":
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &r) != nil {
				return r, 0
			}
			return r, http.StatusOK
		case strings.HasPrefix(line, "data: ") && event == "error":
			var e errorReply
			_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e)
			return r, map[string]int{"unavailable": 503, "timeout": 504, "overloaded": 503, "incomplete": 502}[e.Error.Code]
		}
	}
	return r, 0
}
