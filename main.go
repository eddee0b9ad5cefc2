// Command fengda is an AI customer-service backend: one binary that answers the end users
// of many tenants in real time, remembers each conversation and keeps tenants apart.
//
//	fengda [-config FILE]                                 serve (default)
//	fengda token -tenant ID -user USER [-ttl 1h]          print a user token
//	fengda eval -tenant ID -queries FILE [-json]          measure answer quality
//	fengda healthcheck [-config FILE] [-addr HOST:PORT]   GET /healthz of a running server
//	fengda version                                        print the build's version
//
// main only parses flags, loads configuration, builds every module and runs them; the
// logic lives in the packages.
//
// Exit status: 0 after a clean shutdown (SIGTERM or SIGINT, see serve), 1 when start-up
// or serving fails, 2 when a second SIGTERM or SIGINT cuts the shutdown short.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/gateway"
	"github.com/fengda-ai/fengda/nlpclient"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// embeddedKB holds the demo knowledge bases, used when a configured kb/ path is not on disk.
//
//go:embed kb/*.yaml
var embeddedKB embed.FS

// version is the build's version, set with -ldflags "-X main.version=v1.2.3"; without
// it buildVersion reads the module's version or VCS revision.
var version string

// exitSecondSignal is the exit status when a second signal cuts the shutdown short.
const exitSecondSignal = 2

func main() {
	exitOnSecondSignal()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "fengda:", err)
		os.Exit(1)
	}
}

// exitSyncWait bounds how long the exit on a second signal waits for the log's last
// lines to be written: a stderr nobody reads must not hold the exit.
const exitSyncWait = time.Second

// runningLog is the logger of the program main runs, for the exit on a second signal,
// which skips run's deferred Sync: the lines the logger still holds (log.flush_interval)
// are written before it exits.
var runningLog atomic.Pointer[zap.Logger]

// exitOnSecondSignal makes a second SIGTERM or SIGINT end the process at once, without
// waiting for the shutdown the first one started: in-flight requests are cut, and the
// queued turns this process held are delivered again after queue.ack_wait. Its channel
// is registered before the first signal can arrive, so it sees every one.
func exitOnSecondSignal() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		sig := <-sigs
		if log := runningLog.Load(); log != nil {
			synced := make(chan struct{})
			go func() {
				_ = log.Sync()
				close(synced)
			}()
			select {
			case <-synced:
			case <-time.After(exitSyncWait):
			}
		}
		fmt.Fprintf(os.Stderr, "fengda: second signal (%s) during shutdown: exiting at once\n", sig)
		os.Exit(exitSecondSignal)
	}()
}

// buildVersion returns the version set at link time, else the module version or VCS
// revision the Go toolchain recorded, else "devel".
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// run is the whole program, reusable by end-to-end tests. SIGHUP reloads every tenant's
// knowledge base and reopens the tenant log files (log.tenant_dir).
func run(ctx context.Context, args []string, getenv func(string) string) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return runWith(ctx, args, process{getenv: getenv, stdout: os.Stdout, reload: hup, exitLog: &runningLog})
}

// process is what the program takes from its surroundings; tests pass their own.
type process struct {
	getenv func(string) string
	stdout io.Writer
	ready  func(net.Addr)   // if set, receives the address the server listens on
	reload <-chan os.Signal // each value reloads every tenant's knowledge base
	logs   io.Writer        // if set, the log is written here instead of stderr
	// exitLog, if set, holds the logger while it is in use, for an exit that skips
	// runWith's deferred Sync (main's exit on a second signal).
	exitLog *atomic.Pointer[zap.Logger]
}

