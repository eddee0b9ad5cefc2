// Command bench measures Fengda on this machine against baselines run in the same
// process tree and the same run: hello (a bare net/http handler) and proxy (a minimal
// httputil.ReverseProxy in front of a model stand-in). Every figure that matters is a
// ratio against a baseline measured in interleaved rounds, so a shared, noisy machine
// shifts both sides alike. See bench/README.md.
//
//	go run ./bench -scenario faq -duration 10s [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// bench holds what every scenario shares: flags, the binary under test, children.
type bench struct {
	root, dir string // the repository; a scratch directory for configs and logs
	self      string // this program, run again for each baseline role
	fengda    string // the binary under test
	// against is a revision of Fengda to measure beside the binary under test
	// (-against), and againstBin that revision built.
	against, againstBin string
	fengdaEnv           []string
	redisURL            string
	logLevel            string

	duration, warmup time.Duration
	rounds           int
	clients          int
	rate             float64
	conns            int
	hold             time.Duration
	cpuprofile       string
	memprofile       string
	jsonOut          bool
	out              io.Writer

	procs []*proc
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var scenarios = map[string]func(context.Context, *bench) (*Report, error){
	"faq":         scenarioFAQ,
	"llm":         scenarioLLM,
	"latency":     scenarioLatency,
	"stream":      scenarioStream,
	"connections": scenarioConnections,
	"burst":       scenarioBurst,
	"soak":        scenarioSoak,
	"noisy":       scenarioNoisy,
}

func run(args []string) error {
	fl := flag.NewFlagSet("bench", flag.ContinueOnError)
	scenario := fl.String("scenario", "", "faq | llm | latency | stream | connections | burst | soak | noisy | all (the first five)")
	b := &bench{out: os.Stdout}
	fl.DurationVar(&b.duration, "duration", 10*time.Second, "measured window of each run (soak: the whole soak; burst: the burst)")
	fl.DurationVar(&b.warmup, "warmup", 2*time.Second, "unrecorded load before each measured window")
	fl.IntVar(&b.rounds, "rounds", 3, "interleaved rounds of baseline and Fengda; figures are medians")
	fl.IntVar(&b.clients, "clients", 0, "closed-loop clients (0: the scenario's default)")
	fl.Float64Var(&b.rate, "rate", 0, "open loop: requests a second (0: the scenario's default mode)")
	fl.IntVar(&b.conns, "conns", 0, "connections: concurrent SSE conversations (0: as many as the descriptor limit allows)")
	fl.DurationVar(&b.hold, "hold", 30*time.Second, "connections: how long each conversation's stream lasts")
	fl.StringVar(&b.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis for the redis-store runs")
	fl.StringVar(&b.logLevel, "log-level", "info", "Fengda's log level (its log goes to a file, as in production)")
	fl.StringVar(&b.cpuprofile, "cpuprofile", "", "faq, llm, latency, stream: write a CPU profile of Fengda, taken during its first measured window, to this file")
	fl.StringVar(&b.memprofile, "memprofile", "", "faq, llm, latency, stream, connections: write a heap profile of Fengda, taken near the end of its first measured window (connections: with nearly every conversation open), to this file")
	fl.BoolVar(&b.jsonOut, "json", false, "print the report as JSON")
	fl.Func("fengda-env", "KEY=VALUE added to the environment of every Fengda under test (repeatable), e.g. GOGC=200", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		b.fengdaEnv = append(b.fengdaEnv, v)
		return nil
	})
	fl.StringVar(&b.against, "against", "", "faq, llm, latency, stream: also measure Fengda built at this git revision, in the same interleaved rounds; burst: run the burst against it too, after")
	role := fl.String("role", "", "internal: serve as hello | proxy | model on -addr")
	addr := fl.String("addr", "", "internal: the role's listen address")
	upstream := fl.String("upstream", "", "internal: proxy's upstream URL")
	var m model
	fl.DurationVar(&m.Latency, "model-latency", 0, "internal: the model's wait before answering")
	fl.IntVar(&m.Tokens, "model-tokens", 20, "internal: tokens in a model answer")
	fl.DurationVar(&m.Over, "model-over", 0, "internal: the time a streamed answer's tokens are spread over")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *role != "" {
		return serveRole(*role, *addr, *upstream, m)
	}
	_, ok := scenarios[*scenario]
	if !ok && *scenario != "all" {
		return fmt.Errorf("-scenario: want one of %s or all, got %q", strings.Join(mapsKeys(scenarios), ", "), *scenario)
	}
	if b.rounds < 1 || b.duration <= 0 {
		return errors.New("-rounds must be at least 1 and -duration positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := b.setup(); err != nil {
		return err
	}
	defer b.cleanup()
	names := []string{*scenario}
	if *scenario == "all" {
		names = []string{"faq", "llm", "latency", "stream", "connections"}
	}
	var reports []*Report
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "bench: scenario %s\n", name)
		r, err := scenarios[name](ctx, b)
		b.stopAll()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		reports = append(reports, r)
		if !b.jsonOut {
			r.print(b.out)
		}
	}
	if b.jsonOut {
		enc := json.NewEncoder(b.out)
		enc.SetIndent("", "  ")
		if len(reports) == 1 {
			return enc.Encode(reports[0])
		}
		return enc.Encode(reports)
	}
	return nil
}

func mapsKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func serveRole(role, addr, upstream string, m model) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	switch role {
	case "hello":
		return serveHello(ln)
	case "proxy":
		return serveProxy(ln, upstream)
	case "model":
		return serveModel(ln, m)
	}
	return fmt.Errorf("-role: unknown %q", role)
}

func (b *bench) setup() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	b.root = root
	if b.dir, err = os.MkdirTemp("", "fengda-bench-"); err != nil {
		return err
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: building Fengda; configs and logs in %s\n", b.dir)
	if b.fengda, err = buildFengda(root, b.dir); err != nil {
		return err
	}
	if b.against != "" {
		fmt.Fprintf(os.Stderr, "bench: building Fengda at %s\n", b.against)
		b.againstBin, err = buildRevision(root, b.dir, b.against)
	}
	return err
}

func (b *bench) cleanup() {
	b.stopAll()
	if os.Getenv("BENCH_KEEP") == "" {
		_ = os.RemoveAll(b.dir)
	}
}

// stopAll stops every child, Fengda last so it does not log its upstreams leaving.
func (b *bench) stopAll() {
	for i := len(b.procs) - 1; i >= 0; i-- {
		_ = b.procs[i].stop()
	}
	b.procs = nil
}

// role starts this program again as a baseline server or the model stand-in.
func (b *bench) role(name string, args ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p, err := start(name, b.self, append([]string{"-role", name, "-addr", addr}, args...), nil, addr, "", filepath.Join(b.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	return p, nil
}

// model starts the model stand-in.
func (b *bench) model(latency time.Duration, tokens int, over time.Duration) (*proc, error) {
	return b.role("model", "-model-latency", latency.String(), "-model-tokens", fmt.Sprint(tokens), "-model-over", over.String())
}

// fengdaChild starts Fengda and has it stopped with the other children.
func (b *bench) fengdaChild(name string, o fengdaOpts) (*fengdaRun, error) {
	f, err := b.startFengda(name, o)
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, f.proc)
	return f, nil
}

func (b *bench) clientsOr(n int) int {
	if b.clients > 0 {
		return b.clients
	}
	return n
}

// errOut takes progress lines, so that -json output stays clean.
var errOut io.Writer = os.Stderr
