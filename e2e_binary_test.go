package main

// End-to-end tests of the built binary's operations surface: its version, its health
// check, the admin listener, and the shutdown on SIGTERM with JSON turns and SSE streams
// in flight against a model that answers only when the test lets it.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fengda-ai/fengda/nlpclient/openai/openaitest"
)

// testVersion is linked into the binary the tests build.
const testVersion = "v0.0.0-shutdown-test"

// TestBinary builds the program once and runs its operations tests against the binary.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "fengda")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+testVersion, "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("version", func(t *testing.T) { testVersionCommand(t, bin) })
	t.Run("shutdown drains in order", func(t *testing.T) { testShutdownInOrder(t, bin) })
	t.Run("second signal exits at once", func(t *testing.T) { testSecondSignal(t, bin) })
}

func testVersionCommand(t *testing.T, bin string) {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("fengda version: %v", err)
	}
	if !strings.HasPrefix(string(out), "fengda "+testVersion+" go") {
		t.Errorf("fengda version = %q, want fengda %s and the Go version", out, testVersion)
	}
}

// testShutdownInOrder keeps JSON turns and SSE streams in flight, sends SIGTERM, and
// checks the order: /readyz answers 503 within 100ms while the server keeps serving
// for server.drain_delay; then the listener closes; then every turn in flight is
// answered (JSON 200; streams done, then a shutdown event) and stored once; then the
// process exits 0 within the grace period, its last log line written.
func testShutdownInOrder(t *testing.T, bin string) {
	requireRedis(t)
	const (
		drainDelay      = 2 * time.Second
		shutdownTimeout = 10 * time.Second
		grace           = drainDelay + shutdownTimeout // what a supervisor would allow
		jsonTurns       = 4
		streams         = 3
	)
	m := newGatedModel(t)
	env := map[string]string{
		"FENGDA_LLM_BASE_URL":            m.srv.URL + "/v1",
		"FENGDA_LLM_MODEL":               "test-model",
		"FENGDA_LLM_API_KEY":             "sk-shutdown-test-key",
		"FENGDA_RATELIMIT_ENABLED":       "false",
		"FENGDA_QUEUE_DATA_DIR":          t.TempDir(),
		"FENGDA_SERVER_DRAIN_DELAY":      drainDelay.String(),
		"FENGDA_SERVER_SHUTDOWN_TIMEOUT": shutdownTimeout.String(),
		"FENGDA_SERVER_ADMIN_ADDR":       "127.0.0.1:0",
	}
	maps.Copy(env, redisEnv(t))
	p := startBinary(t, bin, env, patientModelArgs(t)...)
	base := "http://" + p.addr

	// Operations endpoints while it serves.
	if r := send("GET", base+"/healthz", "", nil); r.status != 200 || !strings.Contains(string(r.body), `"version":"`+testVersion+`"`) {
		t.Errorf("GET /healthz = %d %s, want 200 with version %s", r.status, r.body, testVersion)
	}
	if out, err := exec.Command(bin, "healthcheck", "-addr", p.addr).CombinedOutput(); err != nil {
		t.Errorf("fengda healthcheck against a serving process: %v, %s", err, out)
	}
	if r := send("GET", "http://"+p.admin+"/debug/pprof/cmdline", "", nil); r.status != 200 {
		t.Errorf("GET /debug/pprof/cmdline on the admin listener = %d %v, want 200", r.status, r.err)
	}
	if r := send("GET", base+"/debug/pprof/cmdline", "", nil); r.status != 404 {
		t.Errorf("GET /debug/pprof/cmdline on the public listener = %d, want 404", r.status)
	}

	// Turns in flight: JSON and streams, each its own user and session.
	type turn struct {
		user, tenant, token, msg string
		stream                   bool
		res                      result
		events                   []shutdownEvent
	}
	var turns []*turn
	for i := range jsonTurns + streams {
		tn := []string{bankID, shopID}[i%2]
		tr := &turn{user: fmt.Sprintf("drain-%d", i), tenant: tn, stream: i >= jsonTurns}
		tr.token = tokenFor(t, base, apiKeys[tn], tr.user)
		tr.msg = fmt.Sprintf("in-flight question %d from %s", i, tr.user)
		turns = append(turns, tr)
	}
	var wg sync.WaitGroup
	fire := func(tr *turn) {
		wg.Go(func() {
			if tr.stream {
				tr.events, tr.res.err = postStreamEvents(base, tr.token, tr.msg)
				return
			}
			tr.res = post(base, tr.token, map[string]string{"message": tr.msg})
		})
	}
	for _, tr := range turns {
		fire(tr)
	}
	eventually(t, 20*time.Second, "every turn reaches the model", func() bool { return m.asked() == len(turns) })
	late := &turn{user: "drain-late", tenant: bankID, msg: "a question sent during the drain delay"}
	late.token = tokenFor(t, base, apiKeys[bankID], late.user)

	// SIGTERM, then /readyz: 503 at once.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	signaled := time.Now()
	probe := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var flip time.Duration
	for {
		resp, err := probe.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz after SIGTERM: %v (the listener closed before server.drain_delay)", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			flip = time.Since(signaled)
			break
		}
		if time.Since(signaled) > 5*time.Second {
			t.Fatalf("/readyz still %d 5s after SIGTERM", resp.StatusCode)
		}
	}
	t.Logf("/readyz answered 503 %v after SIGTERM", flip)
	if flip > 100*time.Millisecond {
		t.Errorf("/readyz answered 503 %v after SIGTERM, want within 100ms", flip)
	}

	// Still serving during the drain delay: a turn sent now is taken and answered too.
	turns = append(turns, late)
	fire(late)
	eventually(t, 5*time.Second, "the late turn reaches the model", func() bool { return m.asked() == len(turns) })
	if time.Since(signaled) >= drainDelay {
		t.Fatalf("the late turn was taken %v after SIGTERM, past server.drain_delay %v: the test is too slow to show it", time.Since(signaled), drainDelay)
	}

	// Then the listener closes, with every turn still in flight.
	eventually(t, drainDelay+5*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	closed := time.Since(signaled)
	t.Logf("listener closed %v after SIGTERM", closed)
	if closed < drainDelay {
		t.Errorf("listener closed %v after SIGTERM, before server.drain_delay %v", closed, drainDelay)
	}
	if p.exited() {
		t.Fatal("the process exited with turns in flight")
	}
	m.release()

	wg.Wait()
	code := p.wait(grace + 5*time.Second)
	took := p.exitAt.Sub(signaled)
	t.Logf("exit status %d, %v after SIGTERM", code, took)
	if code != 0 {
		t.Errorf("exit status %d, want 0", code)
	}
	if took > grace {
		t.Errorf("exited %v after SIGTERM, want within the grace period %v", took, grace)
	}

	// Every turn answered, once, with its own message.
	answered := make(map[*turn]chatReply)
	for _, tr := range turns {
		switch {
		case tr.stream:
			var names []string
			for _, ev := range tr.events {
				names = append(names, ev.name)
			}
			n := len(names)
			if tr.res.err != nil || n < 3 || names[0] != "meta" || names[n-2] != "done" || names[n-1] != "shutdown" {
				t.Errorf("%s: stream events %v, error %v; want meta … done, shutdown", tr.user, names, tr.res.err)
				continue
			}
			var r chatReply
			if err := json.Unmarshal([]byte(tr.events[n-2].data), &r); err != nil {
				t.Errorf("%s: done event %s: %v", tr.user, tr.events[n-2].data, err)
				continue
			}
			answered[tr] = r
		default:
			var r chatReply
			if tr.res.err != nil || tr.res.status != http.StatusOK || json.Unmarshal(tr.res.body, &r) != nil {
				t.Errorf("%s: status %d, error %v, body %s; want 200 with the answer", tr.user, tr.res.status, tr.res.err, tr.res.body)
				continue
			}
			answered[tr] = r
		}
		if r := answered[tr]; r.Source != "llm" || !strings.Contains(r.Answer, "answer to: "+tr.msg) {
			t.Errorf("%s: answer %q from %s, want the model's answer to its own message", tr.user, r.Answer, r.Source)
		}
	}
	if got := m.asked(); got != len(turns) {
		t.Errorf("the model was asked %d times for %d turns", got, len(turns))
	}

	// Stored once: the store outlives the process; a new one reads it.
	again := startProgram(t, env, modelArgs(t), nil)
	for tr, r := range answered {
		msgs := history(t, again.base, tr.token, r.SessionID)
		var got []string
		for _, hm := range msgs {
			got = append(got, hm.Role+" "+hm.TurnID)
		}
		if want := []string{"user " + r.TurnID, "assistant " + r.TurnID}; !slices.Equal(got, want) {
			t.Errorf("%s: stored %v, want %v", tr.user, got, want)
		}
	}

	// The log: flushed to its end, and no secret in it.
	logs := p.logs()
	if !strings.Contains(logs, `"msg":"fengda stopped"`) {
		t.Error(`the log does not end with "fengda stopped": not flushed`)
	}
	if !strings.Contains(logs, `"msg":"fengda starting"`) || !strings.Contains(logs, `"api_key":"env:FENGDA_LLM_API_KEY"`) {
		t.Error("no start-up log line with the effective config")
	}
	for _, secret := range []string{"sk-shutdown-test-key", "DEMO-ONLY-qinghe-bank-jwt-secret", "DEMO-ONLY-qinghe-bank-api-key"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the secret %q", secret)
		}
	}
	if out, err := exec.Command(bin, "healthcheck", "-addr", p.addr).CombinedOutput(); err == nil {
		t.Errorf("fengda healthcheck against a stopped process succeeded: %s", out)
	}
}