// runWith is run with its surroundings given (tests pass server.addr 127.0.0.1:0).
func runWith(ctx context.Context, args []string, p process) error {
	getenv, stdout := p.getenv, p.stdout
	if len(args) > 0 {
		switch args[0] {
		case "token":
			return runToken(args[1:], getenv, stdout)
		case "eval":
			return runEval(args[1:], getenv, stdout)
		case "healthcheck":
			return runHealthcheck(args[1:], getenv, stdout)
		case "version":
			_, err := fmt.Fprintf(stdout, "fengda %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		case "serve":
			args = args[1:]
		}
	}
	fl := flag.NewFlagSet("fengda", flag.ContinueOnError)
	fl.SetOutput(stdout)
	configPath := fl.String("config", "", "config file (default ./config.yaml, else the built-in one)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unknown command %q (commands: serve, token, eval, healthcheck, version)", fl.Arg(0))
	}
	cfg, source, err := loadConfig(*configPath, getenv)
	if err != nil {
		return err
	}
	log, files, err := newLogger(cfg.Log, cfg.Tenants, p.logs)
	if err != nil {
		return err
	}
	if files != nil {
		defer func() { _ = files.Close() }()
	}
	if p.exitLog != nil {
		p.exitLog.Store(log)
		defer p.exitLog.Store(nil)
	}
	defer func() { _ = log.Sync() }()
	return serve(ctx, cfg, source, p, log, files)
}

