package main

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fengda-ai/fengda/tenant"
)

// benchTenant is the tenant every Fengda under test serves.
const benchTenant = "qinghe-bank" // the tenant the bank knowledge base belongs to

// fengdaOpts are the knobs a scenario sets on the Fengda under test.
type fengdaOpts struct {
	bin      string // the binary; empty for the one under test
	store    string // memory | redis
	model    string // address of the model stand-in; empty for the built-in FAQ engine
	workers  int
	backlog  int
	queue    string // off | embedded
	maxWait  time.Duration
	idle     time.Duration // the model stream's idle timeout
	turn     time.Duration // server.request_timeout, when longer than the default 10s
	logLevel string
	// rateStore is ratelimit.store: local (the default) or redis.
	rateStore string
	// tenants are the tenants served; empty, benchTenant alone with a limit out of the
	// way (still checked on every request).
	tenants []benchTenantConf
}

// benchTenantConf is one tenant of a Fengda under test.
type benchTenantConf struct {
	id    tenant.ID
	kb    string // under kb/
	limit tenant.RateLimit
}

// defaultTenants is benchTenant with a limit out of the way.
var defaultTenants = []benchTenantConf{{id: benchTenant, kb: "bank-zh.yaml", limit: tenant.RateLimit{RPS: 10000000, Burst: 10000000}}}