// testSecondSignal: a second SIGTERM during a long drain ends the process at once with
// status 2.
func testSecondSignal(t *testing.T, bin string) {
	m := newGatedModel(t)
	p := startBinary(t, bin, map[string]string{
		"FENGDA_LLM_BASE_URL":       m.srv.URL + "/v1",
		"FENGDA_LLM_MODEL":          "test-model",
		"FENGDA_LLM_API_KEY":        "sk-test-key",
		"FENGDA_QUEUE_MODE":         "off",
		"FENGDA_SERVER_DRAIN_DELAY": "60s",
	}, patientModelArgs(t)...)
	base := "http://" + p.addr
	token := tokenFor(t, base, bankAPIKey, "impatient")
	go post(base, token, map[string]string{"message": "held until the process is gone"})
	eventually(t, 10*time.Second, "the turn reaches the model", func() bool { return m.asked() == 1 })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "/readyz to answer 503", func() bool {
		return send("GET", base+"/readyz", "", nil).status == http.StatusServiceUnavailable
	})
	if p.exited() {
		t.Fatal("exited before the second signal, within its 60s drain delay")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	second := time.Now()
	code := p.wait(10 * time.Second)
	took := p.exitAt.Sub(second)
	t.Logf("exit status %d, %v after the second signal", code, took)
	if code != exitSecondSignal {
		t.Errorf("exit status %d, want %d", code, exitSecondSignal)
	}
	if took > 2*time.Second {
		t.Errorf("exited %v after the second signal, want at once", took)
	}
	if !strings.Contains(p.logs(), "second signal") {
		t.Error("stderr does not say why it exited")
	}
}