// serve builds every module, runs them, and shuts them down in reverse order. files
// are the tenant log files, nil when log.tenant_dir is off.
func serve(ctx context.Context, cfg Config, source string, p process, log *zap.Logger, files *tenant.LogFiles) error {
	log.Info("fengda starting", zap.String("version", buildVersion()), zap.String("config_source", source),
		zap.Object("config", effectiveConfig(cfg)))
	// Tenants and their answer engines.
	tenants, err := tenant.NewRegistry(cfg.Tenants, p.getenv)
	if err != nil {
		return fmt.Errorf("tenants: %w", err)
	}
	metrics := gateway.NewMetrics()
	engines, err := buildAnswerers(tenants)
	if err != nil {
		return err
	}
	answerers, err := buildModels(tenants, engines, p.getenv, metrics, log)
	if err != nil {
		return err
	}

	// Session store.
	store, closeStore, err := buildStore(ctx, cfg.Session, log)
	if err != nil {
		return err
	}
	defer closeStore()

	// Spillover queue.
	q, err := openQueue(ctx, cfg.Queue, tenants, metrics, log)
	if err != nil {
		return err
	}
	if err := shareRevocations(ctx, q, tenants, log); err != nil {
		if q != nil {
			_ = q.Drain(context.Background())
		}
		return err
	}
	spill := dialogue.Spill{Queue: q}
	if q != nil {
		spill.Wait, spill.TurnTimeout = cfg.Queue.MaxWait, cfg.Server.RequestTimeout
		spill.Observe, spill.Worked = metrics.ObserveSpill, metrics.ObserveQueuedWorked
		// Closes the connection if serving never starts; a no-op after the drain below.
		defer func() { _ = q.Drain(context.Background()) }()
	}

	// Dialogue engine and HTTP edge.
	engine, err := dialogue.New(cfg.Dialogue, dialogue.Deps{
		Store:     store,
		Answerers: answerers,
		Tenants:   tenants,
		Observe:   metrics.ObserveStage,
		Spill:     spill,
		Log:       log,
	})
	if err != nil {
		return err
	}
	gwCfg := cfg.Server.Config
	gwCfg.RateLimitEnabled = cfg.RateLimit.Enabled
	gwCfg.Version = buildVersion()
	gwCfg.Demo = cfg.Demo
	if q != nil {
		gwCfg.QueueWait = cfg.Queue.MaxWait
	}
	srv, err := gateway.New(gwCfg, engine, tenants, metrics, log)
	if err != nil {
		return err
	}
	if cfg.RateLimit.Enabled && cfg.RateLimit.Store == "redis" {
		// A client of its own, so that limit checks and session traffic never wait for
		// each other's connections.
		redis.SetLogger(redisLogger{log.Named("redis")})
		rc := cfg.Session.Redis
		client, err := session.NewRedisClient(session.RedisClientConfig{URL: rc.URL, MasterName: rc.MasterName,
			DialTimeout: rc.DialTimeout, ReadTimeout: rc.ReadTimeout, WriteTimeout: rc.WriteTimeout})
		if err != nil {
			return fmt.Errorf("session.redis.url: %w", err)
		}
		defer func() { _ = client.Close() }()
		limiter, err := session.NewRedisLimiter(client, session.RedisLimiterConfig{KeyPrefix: rc.KeyPrefix})
		if err != nil {
			return fmt.Errorf("ratelimit: %w", err)
		}
		if err := srv.SetRateStore(limiter, gateway.RateStoreOptions{Timeout: cfg.RateLimit.Timeout, Backoff: cfg.RateLimit.Backoff}); err != nil {
			return fmt.Errorf("ratelimit: %w", err)
		}
		log.Info("rate limits shared through redis", zap.String("at", redactURLs(rc.URL)), zap.String("key_prefix", rc.KeyPrefix))
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("server.addr: %w", err)
	}
	var adminLn net.Listener
	if cfg.Server.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", cfg.Server.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("server.admin_addr: %w", err)
		}
		log.Info("admin listener (pprof) open", zap.String("addr", adminLn.Addr().String()))
	}

	log.Info("fengda listening",
		zap.String("addr", ln.Addr().String()),
		zap.String("version", buildVersion()),
		zap.String("config", source),
		zap.String("session_store", cfg.Session.Store),
		zap.String("queue", cfg.Queue.Mode),
		zap.Int("tenants", len(tenants.Tenants())),
		zap.String("get_token", "go run . token -tenant qinghe-bank -user u1"),
		zap.String("try", `curl -s localhost:8080/v1/chat -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"message":"信用卡丢了怎么办"}'`))
	if cfg.Demo.Enabled {
		log.Warn("demo mode is on: GET / serves the demo chat page and POST /v1/demo/token gives anyone a token for the demo tenants; set demo.enabled false (FENGDA_DEMO_ENABLED=false) for real users",
			zap.Strings("demo_tenants", srv.DemoTenants()))
	}
	if p.ready != nil {
		p.ready(ln.Addr())
	}

	// Shutdown, when ctx ends (SIGTERM), is the reverse of start. The gateway answers
	// /readyz with 503 at once and keeps serving for server.drain_delay while load
	// balancers catch up; then it stops accepting and finishes the requests in flight
	// (JSON turns get their answer, SSE streams finish their turn and get a shutdown
	// event; requests waiting for a queued turn get its id to poll with halfway through
	// server.shutdown_timeout), while this process still works the queue. Then the queue
	// stops pulling and finishes and acknowledges the turns it took; then the engine
	// drains its accepted turns; then the admin listener and the store close (the store
	// deferred above), and runWith flushes the log.
	g, gctx := errgroup.WithContext(ctx)
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	g.Go(func() error { return engine.Run(engineCtx) })
	if q != nil {
		g.Go(func() error {
			// Not gctx: the drain below, not a cancel, ends consuming.
			return q.Consume(context.WithoutCancel(ctx), cfg.Dialogue.Workers, engine.HandleQueued)
		})
	}
	adminCtx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAdmin()
	if adminLn != nil {
		g.Go(func() error { return gateway.RunAdmin(adminCtx, adminLn, log) })
	}
	release := cfg.Server.DrainDelay + cfg.Server.ShutdownTimeout/2
	stopRelease := context.AfterFunc(gctx, func() { engine.ReleaseWaiters(release) })
	defer stopRelease()
	g.Go(func() error {
		defer stopAdmin() // last: a slow shutdown can still be profiled
		defer stopEngine()
		err := srv.Run(gctx, ln)
		if q != nil {
			// In-flight queued turns end within their deadline plus storing them.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.RequestTimeout+cfg.Dialogue.StoreTimeout+time.Second)
			defer cancel()
			if derr := q.Drain(dctx); derr != nil {
				log.Warn("queue drain incomplete; unacknowledged turns are delivered again", zap.Error(derr))
			} else {
				log.Info("spillover queue drained: the turns taken are answered and acknowledged")
			}
		}
		return err
	})
	g.Go(func() error {
		reloadKBs(gctx, p.reload, tenants, engines, files, log)
		return nil
	})
	err = g.Wait()
	log.Info("fengda stopped")
	return err
}

