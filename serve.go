package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/fengda-ai/fengda/dialogue"
	"github.com/fengda-ai/fengda/gateway"
	"github.com/fengda-ai/fengda/handoff"
	"github.com/fengda-ai/fengda/insights"
	"github.com/fengda-ai/fengda/knowledge"
	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/metrics"
	"github.com/fengda-ai/fengda/nlpclient/faq"
	"github.com/fengda-ai/fengda/nlpclient/openai"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/ratelimit"
	"github.com/fengda-ai/fengda/session"
	"github.com/fengda-ai/fengda/tenant"
)

// runServe serves until ctx ends: fengda [serve] [-config FILE].
func runServe(ctx context.Context, args []string, p process) error {
	fl := flag.NewFlagSet("fengda", flag.ContinueOnError)
	fl.SetOutput(p.stdout)
	configPath := fl.String("config", "", "config file (default ./config.yaml, else the built-in one)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unknown command %q (commands: serve, token, eval, healthcheck, version)", fl.Arg(0))
	}
	cfg, source, err := loadConfig(*configPath, p.getenv)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Log, cfg.Tenants, p.logs)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	if p.exitLog != nil {
		p.exitLog.Store(log.Logger)
		defer p.exitLog.Store(nil)
	}
	return serve(ctx, cfg, source, p, log.Logger, log.Files)
}

// serve builds every module, listens, runs them until ctx ends, and shuts them down
// in reverse order. files are the tenant log files, nil when log.tenant_dir is off.
func serve(ctx context.Context, cfg Config, source string, p process, log *zap.Logger, files *logging.TenantFiles) error {
	log.Info("fengda starting", zap.String("version", buildVersion()), zap.String("config_source", source),
		zap.Object("config", effectiveConfig(cfg)))
	m, err := build(ctx, cfg, p.getenv, log)
	if err != nil {
		return err
	}
	defer m.close()
	ln, adminLn, err := listen(cfg.Server, log)
	if err != nil {
		return err
	}
	log.Info("fengda listening",
		zap.String("addr", ln.Addr().String()),
		zap.String("version", buildVersion()),
		zap.String("config", source),
		zap.String("session_store", cfg.Session.Store),
		zap.String("queue", cfg.Queue.Mode),
		zap.Int("tenants", len(m.tenants.Tenants())))
	if cfg.Demo.Enabled {
		log.Warn("demo mode is on: GET / serves the demo page and POST /v1/demo/token gives anyone a demo token (a user, an agent, or an admin who edits the demo tenants' knowledge bases); set demo.enabled false for real users",
			zap.Strings("demo_tenants", m.srv.DemoTenants()),
			zap.String("get_token", "go run . token -tenant qinghe-bank -user u1"),
			zap.String("try", `curl -s localhost:8080/v1/chat -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"message":"信用卡丢了怎么办"}'`))
	}
	if p.ready != nil {
		p.ready(ln.Addr())
	}
	err = m.run(ctx, cfg, ln, adminLn, p.reload, files, log)
	log.Info("fengda stopped")
	return err
}

// modules are the parts serve builds, and how to close them.
type modules struct {
	tenants *tenant.Registry
	faqs    map[tenant.ID]*faq.Swap // each tenant's FAQ engine, rebuilt on each new version of its base
	kb      *knowledge.Service      // the tenants' live knowledge bases
	queue   *queue.Queue            // nil when queue.mode is off
	engine  *dialogue.Engine
	desk    *handoff.Desk
	records *insights.Recorder
	srv     *gateway.Server
	closers []func() // in the order they were opened
}

// close closes what build opened, in reverse order.
func (m *modules) close() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
}