// binaryProcess is one run of the built binary.
type binaryProcess struct {
	cmd         *exec.Cmd
	addr, admin string        // where it listens, from its log
	done        chan struct{} // closed when it has exited
	exitAt      time.Time     // when it exited; read after done

	mu  sync.Mutex
	log bytes.Buffer // stderr: the JSON log
}

// startBinary runs bin with args and env (on top of a free port and info logs) and waits
// until it listens. It is killed, if still running, when the test ends.
func startBinary(t *testing.T, bin string, env map[string]string, args ...string) *binaryProcess {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FENGDA_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	base := map[string]string{"FENGDA_SERVER_ADDR": "127.0.0.1:0", "FENGDA_LOG_LEVEL": "info"}
	maps.Copy(base, env)
	for k, v := range base {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &binaryProcess{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening, logEnd := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(logEnd)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			_ = json.Unmarshal(line, &entry)
			p.mu.Lock()
			p.log.Write(line)
			p.log.WriteByte('\n')
			switch entry.Msg {
			case "admin listener (pprof) open":
				p.admin = entry.Addr
			case "fengda listening":
				p.addr = entry.Addr
				close(listening)
			}
			p.mu.Unlock()
		}
	}()
	go func() {
		<-logEnd // Wait closes stderr: read it to its end first
		_ = cmd.Wait()
		p.exitAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", bin, p.logs())
		}
	})
	select {
	case <-listening:
	case <-p.done:
		t.Fatalf("the binary exited before listening:\n%s", p.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("the binary did not listen within 20s:\n%s", p.logs())
	}
	return p
}