// openQueue opens the spillover queue, or returns nil when queue.mode is off, and
// registers its backlog metrics.
func openQueue(ctx context.Context, cfg queue.Config, tenants *tenant.Registry, metrics *gateway.Metrics, log *zap.Logger) (*queue.Queue, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	ids := make([]tenant.ID, 0, len(tenants.Tenants()))
	for _, t := range tenants.Tenants() {
		ids = append(ids, t.ID)
	}
	q, err := queue.Open(ctx, cfg, ids, log.Named("queue"))
	if err != nil {
		return nil, err
	}
	if err := metrics.Registry().Register(q.Collector()); err != nil {
		_ = q.Drain(ctx)
		return nil, fmt.Errorf("queue metrics: %w", err)
	}
	where := cfg.DataDir
	if cfg.Mode == queue.ModeExternal {
		where = redactURLs(cfg.URL)
	}
	log.Info("spillover queue open", zap.String("mode", cfg.Mode), zap.String("at", where), zap.String("stream", cfg.Stream))
	return q, nil
}

// revocationBoard is the name of the queue's board of revoked tokens.
const revocationBoard = "REVOKED"

// shareRevocations makes token revocations reach every replica within a second: they
// travel on a board of the queue's server that each replica watches into the registry's
// in-memory set, records already there applied before serving. With the queue off they
// apply to this process only.
func shareRevocations(ctx context.Context, q *queue.Queue, tenants *tenant.Registry, log *zap.Logger) error {
	if q == nil {
		log.Info("queue.mode is off: token revocations apply to this process only")
		return nil
	}
	board, err := q.Board(ctx, revocationBoard, tenant.RevocationRetention)
	if err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	rlog := log.Named("revocations")
	// Not ctx: revocations stay in force while the server drains; the watch ends when
	// the queue closes.
	err = board.Watch(context.WithoutCancel(ctx), func(key string, value []byte) {
		if err := tenants.ApplyRevocation(key, value); err != nil {
			rlog.Warn("revocation record ignored", zap.Error(err))
		}
	})
	if err != nil {
		return fmt.Errorf("revocations: %w", err)
	}
	tenants.SetBroadcast(board.Put)
	return nil
}

// redactURLs masks the passwords of a comma-separated list of URLs, for logging. An
// entry without a scheme (a cluster's further host:port) is kept, unless it holds
// credentials.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if !strings.Contains(p, "://") {
			if at := strings.LastIndex(p, "@"); at >= 0 {
				parts[i] = "xxxxx" + p[at:]
			}
			continue
		}
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}

// buildAnswerers loads each tenant's knowledge base into a FAQ engine that can be
// reloaded while it serves.
func buildAnswerers(tenants *tenant.Registry) (map[tenant.ID]*nlpclient.Swap, error) {
	out := make(map[tenant.ID]*nlpclient.Swap)
	for _, t := range tenants.Tenants() {
		faq, err := loadFAQ(t)
		if err != nil {
			return nil, err
		}
		out[t.ID] = nlpclient.NewSwap(faq)
	}
	return out, nil
}