// build builds every module from the bottom up: tenants and their answer engines, the
// session store, the spillover queue and the revocations it carries, the dialogue
// engine, the rate limits, the HTTP edge. On an error it closes what it opened.
func build(ctx context.Context, cfg Config, getenv func(string) string, log *zap.Logger) (_ *modules, err error) {
	m := &modules{}
	defer func() {
		if err != nil {
			m.close()
		}
	}()

	// Tenants and their answer engines. Revocations travel on the queue's board, which
	// needs the tenants to exist first: the registry is given the publisher now, and the
	// board below.
	revocations := &revocationPublisher{}
	if m.tenants, err = tenant.NewRegistry(cfg.Tenants, getenv, tenant.WithBroadcast(revocations.put)); err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	figures := metrics.New()

	// Session store.
	store, closeStore, err := buildStore(ctx, cfg.Session, log)
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, closeStore)

	// Spillover queue, and the revocations it carries to every replica.
	if m.queue, err = openQueue(ctx, cfg.Queue, m.tenants, figures, log); err != nil {
		return nil, err
	}
	spill := dialogue.Spill{Queue: m.queue}
	if q := m.queue; q != nil {
		// Closes the connection if serving never starts; a no-op after run's drain.
		m.closers = append(m.closers, func() { _ = q.Drain(context.Background()) })
		spill.Wait, spill.TurnTimeout = cfg.Queue.MaxWait, cfg.Server.RequestTimeout
	}
	if err := shareRevocations(ctx, m.queue, m.tenants, revocations, log); err != nil {
		return nil, err
	}

	// The tenants' live knowledge bases, on the queue's server, and the answer engines
	// built from them.
	if m.kb, m.faqs, err = buildKnowledge(ctx, cfg.Knowledge, m.queue, m.tenants, figures, log); err != nil {
		return nil, err
	}
	answerers, err := buildModels(m.tenants, m.faqs, getenv, figures, log)
	if err != nil {
		return nil, err
	}

	// The records of answered turns and ratings, on the queue's server.
	if m.records, err = buildInsights(cfg.Insights, m.queue, figures, log); err != nil {
		return nil, err
	}

	// Human handoff: its state in the session store, its live events on the queue's
	// connection (this process only with the queue off). Both stores keep handoffs; a
	// store that did not would run without it.
	var desk *handoff.Desk
	if hs, ok := store.(handoff.Store); ok {
		var bus handoff.Bus
		if m.queue != nil {
			bus = m.queue.Live()
		}
		if desk, err = handoff.New(handoff.Deps{Store: hs, Tenants: m.tenants, Bus: bus, Metrics: figures, Turns: m.records, Log: log}, m.tenants.Tenants()); err != nil {
			return nil, err
		}
		ids := make([]tenant.ID, 0, len(m.tenants.Tenants()))
		for _, t := range m.tenants.Tenants() {
			ids = append(ids, t.ID)
		}
		if err := figures.RegisterWaiting(hs, ids); err != nil {
			return nil, err
		}
		m.desk = desk
	} else {
		log.Warn("handoff to a person is off: the session store does not keep handoffs", zap.String("session_store", cfg.Session.Store))
	}

	// Dialogue engine.
	deps := dialogue.Deps{
		Store:     store,
		Answerers: answerers,
		Tenants:   m.tenants,
		Metrics:   figures,
		Spill:     spill,
		Insights:  m.records,
		Log:       log,
	}
	if desk != nil {
		deps.Handoff = desk
	}
	m.engine, err = dialogue.New(cfg.Dialogue, deps)
	if err != nil {
		return nil, err
	}

	// Rate limits and the HTTP edge.
	limiter, closeLimiter, err := buildLimiter(cfg, m.tenants, figures, log)
	if err != nil {
		return nil, err
	}
	m.closers = append(m.closers, closeLimiter)
	gwCfg := cfg.Server.Config
	gwCfg.Version = buildVersion()
	gwCfg.Demo = cfg.Demo
	if m.queue != nil {
		gwCfg.QueueWait = cfg.Queue.MaxWait
	}
	gwCfg.KBMaxBodyBytes = int64(cfg.Knowledge.MaxBytes)
	gw := gateway.Deps{Dialogue: m.engine, Tenants: m.tenants, Knowledge: m.kb, Feedback: m.records, Metrics: figures, Log: log}
	if desk != nil {
		gw.Handoff = desk
	}
	if limiter != nil {
		gw.Limiter = limiter
	}
	if m.srv, err = gateway.New(gwCfg, gw); err != nil {
		return nil, err
	}
	return m, nil
}

// listen opens the server's listener and, with server.admin_addr set, the admin one.
func listen(cfg ServerConfig, log *zap.Logger) (ln, adminLn net.Listener, err error) {
	if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
		return nil, nil, fmt.Errorf("server.addr: %w", err)
	}
	if cfg.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("server.admin_addr: %w", err)
		}
		log.Info("admin listener (pprof) open", zap.String("addr", adminLn.Addr().String()))
	}
	return ln, adminLn, nil
}