// fengdaRun is one Fengda child with what is needed to talk to it.
type fengdaRun struct {
	*proc
	secrets  map[tenant.ID]string
	prefix   string // its Redis key prefix
	admin    string // its pprof listener, when -cpuprofile or -memprofile asks for one
	registry *tenant.Registry
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startFengda writes a config for o and starts the binary under test with it.
func (b *bench) startFengda(name string, o fengdaOpts) (*fengdaRun, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	prefix := "fdbench:" + randomHex(4) + ":"
	engine := func(kb string) string {
		kb = filepath.Join(b.root, "kb", kb)
		if o.model == "" {
			return fmt.Sprintf("kind: faq\n      kb: %q", kb)
		}
		idle := o.idle
		if idle == 0 {
			idle = 2 * time.Second
		}
		return fmt.Sprintf(`kind: openai
      kb: %q
      llm:
        base_url: "http://%s/v1"
        model: bench-model
        timeout: 5s
        first_token_timeout: 5s
        idle_timeout: %s
        max_concurrent: 100000
        max_retries: 0`, kb, o.model, idle)
	}
	confs := o.tenants
	if len(confs) == 0 {
		confs = defaultTenants
	}
	secrets := make(map[tenant.ID]string, len(confs))
	var tenantsYAML strings.Builder
	var regConfs []tenant.Config
	for _, tc := range confs {
		secret := "bench-" + randomHex(24)
		secrets[tc.id] = secret
		l := tc.limit
		fmt.Fprintf(&tenantsYAML, `  - id: %s
    keys:
      - kid: bench
        alg: HS256
        secret: {value: %q}
    rate_limit: {rps: %s, burst: %d, user_rps: %s, user_burst: %d}
    engine:
      %s
`, tc.id, secret, strconv.FormatFloat(l.RPS, 'f', -1, 64), l.Burst, strconv.FormatFloat(l.UserRPS, 'f', -1, 64), l.UserBurst, engine(tc.kb))
		regConfs = append(regConfs, tenant.Config{
			ID:   string(tc.id),
			Keys: []tenant.KeyConfig{{KID: "bench", Alg: "HS256", Secret: tenant.Secret{Value: secret}}},
		})
	}
	rateStore := o.rateStore
	if rateStore == "" {
		rateStore = "local"
	}
	queue, maxWait := o.queue, o.maxWait
	if queue == "" {
		queue = "off"
	}
	if maxWait == 0 {
		maxWait = 30 * time.Second
	}
	turn := o.turn
	if turn == 0 {
		turn = 10 * time.Second
	}
	level := o.logLevel
	if level == "" {
		level = b.logLevel
	}
	cfg := fmt.Sprintf(`# Written by the bench for one run.
server:
  addr: %q
  request_timeout: %s
  shutdown_timeout: 20s
session:
  store: %s
  redis:
    url: %q
    key_prefix: %q
dialogue:
  workers: %d
  backlog: %d
queue:
  mode: %s
  data_dir: %q
  stream: %q
  subject: %q
  max_wait: %s
  duplicates: 2m
  ack_wait: 60s
ratelimit:
  store: %s
log:
  level: %s
tenants:
%s`, addr, turn, o.store, b.redisURL, prefix, o.workers, o.backlog, queue, filepath.Join(b.dir, name+"-jetstream"),
		"BENCH_"+randomHex(4), "bench."+randomHex(4), maxWait, rateStore, level, tenantsYAML.String())
	admin := ""
	if b.cpuprofile != "" || b.memprofile != "" {
		if admin, err = freeAddr(); err != nil {
			return nil, err
		}
		cfg = strings.Replace(cfg, "server:\n", fmt.Sprintf("server:\n  admin_addr: %q\n", admin), 1)
	}
	path := filepath.Join(b.dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := start(name, cmp.Or(o.bin, b.fengda), []string{"-config", path}, b.fengdaEnv, addr, "/readyz", filepath.Join(b.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	reg, err := tenant.NewRegistry(regConfs, os.Getenv)
	if err != nil {
		p.stop()
		return nil, err
	}
	return &fengdaRun{proc: p, secrets: secrets, prefix: prefix, admin: admin, registry: reg}, nil
}

// token mints user i's token of benchTenant, valid for the whole run.
func (f *fengdaRun) token(i int) string {
	return f.tokenOf(benchTenant, "bench-user-"+strconv.Itoa(i))
}

// tokenOf mints a token of user of tenant t, valid for the whole run.
func (f *fengdaRun) tokenOf(t tenant.ID, user string) string {
	tok, _, err := f.registry.Mint(t, user, 12*time.Hour, time.Now())
	if err != nil {
		panic(err) // the registry was built above from a valid config
	}
	return tok
}

// messages are what the virtual users ask, in turn: a bank customer's questions.
var messages = func() [][]byte {
	qs := []string{
		"信用卡丢了怎么办?", "手机银行一天能转多少钱", "给他行转账要手续费吗", "怎么买你们的理财",
		"房贷提前还款要违约金吗", "忘记登录密码了怎么办", "储蓄卡年费怎么收", "外币可以在网上换吗",
		"信用卡账单日可以改吗", "怎么开通短信通知", "定期存款可以提前取吗", "网点几点开门",
		"信用卡额度怎么提升", "转账转错了能撤回吗", "怎么注销银行卡", "境外刷卡有手续费吗",
	}
	out := make([][]byte, len(qs))
	for i, q := range qs {
		out[i], _ = json.Marshal(q)
	}
	return out
}()

// turnsPerSession is how many turns a virtual user has in one conversation before it
// starts another, as a real customer does.
const turnsPerSession = 10

// chatUser talks to Fengda: POST /v1/chat, JSON or SSE, continuing its session.
type chatUser struct {
	c       *conn
	token   string
	session string
	turns   int
	next    int
	stream  bool
}

func (u *chatUser) close() { u.c.close() }

func (u *chatUser) exchange() outcome {
	if u.turns == turnsPerSession {
		u.session, u.turns = "", 0
	}
	msg := messages[u.next%len(messages)]
	u.next++
	body := make([]byte, 0, 128)
	body = append(body, `{"message":`...)
	body = append(body, msg...)
	if u.session != "" {
		body = append(body, `,"session_id":"`...)
		body = append(body, u.session...)
		body = append(body, '"')
	}
	body = append(body, '}')
	if u.stream {
		st, ttft, _, err := u.c.stream(request("POST", "/v1/chat", u.token, "text/event-stream", body))
		if st == 200 && err == nil {
			// The session id comes in the meta event; a streaming user starts a new
			// conversation each turn rather than parse it.
			return outcome{ok: true, status: st, ttft: ttft}
		}
		return outcome{status: st, err: err}
	}
	st, err := u.c.do(request("POST", "/v1/chat", u.token, "", body))
	if err != nil || st != 200 {
		return outcome{status: st, err: err}
	}
	if u.session == "" {
		u.session = jsonField(u.c.body.Bytes(), "session_id")
	}
	u.turns++
	return outcome{ok: true, status: st}
}

// helloUser sends the hello baseline a body of a chat turn's size.
type helloUser struct {
	c *conn
}

func (u *helloUser) close() { u.c.close() }

func (u *helloUser) exchange() outcome {
	msg := messages[0]
	body := append(append([]byte(`{"message":`), msg...), `,"session_id":"s-0123456789abcdef"}`...)
	st, err := u.c.do(request("POST", "/hello", "", "", body))
	return outcome{ok: err == nil && st == 200, status: st, err: err}
}

// modelUser calls an OpenAI-compatible API directly (the model stand-in, or the proxy
// in front of it), as Fengda does for a turn.
type modelUser struct {
	c      *conn
	stream bool
	next   int
}

func (u *modelUser) close() { u.c.close() }

func (u *modelUser) exchange() outcome {
	msg := messages[u.next%len(messages)]
	u.next++
	body := fmt.Appendf(nil, `{"model":"bench-model","stream":%t,"messages":[{"role":"system","content":"你是青禾银行的在线客服。"},{"role":"user","content":%s}]}`, u.stream, msg)
	req := request("POST", "/v1/chat/completions", "", "", body)
	if u.stream {
		st, ttft, _, err := u.c.stream(req)
		return outcome{ok: st == 200 && err == nil, status: st, ttft: ttft, err: err}
	}
	st, err := u.c.do(req)
	return outcome{ok: err == nil && st == 200, status: st, err: err}
}