// buildModels returns each tenant's answer engine: its FAQ engine, or for engine kind
// "openai" a model client grounded on that FAQ engine and falling back to it. All model
// clients share one HTTP client; each has its own breaker and bulkhead.
func buildModels(tenants *tenant.Registry, faqs map[tenant.ID]*nlpclient.Swap, getenv func(string) string,
	metrics *gateway.Metrics, log *zap.Logger) (map[tenant.ID]dialogue.Answerer, error) {
	out := make(map[tenant.ID]dialogue.Answerer, len(faqs))
	var client *http.Client
	for _, t := range tenants.Tenants() {
		if t.Engine.Kind != tenant.EngineOpenAI {
			out[t.ID] = faqs[t.ID]
			continue
		}
		l := t.Engine.LLM
		cfg := nlpclient.LLMConfig{
			Upstream: l.Upstream, BaseURL: l.BaseURL, Model: l.Model,
			Temperature: l.Temperature, MaxTokens: l.MaxTokens, SystemPrompt: l.SystemPrompt,
			References: l.References, HistoryBudget: l.HistoryChars,
			Timeout: l.Timeout, FirstToken: l.FirstTokenTimeout, IdleTimeout: l.IdleTimeout,
			MaxRetries: l.MaxRetries, BreakerFailures: l.BreakerFailures, BreakerDelay: l.BreakerDelay,
			MaxConcurrent: l.MaxConcurrent, HedgeDelay: l.HedgeDelay,
		}
		if l.APIKey != (tenant.Secret{}) {
			key, err := tenant.ResolveSecret(l.APIKey, getenv)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: engine.llm.api_key: %w", t.ID, err)
			}
			cfg.APIKey = string(key)
		}
		cfg.Upstream = cfg.UpstreamName()
		if client == nil {
			client = nlpclient.NewHTTPClient()
		}
		m, err := nlpclient.NewLLM(cfg, nlpclient.LLMDeps{
			Client:   client,
			FAQ:      faqs[t.ID],
			Fallback: t.FallbackAnswer,
			Observer: metrics.Upstream(t.ID, cfg.Upstream),
			Log:      log.With(zap.String("tenant", t.ID.String())),
		})
		if err != nil {
			return nil, fmt.Errorf("tenant %s: engine.llm: %w", t.ID, err)
		}
		out[t.ID] = m
		log.Info("model engine configured", zap.String("tenant", t.ID.String()),
			zap.String("upstream", cfg.Upstream), zap.String("model", cfg.Model))
	}
	return out, nil
}

// reloadKBs reloads every tenant's knowledge base and key set file on each signal until
// ctx ends. A file that does not load leaves that tenant's engine or keys as they were,
// and says why. It first reopens the tenant log files, if any, for log rotation.
func reloadKBs(ctx context.Context, signals <-chan os.Signal, tenants *tenant.Registry, engines map[tenant.ID]*nlpclient.Swap,
	files *tenant.LogFiles, log *zap.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
		}
		if files != nil {
			if err := files.Reopen(); err != nil {
				log.Error("tenant log files not reopened; lines go to the files open before", zap.String("dir", files.Dir()), zap.Error(err))
			} else {
				log.Info("tenant log files reopened", zap.String("dir", files.Dir()))
			}
		}
		log := log.Named("kb")
		for _, t := range tenants.Tenants() {
			faq, err := loadFAQ(t)
			if err != nil {
				log.Error("knowledge base not reloaded, the previous one keeps serving",
					zap.String("tenant", t.ID.String()), zap.String("file", t.Engine.KB), zap.Error(err))
				continue
			}
			engines[t.ID].Replace(faq)
			log.Info("knowledge base reloaded",
				zap.String("tenant", t.ID.String()), zap.String("file", t.Engine.KB), zap.Int("entries", faq.Len()))
		}
		// Key sets of the tenants' identity providers, after a key rotation.
		changed, err := tenants.ReloadKeys()
		for _, id := range changed {
			log.Info("jwks_file reloaded: tokens are checked against the new keys", zap.String("tenant", id.String()))
		}
		if err != nil {
			log.Error("jwks_file not reloaded, the previous keys keep verifying", zap.Error(err))
		}
	}
}