// run serves on ln (and the admin listener, if any) until ctx ends, then shuts down in
// the reverse order of start. The gateway answers /readyz with 503 at once and keeps
// serving for server.drain_delay while load balancers catch up; then it stops accepting
// and finishes the requests in flight (JSON turns get their answer, SSE streams finish
// their turn and get a shutdown event; requests waiting for a queued turn get its id to
// poll with halfway through server.shutdown_timeout), while this process still works
// the queue. Then the queue stops pulling and finishes and acknowledges the turns it
// took; then the engine drains its accepted turns; then the admin listener closes, and
// serve closes the store.
func (m *modules) run(ctx context.Context, cfg Config, ln, adminLn net.Listener, reload <-chan os.Signal,
	files *logging.TenantFiles, log *zap.Logger) error {
	q, engine := m.queue, m.engine
	g, gctx := errgroup.WithContext(ctx)
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEngine()
	// The insights writer stops after the engine, with the records of its last turns.
	recordsCtx, stopRecords := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRecords()
	g.Go(func() error { return m.records.Run(recordsCtx) })
	g.Go(func() error {
		defer stopRecords()
		return engine.Run(engineCtx)
	})
	if m.desk != nil {
		g.Go(func() error { return m.desk.Run(engineCtx) }) // webhooks: a last try after the server stops
	}
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
		err := m.srv.Run(gctx, ln)
		if q != nil {
			// The records of the turns answered until now, while the connection is open;
			// those of queued turns finished during the drain below may be lost.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if ferr := m.records.Flush(fctx); ferr != nil {
				log.Warn("insight records not flushed before the queue closed", zap.Error(ferr))
			}
			cancel()
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
	// Every replica's change of a knowledge base, served here within moments, until the
	// engine stops.
	g.Go(func() error { return m.kb.Run(engineCtx) })
	g.Go(func() error {
		reloadOnSignal(gctx, reload, m.tenants, files, log)
		return nil
	})
	return g.Wait()
}

// openQueue opens the spillover queue, or returns nil when queue.mode is off, and
// registers its backlog metrics.
func openQueue(ctx context.Context, cfg queue.Config, tenants *tenant.Registry, figures *metrics.Metrics, log *zap.Logger) (*queue.Queue, error) {
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
	if err := figures.Register(q.Collector()); err != nil {
		_ = q.Drain(ctx)
		return nil, fmt.Errorf("queue metrics: %w", err)
	}
	where := cfg.DataDir
	if cfg.Mode == queue.ModeExternal {
		where = logging.RedactURLs(cfg.URL)
	}
	log.Info("spillover queue open", zap.String("mode", cfg.Mode), zap.String("at", where), zap.String("stream", cfg.Stream))
	return q, nil
}

// buildInsights returns the recorder of answered turns and ratings: each tenant's in a
// JetStream stream <queue.stream>_INSIGHTS_<tenant> of the queue's server, on subjects
// under <queue.subject>_insights, apart from the turns stream's <queue.subject>.*; with
// queue.mode off, in this process only.
func buildInsights(cfg insights.Config, q *queue.Queue, figures *metrics.Metrics, log *zap.Logger) (*insights.Recorder, error) {
	var store insights.Store
	if q != nil {
		js, replicas := q.JetStream()
		s, err := insights.NewJetStreamStore(js, q.Stream(), q.Subject()+"_insights", replicas, cfg)
		if err != nil {
			return nil, err
		}
		store = s
	} else {
		s, err := insights.NewMemoryStore(cfg)
		if err != nil {
			return nil, err
		}
		store = s
		log.Info("queue.mode is off: the records of answered turns and ratings are kept in this process only")
	}
	return insights.NewRecorder(store, figures, log)
}

// revocationBoard is the name of the queue's board of revoked tokens.
const revocationBoard = "REVOKED"

// shareRevocations makes token revocations reach every replica within a second: they
// travel on a board of the queue's server that each replica watches into the registry's
// in-memory set, records already there applied before serving. With the queue off they
// apply to this process only.
func shareRevocations(ctx context.Context, q *queue.Queue, tenants *tenant.Registry, pub *revocationPublisher, log *zap.Logger) error {
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
	pub.board = board
	return nil
}

// revocationPublisher puts the registry's revocations on the queue's board. Its board
// is set once, before serving; while it is nil (the queue off) revocations apply to
// this process only.
type revocationPublisher struct{ board *queue.Board }

func (p *revocationPublisher) put(ctx context.Context, key string, value []byte) error {
	if p.board == nil {
		return nil
	}
	return p.board.Put(ctx, key, value)
}