func (p *binaryProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to limit for the process to exit, killing it past that, and returns
// its exit status (-1 when a signal ended it).
func (p *binaryProcess) wait(limit time.Duration) int {
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *binaryProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// gatedModel stands in for an OpenAI-compatible model that answers only once released:
// a JSON request waits, a streamed one sends a token every 200ms (within the client's
// idle timeout) until then. Its answer is "answer to: " and the request's message.
type gatedModel struct {
	srv     *httptest.Server
	gate    chan struct{}
	release func()

	mu   sync.Mutex
	asks int
}

func newGatedModel(t *testing.T) *gatedModel {
	t.Helper()
	m := &gatedModel{gate: make(chan struct{})}
	m.release = sync.OnceFunc(func() { close(m.gate) })
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	t.Cleanup(m.release) // Close waits for held requests
	return m
}

func (m *gatedModel) asked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.asks
}

func (m *gatedModel) serve(w http.ResponseWriter, r *http.Request) {
	req, ok := openaitest.ReadRequest(w, r)
	if !ok {
		return
	}
	m.mu.Lock()
	m.asks++
	m.mu.Unlock()
	answer := "answer to: " + req.Last()
	if !req.Stream {
		select {
		case <-m.gate:
		case <-r.Context().Done():
			return
		}
		openaitest.WriteAnswer(w, answer)
		return
	}
	st := openaitest.NewStream(w)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	_ = st.Delta("… ")
	for held := true; held; {
		select {
		case <-m.gate:
			held = false
		case <-tick.C:
			_ = st.Delta("… ")
		case <-r.Context().Done():
			return
		}
	}
	_ = st.Delta(answer)
	st.Done()
}

// shutdownEvent is one server-sent event of a chat stream.
type shutdownEvent struct{ name, data string }

// postStreamEvents posts a streamed chat turn and returns its events until the stream
// ends. It may run on any goroutine.
func postStreamEvents(base, token, msg string) ([]shutdownEvent, error) {
	b, _ := json.Marshal(map[string]string{"message": msg})
	req, err := http.NewRequest("POST", base+"/v1/chat", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var evs []shutdownEvent
	var cur shutdownEvent
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.name != "" {
				evs = append(evs, cur)
			}
			cur = shutdownEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return evs, sc.Err()
}

// patientModelArgs runs the program with examples/openai.yaml, its model deadlines
// raised from 1.5s to 9s (within server.request_timeout, 10s): the model stand-in holds
// its answers for as long as the shutdown under test takes.
func patientModelArgs(t *testing.T) []string {
	t.Helper()
	return modelArgsWithin(t, "9s")
}