// loadFAQ builds the FAQ engine of one tenant from its knowledge base file.
func loadFAQ(t *tenant.Tenant) (*nlpclient.FAQ, error) {
	data, err := readKB(t.Engine.KB)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: engine.kb: %w", t.ID, err)
	}
	kb, err := nlpclient.ParseKB(data)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: engine.kb %s: %w", t.ID, t.Engine.KB, err)
	}
	if kb.Tenant != "" && kb.Tenant != t.ID.String() {
		return nil, fmt.Errorf("tenant %s: engine.kb %s belongs to tenant %q", t.ID, t.Engine.KB, kb.Tenant)
	}
	faq, err := nlpclient.NewFAQ(kb, nlpclient.FAQOptions{MinConfidence: t.Engine.MinConfidence})
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
	}
	return faq, nil
}

// readKB reads a knowledge base from disk, or the built-in demo copy of kb/*.yaml.
func readKB(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no knowledge base file configured")
	}
	data, err := os.ReadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, err
	}
	if b, embErr := embeddedKB.ReadFile(path); embErr == nil {
		return b, nil
	}
	return nil, err
}

// buildStore opens the configured session store and returns how to close it.
func buildStore(ctx context.Context, cfg SessionConfig, log *zap.Logger) (dialogue.Store, func(), error) {
	if cfg.Store == "memory" {
		s, err := session.NewMemoryStore(session.MemoryConfig{
			MaxTurns: cfg.MaxTurns, TTL: cfg.TTL, MaxBytes: cfg.Memory.MaxBytes,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("session: %w", err)
		}
		return s, func() {}, nil
	}
	redis.SetLogger(redisLogger{log.Named("redis")})
	client, err := session.NewRedisClient(session.RedisClientConfig{
		URL:          cfg.Redis.URL,
		MasterName:   cfg.Redis.MasterName,
		DialTimeout:  cfg.Redis.DialTimeout,
		ReadTimeout:  cfg.Redis.ReadTimeout,
		WriteTimeout: cfg.Redis.WriteTimeout,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("session.redis.url: %w", err)
	}
	s, err := session.NewRedisStore(client, session.RedisConfig{
		KeyPrefix: cfg.Redis.KeyPrefix, MaxTurns: cfg.MaxTurns, TTL: cfg.TTL,
	})
	if err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("session: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.Redis.DialTimeout)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		// Start anyway: /readyz reports it and chat answers 503 until Redis is back.
		log.Warn("redis not reachable at start", zap.Error(err))
	}
	return s, func() { _ = client.Close() }, nil
}

// redisLogger sends go-redis's own messages (failed dials and the like) to the root
// logger instead of the standard library's, so they are structured and redacted.
type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}

// runToken prints a user token: fengda token -tenant ID -user USER [-ttl 1h].
func runToken(args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("token", flag.ContinueOnError)
	fl.SetOutput(stdout)
	configPath := fl.String("config", "", "config file")
	tid := fl.String("tenant", "", "tenant id (required)")
	user := fl.String("user", "", "user id, the token's sub (required)")
	ttl := fl.Duration("ttl", time.Hour, "token lifetime, at most 24h")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *tid == "" || *user == "" {
		return errors.New("token: -tenant and -user are required")
	}
	tenants, id, err := registryFor(*configPath, *tid, getenv)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok, _, err := tenants.Mint(id, *user, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// runHealthcheck asks a running server on this machine for GET /healthz and fails
// unless it answers 200 within 3s: fengda healthcheck [-config FILE] [-addr HOST:PORT].
// It is the container image's HEALTHCHECK, which has no curl or shell. The address is
// -addr, else FENGDA_SERVER_ADDR, else server.addr of the configuration.
func runHealthcheck(args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fl.SetOutput(stdout)
	configPath := fl.String("config", "", "config file")
	addr := fl.String("addr", "", "the server's address (default: server.addr)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	a := *addr
	if a == "" {
		a = getenv("FENGDA_SERVER_ADDR")
	}
	if a == "" {
		cfg, _, err := loadConfig(*configPath, getenv)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		a = cfg.Server.Addr
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("healthcheck: address %q: %w", a, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // the server listens on every interface
	}
	u := "http://" + net.JoinHostPort(host, port) + "/healthz"
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: status %d", u, resp.StatusCode)
	}
	_, err = fmt.Fprintf(stdout, "%s", body)
	return err
}

// registryFor loads the configuration and tenants for a command that names one tenant.
func registryFor(configPath, tid string, getenv func(string) string) (*tenant.Registry, tenant.ID, error) {
	id, err := tenant.ParseID(tid)
	if err != nil {
		return nil, "", fmt.Errorf("-tenant: %w", err)
	}
	cfg, _, err := loadConfig(configPath, getenv)
	if err != nil {
		return nil, "", err
	}
	tenants, err := tenant.NewRegistry(cfg.Tenants, getenv)
	if err != nil {
		return nil, "", fmt.Errorf("tenants: %w", err)
	}
	return tenants, id, nil
}

// newLogger builds the root logger, writing to out (stderr when nil): zap's production
// JSON lines, made line-safe (tenant.NewLineSafeEncoder), or with log.format console,
// its development text. Every line passes through PII redaction. With
// log.flush_interval set, lines are held in a logBuffer and written many at a time;
// a line at warn level or above is written at once, with those before it, and the
// logger's Sync writes whatever is held. With log.tenant_dir set, it also returns the
// tenant log files: each line naming a configured tenant goes, as JSON, to that
// tenant's file too.
func newLogger(cfg LogConfig, tenants []tenant.Config, out io.Writer) (*zap.Logger, *tenant.LogFiles, error) {
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, nil, fmt.Errorf("log.level: %w", err)
	}
	stderr := zapcore.Lock(os.Stderr)
	sink := stderr
	if out != nil {
		sink = zapcore.Lock(zapcore.AddSync(out))
	}
	var held *logBuffer
	if cfg.FlushInterval > 0 {
		held = newLogBuffer(sink, logBufferSize, cfg.FlushInterval)
		sink = held
	}
	jsonEncoder := func() zapcore.Encoder {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		return tenant.NewLineSafeEncoder(zapcore.NewJSONEncoder(ec))
	}
	enc := jsonEncoder()
	opts := []zap.Option{zap.ErrorOutput(stderr), zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)}
	if cfg.Format == "console" { // as zap.NewDevelopmentConfig
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewConsoleEncoder(ec)
		opts = []zap.Option{zap.ErrorOutput(stderr), zap.AddCaller(), zap.AddStacktrace(zapcore.WarnLevel), zap.Development()}
	}
	if held != nil {
		// Runs after the entry is written: warnings and errors are never held back.
		opts = append(opts, zap.Hooks(func(e zapcore.Entry) error {
			if e.Level >= zapcore.WarnLevel {
				return held.Flush()
			}
			return nil
		}))
	}
	core := zapcore.NewCore(enc, sink, level)
	var files *tenant.LogFiles
	if cfg.TenantDir != "" {
		if err := cfg.checkTenantDir(); err != nil {
			return nil, nil, err
		}
		// The IDs are validated as the registry validates them; an invalid one is
		// left out here, and stops start-up when the registry is built.
		var ids []tenant.ID
		for _, t := range tenants {
			if id, err := tenant.ParseID(t.ID); err == nil {
				ids = append(ids, id)
			}
		}
		if files, err = tenant.OpenLogFiles(cfg.TenantDir, ids); err != nil {
			return nil, nil, fmt.Errorf("log.tenant_dir: %w", err)
		}
		core = zapcore.NewTee(core, files.Core(jsonEncoder(), level))
	}
	return zap.New(tenant.NewRedactingCore(core), opts...), files, nil
}