// buildModels returns each tenant's answer engine: its FAQ engine, or for engine kind
// "openai" a model client grounded on that FAQ engine and falling back to it. All model
// clients share one HTTP client; each has its own breaker and bulkhead.
func buildModels(tenants *tenant.Registry, faqs map[tenant.ID]*faq.Swap, getenv func(string) string,
	figures *metrics.Metrics, log *zap.Logger) (map[tenant.ID]dialogue.Answerer, error) {
	out := make(map[tenant.ID]dialogue.Answerer, len(faqs))
	var client *http.Client
	for _, t := range tenants.Tenants() {
		if t.Engine.Kind != tenant.EngineOpenAI {
			out[t.ID] = faqs[t.ID]
			continue
		}
		cfg, err := t.Engine.LLM.Resolve(getenv)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: engine.llm.api_key: %w", t.ID, err)
		}
		cfg.Upstream = cfg.UpstreamName()
		if client == nil {
			client = openai.NewHTTPClient()
		}
		m, err := openai.NewLLM(cfg, openai.LLMDeps{
			Client:   client,
			FAQ:      served(faqs[t.ID]),
			Fallback: t.FallbackAnswer,
			Observer: figures.Upstream(t.ID, cfg.Upstream),
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

// served gives a model client the FAQ engine s serves now.
func served(s *faq.Swap) func() openai.FAQ {
	return func() openai.FAQ { return s.Current() }
}

// The observer interfaces each package declares, and the limiter the gateway takes.
var (
	_ gateway.Metrics     = (*metrics.Metrics)(nil)
	_ dialogue.Observer   = (*metrics.Metrics)(nil)
	_ ratelimit.Observer  = (*metrics.Metrics)(nil)
	_ openai.LLMObserver  = (*metrics.UpstreamObserver)(nil)
	_ gateway.RateLimiter = (*ratelimit.Limiter)(nil)
	_ gateway.Knowledge   = (*knowledge.Service)(nil)
	_ knowledge.Observer  = (*metrics.Metrics)(nil)
	_ insights.Observer   = (*metrics.Metrics)(nil)
	_ dialogue.Insights   = (*insights.Recorder)(nil)
	_ gateway.Feedback    = (*insights.Recorder)(nil)
)

// buildLimiter returns the rate limiter, nil when ratelimit.enabled is false, and how
// to close it. With ratelimit.store redis it counts in the Redis of session.redis,
// through a client of its own so that limit checks and session traffic never wait for
// each other's connections.
func buildLimiter(cfg Config, tenants *tenant.Registry, figures *metrics.Metrics, log *zap.Logger) (*ratelimit.Limiter, func(), error) {
	if !cfg.RateLimit.Enabled {
		return nil, func() {}, nil
	}
	// The limiter's lines keep the logger name they had when the gateway held the limits.
	deps := ratelimit.Deps{Tenants: tenants, Observer: figures, Log: log.Named("gateway")}
	closeClient := func() {}
	if cfg.RateLimit.Store == ratelimit.StoreRedis {
		redis.SetLogger(logging.RedisLogger{Log: log.Named("redis")})
		rc := cfg.Session.Redis
		client, err := session.NewRedisClient(rc)
		if err != nil {
			return nil, nil, fmt.Errorf("session.redis.url: %w", err)
		}
		closeClient = func() { _ = client.Close() }
		store, err := ratelimit.NewRedisLimiter(client, ratelimit.RedisLimiterConfig{KeyPrefix: rc.KeyPrefix})
		if err != nil {
			closeClient()
			return nil, nil, fmt.Errorf("ratelimit: %w", err)
		}
		deps.Store = store
		log.Info("rate limits shared through redis", zap.String("at", logging.RedactURLs(rc.URL)), zap.String("key_prefix", rc.KeyPrefix))
	}
	l, err := ratelimit.New(cfg.RateLimit, deps)
	if err != nil {
		closeClient()
		return nil, nil, err
	}
	return l, closeClient, nil
}

// buildStore opens the configured session store and returns how to close it.
func buildStore(ctx context.Context, cfg session.Config, log *zap.Logger) (dialogue.Store, func(), error) {
	if cfg.Store == session.StoreMemory {
		s, err := session.NewMemoryStore(cfg.MemoryStoreConfig())
		if err != nil {
			return nil, nil, fmt.Errorf("session: %w", err)
		}
		return s, func() {}, nil
	}
	redis.SetLogger(logging.RedisLogger{Log: log.Named("redis")})
	client, err := session.NewRedisClient(cfg.Redis)
	if err != nil {
		return nil, nil, fmt.Errorf("session.redis.url: %w", err)
	}
	s, err := session.NewRedisStore(client, cfg.RedisStoreConfig())
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
