package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/fengda-ai/fengda/logging"
	"github.com/fengda-ai/fengda/metrics"
	"github.com/fengda-ai/fengda/queue"
	"github.com/fengda-ai/fengda/tenant"
)

// The configuration the binary loads (defaults, file, environment, the errors that name
// the key at fault, the masked start-up view), and the deployment files loaded the same
// way (TestDeploy…).

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != ":8080" || cfg.Session.Store != "memory" || cfg.Session.MaxTurns != 100 ||
		cfg.Session.TTL != 168*time.Hour || !cfg.RateLimit.Enabled || cfg.Log.Level != "info" {
		t.Errorf("defaults: got %+v", cfg)
	}
	if len(cfg.Tenants) != 2 {
		t.Errorf("demo tenants: got %d, want 2", len(cfg.Tenants))
	}
}

func TestLoadConfigEnvOverrides(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(map[string]string{
		"FENGDA_SESSION_STORE":     "redis",
		"FENGDA_SESSION_REDIS_URL": "redis://10.0.0.1:6379/2",
		"FENGDA_SESSION_MAX_TURNS": "50",
		"FENGDA_SESSION_TTL":       "1h",
		"FENGDA_DIALOGUE_WORKERS":  "8",
		"FENGDA_DIALOGUE_BACKLOG":  "16",
		"FENGDA_RATELIMIT_ENABLED": "false",
		"FENGDA_LOG_LEVEL":         "debug",
		"FENGDA_SERVER_ADDR":       "127.0.0.1:9999",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{cfg.Session.Store, cfg.Session.Redis.URL, cfg.Session.MaxTurns, cfg.Session.TTL,
		cfg.Dialogue.Workers, cfg.Dialogue.Backlog, cfg.RateLimit.Enabled, cfg.Log.Level, cfg.Server.Addr}
	want := []any{"redis", "redis://10.0.0.1:6379/2", 50, time.Hour, 8, 16, false, "debug", "127.0.0.1:9999"}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("override %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		wantInErr  string
	}{
		{"unknown key", "session:\n  stor: redis\n", nil, "stor"},
		{"bad store", "", map[string]string{"FENGDA_SESSION_STORE": "mongo"}, "session.store"},
		{"bad int", "", map[string]string{"FENGDA_SESSION_MAX_TURNS": "many"}, "session.max_turns"},
		{"bad duration", "", map[string]string{"FENGDA_SESSION_TTL": "7 days"}, "session.ttl"},
		{"bad bool", "", map[string]string{"FENGDA_RATELIMIT_ENABLED": "perhaps"}, "ratelimit.enabled"},
		{"bad level", "", map[string]string{"FENGDA_LOG_LEVEL": "loud"}, "log.level"},
		{"negative workers", "", map[string]string{"FENGDA_DIALOGUE_WORKERS": "-1"}, "dialogue.workers"},
		{"bad queue mode", "", map[string]string{"FENGDA_QUEUE_MODE": "kafka"}, "queue.mode"},
		{"negative drain delay", "", map[string]string{"FENGDA_SERVER_DRAIN_DELAY": "-1s"}, "server.drain_delay"},
		{"admin on every interface", "", map[string]string{"FENGDA_SERVER_ADMIN_ADDR": ":6060"}, "server.admin_addr"},
		{"admin on a public address", "", map[string]string{"FENGDA_SERVER_ADMIN_ADDR": "10.1.2.3:6060"}, "server.admin_addr"},
		{"admin without a port", "", map[string]string{"FENGDA_SERVER_ADMIN_ADDR": "127.0.0.1"}, "server.admin_addr"},
		{"ack wait within the answer deadline", "", map[string]string{"FENGDA_QUEUE_ACK_WAIT": "5s"}, "queue.ack_wait"},
		{"bad type in file", "session:\n  max_turns: lots\n", nil, "max_turns"},
		{"unset reference", "session:\n  redis:\n    url: ${FENGDA_TEST_UNSET}\n", nil,
			"session.redis.url: environment variable FENGDA_TEST_UNSET is unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(tc.file)
			}
			_, _, err := loadConfig(path, envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("got error %v, want one naming %q", err, tc.wantInErr)
			}
		})
	}
}

func TestLoadConfigExpandsReferences(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	body := "session:\n  max_turns: ${TURNS:-40}\n  redis:\n    url: \"${REDIS_URL}\"\n    key_prefix: \"x-${PREFIX:-fd}:\"\n" +
		"tenants:\n  - id: t1\n    keys: [{kid: k1, alg: HS256, secret: {value: \"${SECRET:-0123456789abcdef0123456789abcdef}\"}}]\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// A value cannot add structure: YAML inside a variable stays a string.
	cfg, _, err := loadConfig(p, envOf(map[string]string{"REDIS_URL": "redis://h:1/0\nlog:\n  level: debug"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Session.MaxTurns != 40 || cfg.Session.Redis.URL != "redis://h:1/0\nlog:\n  level: debug" ||
		cfg.Session.Redis.KeyPrefix != "x-fd:" || cfg.Log.Level != "info" {
		t.Errorf("got max_turns %d url %q prefix %q level %q", cfg.Session.MaxTurns, cfg.Session.Redis.URL,
			cfg.Session.Redis.KeyPrefix, cfg.Log.Level)
	}
}

func TestLoadConfigDrainDelayAndAdmin(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.DrainDelay != 5*time.Second || cfg.Server.AdminAddr != "" {
		t.Errorf("config.yaml: drain_delay %v, admin_addr %q; want 5s and off", cfg.Server.DrainDelay, cfg.Server.AdminAddr)
	}
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:0"} {
		cfg, _, err := loadConfig("", envOf(map[string]string{"FENGDA_SERVER_DRAIN_DELAY": "0s", "FENGDA_SERVER_ADMIN_ADDR": addr}))
		if err != nil {
			t.Errorf("admin_addr %s: %v", addr, err)
			continue
		}
		if cfg.Server.DrainDelay != 0 || cfg.Server.AdminAddr != addr {
			t.Errorf("drain_delay %v, admin_addr %q; want 0s and %s", cfg.Server.DrainDelay, cfg.Server.AdminAddr, addr)
		}
	}
}

// TestEffectiveConfigMasksSecrets: the start-up log shows every setting and where each
// secret comes from, but no secret.
func TestEffectiveConfigMasksSecrets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	body := `session:
  redis:
    url: "redis://:hunter2-redis@10.0.0.5:6379/0,10.0.0.6:6379"
queue:
  mode: external
  url: "nats://fengda:hunter2-nats@nats-0:4222"
tenants:
  - id: t1
    keys:
      - {kid: k1, alg: HS256, secret: {value: "hunter2-jwt-0123456789abcdef0123456789"}}
      - {kid: k2, alg: HS256, secret: {env: T1_JWT}}
    api_keys: [{value: "hunter2-apikey-0123456789abcdef"}, {file: /run/secrets/t1-api}]
    engine:
      kind: openai
      kb: kb/shop-en.yaml
      llm:
        base_url: "https://user:hunter2-base@llm.example.com/v1"
        model: m
        api_key: {value: "sk-hunter2-llm"}
        system_prompt: "You are the shop's assistant. hunter2-instructions"
`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := loadConfig(p, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(effectiveConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if strings.Contains(out, "hunter2") {
		t.Errorf("a secret is in the effective config: %s", out)
	}
	for _, want := range []string{`"env:T1_JWT"`, `"file:/run/secrets/t1-api"`, `"(inline value, masked)"`,
		`10.0.0.5:6379`, `nats-0:4222`, `llm.example.com`, `"system_prompt":"(50 characters)"`, `"drain_delay":"5s"`, `"max_turns":100`, `10.0.0.6:6379"`, `"mode":"external"`} {
		if !strings.Contains(out, want) {
			t.Errorf("effective config lacks %s: %s", want, out)
		}
	}
}

func TestLoadConfigRateLimit(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RateLimit; !got.Enabled || got.Store != "local" || got.Timeout != 50*time.Millisecond || got.Backoff != time.Second {
		t.Errorf("config.yaml: ratelimit %+v, want enabled, local, 50ms, 1s", got)
	}
	cfg, _, err = loadConfig("", envOf(map[string]string{
		"FENGDA_RATELIMIT_STORE":   "redis",
		"FENGDA_RATELIMIT_TIMEOUT": "20ms",
		"FENGDA_RATELIMIT_BACKOFF": "5s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RateLimit; got.Store != "redis" || got.Timeout != 20*time.Millisecond || got.Backoff != 5*time.Second {
		t.Errorf("from the environment: ratelimit %+v, want redis, 20ms, 5s", got)
	}

	p := filepath.Join(t.TempDir(), "c.yaml")
	write := func(body string) string {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tenants := "tenants:\n  - id: t1\n    keys: [{kid: k1, alg: HS256, secret: {value: \"0123456789abcdef0123456789abcdef\"}}]\n"
	for _, tc := range []struct {
		name, file string
		env        map[string]string
		wantInErr  string
	}{
		{"unknown store", "", map[string]string{"FENGDA_RATELIMIT_STORE": "memcached"}, "ratelimit.store"},
		{"zero timeout", "", map[string]string{"FENGDA_RATELIMIT_TIMEOUT": "0s"}, "ratelimit.timeout"},
		{"negative backoff", "", map[string]string{"FENGDA_RATELIMIT_BACKOFF": "-1s"}, "ratelimit.backoff"},
		{"bad duration", "", map[string]string{"FENGDA_RATELIMIT_TIMEOUT": "fast"}, "ratelimit.timeout"},
		{"redis without url", "session:\n  redis:\n    url: \"\"\nratelimit:\n  store: redis\n" + tenants, nil, "session.redis.url"},
		{"unknown key", "ratelimit:\n  stroe: redis\n" + tenants, nil, "stroe"},
		{"negative user rps", "tenants:\n  - id: t1\n    keys: [{kid: k1, alg: HS256, secret: {value: \"0123456789abcdef0123456789abcdef\"}}]\n    rate_limit: {user_rps: -1}\n", nil,
			"tenants[0].rate_limit.user_rps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = write(tc.file)
			}
			cfg, _, err := loadConfig(path, envOf(tc.env))
			if err == nil {
				// Tenants are validated by the registry, as the program starts.
				_, err = tenant.NewRegistry(cfg.Tenants, envOf(tc.env))
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("got error %v, want one naming %q", err, tc.wantInErr)
			}
		})
	}
}

// TestTenantLogDirConfig: log.tenant_dir is off by default and set from the
// environment; the logger opens a file per configured tenant there.
func TestTenantLogDirConfig(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.TenantDir != "" {
		t.Errorf("log.tenant_dir defaults to %q, want off", cfg.Log.TenantDir)
	}
	dir := t.TempDir()
	cfg, _, err = loadConfig("", envOf(map[string]string{"FENGDA_LOG_TENANT_DIR": dir}))
	if err != nil || cfg.Log.TenantDir != dir {
		t.Fatalf("FENGDA_LOG_TENANT_DIR: got %q, %v", cfg.Log.TenantDir, err)
	}
	log, err := logging.New(cfg.Log, cfg.Tenants, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_ = log.Close()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "northwind-shop.log qinghe-bank.log" {
		t.Errorf("log.tenant_dir holds %v, want a file per configured tenant and nothing else", names)
	}
}

func TestLogFlushIntervalConfig(t *testing.T) {
	cfg, _, err := loadConfig("", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.FlushInterval != 100*time.Millisecond {
		t.Errorf("log.flush_interval defaults to %v, want 100ms", cfg.Log.FlushInterval)
	}
	cfg, _, err = loadConfig("", envOf(map[string]string{"FENGDA_LOG_FLUSH_INTERVAL": "0s"}))
	if err != nil || cfg.Log.FlushInterval != 0 {
		t.Errorf("FENGDA_LOG_FLUSH_INTERVAL=0s: got %v, %v", cfg.Log.FlushInterval, err)
	}
	_, _, err = loadConfig("", envOf(map[string]string{"FENGDA_LOG_FLUSH_INTERVAL": "-1s"}))
	if err == nil || !strings.Contains(err.Error(), "log.flush_interval") {
		t.Errorf("a negative log.flush_interval: got %v, want an error naming the key", err)
	}
}

// The deployment files (Dockerfile, docker-compose.yml, deploy/k8s/, deploy/grafana/)
// against the binary. Each way they run it (the image as built, each compose service,
// the Kubernetes Deployment with its ConfigMap) is turned into the Config the binary
// would load, through loadConfig and the tenant registry with that environment, and the
// checks read shutdown, queue, tenant and address settings from that Config. Run them
// alone with go test -run TestDeploy .

const (
	dockerfile    = "Dockerfile"
	composeFile   = "docker-compose.yml"
	manifestDir   = "deploy/k8s"
	dashboardFile = "deploy/grafana/fengda.json"
	// imageRepo is the image every deployment file runs.
	imageRepo = "ghcr.io/fengda-ai/fengda"
	// imageDir is the image's WORKDIR, below which it holds config.yaml, kb/ and examples/.
	imageDir = "/app"
	// binaryPath is where the Dockerfile puts the binary, which health checks call.
	binaryPath = "/usr/local/bin/fengda"
	// configMapKey is the ConfigMap entry mounted as the config file.
	configMapKey = "config.yaml"
)

// launch is one way the deployment files run the binary, and the configuration it loads.
type launch struct {
	where string            // the file and service
	env   map[string]string // the image's ENV plus the service's own environment
	cfg   Config
	read  map[string]bool // every variable loading asked for
}

// loadLaunch loads config with env as serve does (loadConfig, then the tenant registry,
// which resolves the tenants' secrets), and fails the test if either fails.
func loadLaunch(t *testing.T, where, config string, env map[string]string) launch {
	t.Helper()
	l := launch{where: where, env: env, read: make(map[string]bool)}
	getenv := func(name string) string {
		l.read[name] = true
		return env[name]
	}
	cfg, _, err := loadConfig(config, getenv)
	if err != nil {
		t.Fatalf("%s: the configuration does not load: %v", where, err)
	}
	if _, err := tenant.NewRegistry(cfg.Tenants, getenv); err != nil {
		t.Fatalf("%s: the tenants do not load: %v", where, err)
	}
	l.cfg = cfg
	return l
}

// checkEnvRead fails the test for every FENGDA_* variable of l that loading never asked
// for: it names no config key and no variable the config file reads, so the binary
// ignores it and the setting it meant never applies.
func (l launch) checkEnvRead(t *testing.T) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(l.env)) {
		if strings.HasPrefix(name, "FENGDA_") && !l.read[name] {
			t.Errorf("%s: %s names no config key (FENGDA_A_B_C sets a.b.c) and no variable its config file reads: the binary ignores it", l.where, name)
		}
	}
}

// checkGrace fails the test unless grace, counted from the stop signal (or from the
// start of a preStop sleep of sleep), leaves the process its drain_delay and
// shutdown_timeout.
func (l launch) checkGrace(t *testing.T, what string, grace, sleep time.Duration) {
	t.Helper()
	drain, shutdown := l.cfg.Server.DrainDelay, l.cfg.Server.ShutdownTimeout
	if need := sleep + drain + shutdown; grace <= need {
		sum := fmt.Sprintf("server.drain_delay %s + server.shutdown_timeout %s = %s", drain, shutdown, need)
		if sleep > 0 {
			sum = fmt.Sprintf("the preStop sleep %s + %s", sleep, sum)
		}
		t.Errorf("%s: %s %s must exceed %s", l.where, what, grace, sum)
	}
}

// listenPort is the port of server.addr.
func (l launch) listenPort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(l.cfg.Server.Addr)
	if err != nil {
		t.Fatalf("%s: server.addr %q: %v", l.where, l.cfg.Server.Addr, err)
	}
	return port
}

// imageEnv is the environment the Dockerfile's runtime stage sets (ENV lines after the
// last FROM), which every container of the image starts with.
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for line := range strings.Lines(string(mustRead(t, dockerfile))) {
		switch f := strings.Fields(line); {
		case len(f) > 0 && f[0] == "FROM":
			clear(env)
		case len(f) > 1 && f[0] == "ENV":
			for _, kv := range f[1:] {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	return env
}

// imageLaunch is the image run as built (docker run): config.yaml and the image's ENV.
func imageLaunch(t *testing.T) launch {
	t.Helper()
	return loadLaunch(t, dockerfile, "config.yaml", imageEnv(t))
}

// --- Kubernetes ---

// manifest is one YAML document of a file under deploy/k8s/.
type manifest struct {
	file string
	doc  int // 1-based index within the file
	kind string
	name string
	node *yaml.Node
}

func (m manifest) String() string {
	return fmt.Sprintf("%s (document %d, %s %s)", m.file, m.doc, m.kind, m.name)
}

// decode decodes the whole document into v.
func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", m, err)
	}
}

// loadManifests parses every document of every YAML file under deploy/k8s/, and fails
// on invalid YAML (duplicate keys included) or a document that is not a Kubernetes
// object.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(manifestDir, pattern))
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no YAML files under %s", manifestDir)
	}
	var out []manifest
	for _, file := range files {
		dec := yaml.NewDecoder(bytes.NewReader(mustRead(t, file)))
		for doc := 1; ; doc++ {
			var n yaml.Node
			err := dec.Decode(&n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: document %d: invalid YAML: %v", file, doc, err)
			}
			if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
				continue // an empty document, e.g. after a trailing ---
			}
			var generic map[string]any // catches duplicate keys, which yaml.Node keeps
			if err := n.Decode(&generic); err != nil {
				t.Fatalf("%s: document %d: %v", file, doc, err)
			}
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
				Metadata   struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			}
			if err := n.Decode(&head); err != nil {
				t.Fatalf("%s: document %d: %v", file, doc, err)
			}
			if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
				t.Fatalf("%s: document %d: not a Kubernetes object (apiVersion %q, kind %q, metadata.name %q)",
					file, doc, head.APIVersion, head.Kind, head.Metadata.Name)
			}
			out = append(out, manifest{file: file, doc: doc, kind: head.Kind, name: head.Metadata.Name, node: &n})
		}
	}
	return out
}

// only returns the single manifest of kind, failing if there is none or more than one.
func only(t *testing.T, ms []manifest, kind string) manifest {
	t.Helper()
	var found []manifest
	for _, m := range ms {
		if m.kind == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s under %s, found %d: %v", kind, manifestDir, len(found), found)
	}
	return found[0]
}

// Kubernetes objects, reduced to the fields checked here.

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sDeployment struct {
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas *int32        `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds *int64         `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int64 `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

type scaleTarget struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
}

type k8sScaledObject struct {
	Spec struct {
		ScaleTargetRef  scaleTarget `yaml:"scaleTargetRef"`
		MinReplicaCount int         `yaml:"minReplicaCount"`
		MaxReplicaCount int         `yaml:"maxReplicaCount"`
		Advanced        struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior any `yaml:"behavior"`
			} `yaml:"horizontalPodAutoscalerConfig"`
		} `yaml:"advanced"`
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

// kubernetes is what the checks share: the manifests, and the Deployment and its one
// container.
type kubernetes struct {
	manifests []manifest
	deploy    k8sDeployment
	container k8sContainer
}

func loadKubernetes(t *testing.T) kubernetes {
	t.Helper()
	k := kubernetes{manifests: loadManifests(t)}
	d := only(t, k.manifests, "Deployment")
	d.decode(t, &k.deploy)
	cs := k.deploy.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%s: want one container, found %d", d, len(cs))
	}
	k.container = cs[0]
	return k
}

// load is the launch of the Deployment's container with the ConfigMap's config file.
func (k kubernetes) load(t *testing.T) launch {
	t.Helper()
	cm := only(t, k.manifests, "ConfigMap")
	var data struct {
		Data map[string]string `yaml:"data"`
	}
	cm.decode(t, &data)
	text, ok := data.Data[configMapKey]
	if !ok {
		t.Fatalf("%s: no data key %q", cm, configMapKey)
	}
	config := filepath.Join(t.TempDir(), configMapKey)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := imageEnv(t)
	for i, e := range k.container.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			// A Secret's value: long enough for any key, and distinct.
			env[e.Name] = fmt.Sprintf("secret-from-kubernetes-%02d-%s", i, strings.Repeat("x", 40))
		}
	}
	d := only(t, k.manifests, "Deployment")
	return loadLaunch(t, fmt.Sprintf("%s with %s", d.file, cm.file), config, env)
}

func TestDeployKubernetesManifests(t *testing.T) {
	ms := loadManifests(t)
	seen := make(map[string]manifest)
	for _, m := range ms {
		id := m.kind + "/" + m.name
		if prev, ok := seen[id]; ok {
			t.Errorf("%s defined twice: %s and %s", id, prev, m)
		}
		seen[id] = m
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ScaledObject"} {
		only(t, ms, kind)
	}
}

func TestDeployKubernetesShutdown(t *testing.T) {
	k := loadKubernetes(t)
	l := k.load(t)
	c := k.container
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("container %s: want a readinessProbe httpGet on /readyz (503 while draining)", c.Name)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("container %s: want a livenessProbe httpGet on /healthz", c.Name)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		t.Fatalf("container %s: want a lifecycle.preStop sleep of some seconds: a replica scaling in must drain first", c.Name)
	}
	grace := k.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("Deployment: terminationGracePeriodSeconds unset (the default 30s is not derived from the shutdown)")
	}
	// The grace period counts from the start of preStop: the process gets what is left
	// of it after the sleep, serves on for drain_delay, and needs shutdown_timeout of it
	// and then some.
	l.checkGrace(t, "terminationGracePeriodSeconds", time.Duration(*grace)*time.Second,
		time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second)
}

func TestDeployKEDATriggers(t *testing.T) {
	k := loadKubernetes(t)
	l := k.load(t)
	var so k8sScaledObject
	soM := only(t, k.manifests, "ScaledObject")
	soM.decode(t, &so)
	if so.Spec.ScaleTargetRef.Name != k.deploy.Metadata.Name {
		t.Errorf("%s: scaleTargetRef.name %q, want the Deployment %q", soM, so.Spec.ScaleTargetRef.Name, k.deploy.Metadata.Name)
	}
	q := l.cfg.Queue
	if q.Mode != queue.ModeExternal {
		t.Errorf("%s: queue.mode is %q: replicas share one queue only with mode %s", l.where, q.Mode, queue.ModeExternal)
	}
	first, _, _ := strings.Cut(q.URL, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.Hostname() == "" {
		t.Fatalf("%s: queue.url %q is not a NATS URL", l.where, q.URL)
	}

	// Each tenant's durable consumer is <stream>_<tenant> (queue.consumerName).
	consumers := make(map[string]string) // consumer name → tenant
	for _, tn := range l.cfg.Tenants {
		consumers[q.Stream+"_"+tn.ID] = tn.ID
	}
	triggered := make(map[string]bool)
	for i, tr := range so.Spec.Triggers {
		if tr.Type != "nats-jetstream" {
			continue
		}
		md := tr.Metadata
		at := fmt.Sprintf("%s: triggers[%d]", soM, i)
		for _, field := range []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"} {
			if md[field] == "" {
				t.Errorf("%s: metadata.%s is required", at, field)
			}
		}
		if md["stream"] != q.Stream {
			t.Errorf("%s: stream %q, want %q (queue.stream)", at, md["stream"], q.Stream)
		}
		owner, ok := consumers[md["consumer"]]
		switch {
		case !ok:
			// KEDA reports a missing consumer's lag as the stream's last sequence
			// number and scales to the maximum.
			t.Errorf("%s: consumer %q is not <stream>_<tenant> for any tenant of the ConfigMap (want one of %v)",
				at, md["consumer"], slices.Sorted(maps.Keys(consumers)))
		case triggered[owner]:
			t.Errorf("%s: a second trigger for tenant %s", at, owner)
		default:
			triggered[owner] = true
		}
		if n, err := strconv.ParseInt(md["lagThreshold"], 10, 64); err != nil || n <= 0 {
			t.Errorf("%s: lagThreshold %q is not a positive whole number", at, md["lagThreshold"])
		}
		mon, err := url.Parse("http://" + md["natsServerMonitoringEndpoint"])
		switch {
		case err != nil || mon.Path != "" || mon.Hostname() == "" || mon.Port() == "":
			t.Errorf("%s: natsServerMonitoringEndpoint %q is not host:port (NATS monitoring is 8222)", at, md["natsServerMonitoringEndpoint"])
		case mon.Hostname() != u.Hostname():
			t.Errorf("%s: lag is read from %s, but the replicas queue on %s (queue.url)", at, mon.Hostname(), u.Hostname())
		}
	}
	for _, tn := range l.cfg.Tenants {
		if !triggered[tn.ID] {
			t.Errorf("%s: no nats-jetstream trigger for tenant %s (consumer %s_%s): its backlog would not scale anything",
				soM, tn.ID, q.Stream, tn.ID)
		}
	}
}

func TestDeployAutoscalers(t *testing.T) {
	k := loadKubernetes(t)
	var h struct {
		Spec struct {
			ScaleTargetRef scaleTarget `yaml:"scaleTargetRef"`
			MinReplicas    int         `yaml:"minReplicas"`
			MaxReplicas    int         `yaml:"maxReplicas"`
			Behavior       any         `yaml:"behavior"`
		} `yaml:"spec"`
	}
	hM := only(t, k.manifests, "HorizontalPodAutoscaler")
	hM.decode(t, &h)
	var so k8sScaledObject
	only(t, k.manifests, "ScaledObject").decode(t, &so)

	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != k.deploy.Metadata.Name {
		t.Errorf("%s: scaleTargetRef %s/%s, want Deployment/%s", hM, ref.Kind, ref.Name, k.deploy.Metadata.Name)
	}
	if k.deploy.Spec.Replicas != nil {
		t.Errorf("Deployment: spec.replicas is set: every apply would reset the autoscaler's count")
	}
	if h.Spec.MinReplicas != so.Spec.MinReplicaCount || h.Spec.MaxReplicas != so.Spec.MaxReplicaCount {
		t.Errorf("replica bounds differ: HPA %d..%d, ScaledObject %d..%d",
			h.Spec.MinReplicas, h.Spec.MaxReplicas, so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
	}
	if h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < h.Spec.MinReplicas {
		t.Errorf("HPA: replicas %d..%d: want at least 2 and max ≥ min", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if h.Spec.Behavior == nil {
		t.Errorf("%s: no behavior: the scale-out and scale-in policy is missing", hM)
	}
	if diff := cmp.Diff(h.Spec.Behavior, so.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior); diff != "" {
		t.Errorf("behavior differs between the HPA and the ScaledObject (-hpa +keda):\n%s", diff)
	}
}

func TestDeployKubernetesSelectors(t *testing.T) {
	k := loadKubernetes(t)
	l := k.load(t)
	pod := k.deploy.Spec.Template.Metadata.Labels
	selects := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for key, v := range sel {
			if pod[key] != v {
				return false
			}
		}
		return true
	}
	if !selects(k.deploy.Spec.Selector.MatchLabels) {
		t.Errorf("Deployment: selector %v does not match its pod labels %v", k.deploy.Spec.Selector.MatchLabels, pod)
	}
	var svc struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	only(t, k.manifests, "Service").decode(t, &svc)
	if !selects(svc.Spec.Selector) {
		t.Errorf("Service: selector %v does not match the pod labels %v", svc.Spec.Selector, pod)
	}
	for _, p := range svc.Spec.Ports {
		found := false
		for _, cp := range k.container.Ports {
			found = found || p.TargetPort == cp.Name || p.TargetPort == cp.ContainerPort
		}
		if !found {
			t.Errorf("Service: targetPort %v is no port of the container", p.TargetPort)
		}
	}
	listen := l.listenPort(t)
	for _, cp := range k.container.Ports {
		if strconv.Itoa(cp.ContainerPort) != listen {
			t.Errorf("container port %s is %d, but the binary listens on %s (server.addr %q)", cp.Name, cp.ContainerPort, listen, l.cfg.Server.Addr)
		}
	}
	var pdb struct {
		Spec struct {
			Selector labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
	only(t, k.manifests, "PodDisruptionBudget").decode(t, &pdb)
	if !selects(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget: selector %v does not match the pod labels %v", pdb.Spec.Selector.MatchLabels, pod)
	}

	cm := only(t, k.manifests, "ConfigMap")
	mounted := false
	for _, v := range k.deploy.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != cm.name {
			continue
		}
		for _, m := range k.container.VolumeMounts {
			if m.Name == v.Name && slices.Contains(k.container.Args, path.Join(m.MountPath, configMapKey)) {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("Deployment: ConfigMap %s is not mounted where -config reads it (args %v)", cm.name, k.container.Args)
	}
}

// --- docker compose ---

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Profiles    []string          `yaml:"profiles"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	Volumes         []string `yaml:"volumes"`
}

type composeProject struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

func loadCompose(t *testing.T) composeProject {
	t.Helper()
	data := mustRead(t, composeFile)
	var generic map[string]any // fails on duplicate keys too
	if err := yaml.Unmarshal(data, &generic); err != nil {
		t.Fatalf("%s: invalid YAML: %v", composeFile, err)
	}
	var p composeProject
	if err := yaml.Unmarshal(data, &p); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

// composeVar is compose's ${NAME} or ${NAME:-default}, which a fresh `docker compose
// up`, with nothing set in the shell, replaces by the default.
var composeVar = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}`)

// fengdaServices returns, by name, the services of p that run Fengda's image (any image
// naming fengda, so that a misspelt repository is still checked), each with its launch.
func fengdaServices(t *testing.T, p composeProject) map[string]launch {
	t.Helper()
	out := make(map[string]launch)
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if !strings.Contains(s.Image, "fengda") {
			continue
		}
		config := "config.yaml" // read from the WORKDIR without -config
		if i := slices.Index(s.Command, "-config"); i >= 0 && i+1 < len(s.Command) {
			config = strings.TrimPrefix(s.Command[i+1], imageDir+"/")
		}
		env := imageEnv(t)
		for k, v := range s.Environment {
			env[k] = composeVar.ReplaceAllString(v, "$1")
		}
		out[name] = loadLaunch(t, composeFile+": "+name, config, env)
	}
	return out
}

func TestDeployCompose(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"fengda", "redis", "nats"} {
		s, ok := p.Services[name]
		switch {
		case !ok:
			t.Errorf("%s: no service %s", composeFile, name)
		case len(s.Profiles) > 0:
			t.Errorf("%s: service %s is in profiles %v: it must start by default", composeFile, name, s.Profiles)
		case s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD":
			t.Errorf("%s: service %s: want a healthcheck test in exec form [CMD, …] (no shell in the images)", composeFile, name)
		}
	}
	if hc := p.Services["redis"].Healthcheck; hc != nil && !slices.Equal(hc.Test[1:], []string{"redis-cli", "ping"}) {
		t.Errorf("redis healthcheck %v, want redis-cli ping", hc.Test)
	}
	nats := p.Services["nats"]
	if !strings.HasSuffix(nats.Image, "-alpine") {
		t.Errorf("nats image %s: the health check needs wget, which only the -alpine variant has", nats.Image)
	}
	for _, flag := range []string{"-js", "-sd", "-m"} {
		if !slices.Contains(nats.Command, flag) {
			t.Errorf("nats command %v lacks %s (JetStream, its file store, monitoring)", nats.Command, flag)
		}
	}
	if i := slices.Index(nats.Command, "-sd"); i >= 0 && i+1 < len(nats.Command) && !mountsAt(nats.Volumes, nats.Command[i+1]) {
		t.Errorf("nats stores JetStream at %s, which is not a volume (%v)", nats.Command[i+1], nats.Volumes)
	}
	if hc := nats.Healthcheck; hc != nil && !strings.Contains(strings.Join(hc.Test, " "), ":8222/healthz?js-enabled-only=true") {
		t.Errorf("nats healthcheck %v, want the monitoring port's /healthz?js-enabled-only=true", hc.Test)
	}
	for _, v := range append(p.Services["redis"].Volumes, nats.Volumes...) {
		name, _, _ := strings.Cut(v, ":")
		if _, ok := p.Volumes[name]; !ok && !strings.HasPrefix(name, ".") && !strings.HasPrefix(name, "/") {
			t.Errorf("volume %s is not declared under volumes:", name)
		}
	}
}

func TestDeployComposeFengda(t *testing.T) {
	p := loadCompose(t)
	launches := fengdaServices(t, p)
	if _, ok := launches["fengda"]; !ok {
		t.Fatalf("%s: service fengda does not run %s", composeFile, imageRepo)
	}
	ollama := false
	for name, l := range launches {
		s := p.Services[name]
		for _, dep := range []string{"redis", "nats"} {
			if c := s.DependsOn[dep].Condition; c != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", l.where, dep, c)
			}
		}
		if hc := s.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", binaryPath, "healthcheck"}) {
			t.Errorf("%s: want healthcheck [CMD %s healthcheck]: the image has no curl", l.where, binaryPath)
		}
		if l.cfg.Session.Store != "redis" {
			t.Errorf("%s: session.store is %q, want redis", l.where, l.cfg.Session.Store)
		}
		if u, err := url.Parse(l.cfg.Session.Redis.URL); err != nil || u.Hostname() != "redis" {
			t.Errorf("%s: session.redis.url %q does not name the redis service", l.where, l.cfg.Session.Redis.URL)
		}
		if l.cfg.Queue.Mode != queue.ModeExternal {
			t.Errorf("%s: queue.mode is %q, want %s", l.where, l.cfg.Queue.Mode, queue.ModeExternal)
		}
		if u, err := url.Parse(l.cfg.Queue.URL); err != nil || u.Hostname() != "nats" {
			t.Errorf("%s: queue.url %q does not name the nats service", l.where, l.cfg.Queue.URL)
		}
		listen := l.listenPort(t)
		for _, port := range s.Ports {
			if i := strings.LastIndex(port, ":"); port[i+1:] != listen {
				t.Errorf("%s: ports %q publishes container port %s, but the binary listens on %s (server.addr %q)", l.where, port, port[i+1:], listen, l.cfg.Server.Addr)
			}
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil {
			t.Errorf("%s: stop_grace_period %q is not a duration (docker's default of 10s is not derived from the shutdown)", l.where, s.StopGracePeriod)
		}
		l.checkGrace(t, "stop_grace_period", grace, 0)

		if slices.Contains(s.Profiles, "ollama") {
			for _, tn := range l.cfg.Tenants {
				if tn.Engine.Kind != tenant.EngineOpenAI {
					continue
				}
				ollama = true
				if u, err := url.Parse(tn.Engine.LLM.BaseURL); err != nil || u.Host != "ollama:11434" {
					t.Errorf("%s: tenant %s: engine.llm.base_url %q does not name the ollama service", l.where, tn.ID, tn.Engine.LLM.BaseURL)
				}
			}
		}
	}
	if !ollama {
		t.Errorf("%s: no Fengda service in profile ollama with a model tenant", composeFile)
	}
}

// --- every launch ---

// TestDeployEnv: every FENGDA_* variable a deployment file sets is one the binary reads,
// and the Deployment's variables are set once each, secrets by a whole secretKeyRef.
func TestDeployEnv(t *testing.T) {
	k := loadKubernetes(t)
	l := k.load(t)
	launches := []launch{imageLaunch(t), l}
	for _, l := range fengdaServices(t, loadCompose(t)) {
		launches = append(launches, l)
	}
	for _, l := range launches {
		l.checkEnvRead(t)
	}
	names := make(map[string]bool)
	for _, e := range k.container.Env {
		if names[e.Name] {
			t.Errorf("%s: env %s set twice", l.where, e.Name)
		}
		names[e.Name] = true
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if ref := e.ValueFrom.SecretKeyRef; ref.Name == "" || ref.Key == "" {
				t.Errorf("%s: env %s: secretKeyRef needs a name and a key", l.where, e.Name)
			}
		}
	}
}

// TestDeployImages: every deployment file runs the same image, and compose can build it.
func TestDeployImages(t *testing.T) {
	k := loadKubernetes(t)
	repo, _, _ := strings.Cut(k.container.Image, "@")
	if repo, _, _ = strings.Cut(repo, ":"); repo != imageRepo {
		t.Errorf("Deployment image %s, want %s:<version>", k.container.Image, imageRepo)
	}
	p := loadCompose(t)
	for name := range fengdaServices(t, p) {
		if img := p.Services[name].Image; !strings.HasPrefix(img, imageRepo+":") {
			t.Errorf("%s: service %s runs image %s, want %s:<version>", composeFile, name, img, imageRepo)
		}
	}
	if p.Services["fengda"].Build == nil {
		t.Errorf("%s: service fengda has no build: docker compose up --build could not make the image", composeFile)
	}
}

// TestDeployDockerfile checks what the image must hold, as far as a file can show it
// without a Docker engine: a static build, a non-root user, the files the binary reads,
// its own health check, and the data directory as a volume.
func TestDeployDockerfile(t *testing.T) {
	text := string(mustRead(t, dockerfile))
	for _, re := range []string{
		`(?m)^FROM \S+ AS build$`,
		`CGO_ENABLED=0`,
		`go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=\$\{VERSION\}"`,
		`(?m)^ARG RUNTIME_IMAGE=gcr\.io/distroless/static-debian12:nonroot$`,
		`(?m)^USER 65532:65532$`,
		`(?m)^COPY config\.yaml ` + imageDir + `/config\.yaml$`,
		`(?m)^COPY kb/ ` + imageDir + `/kb/$`,
		`(?m)^COPY examples/ ` + imageDir + `/examples/$`,
		`(?m)^WORKDIR ` + imageDir + `$`,
		`(?m)^VOLUME \["` + imageDir + `/data"\]$`,
		`CMD \["` + regexp.QuoteMeta(binaryPath) + `", "healthcheck"\]`,
		`(?m)^ENTRYPOINT \["` + regexp.QuoteMeta(binaryPath) + `"\]$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("%s: nothing matches %s", dockerfile, re)
		}
	}
	l := imageLaunch(t)
	// The embedded queue's file store lies in the volume.
	dir := l.cfg.Queue.DataDir
	if !path.IsAbs(dir) {
		dir = path.Join(imageDir, dir)
	}
	if !strings.HasPrefix(dir, imageDir+"/data/") {
		t.Errorf("%s: queue.data_dir %q is not below %s/data, the image's volume", l.where, l.cfg.Queue.DataDir, imageDir)
	}
	if listen := l.listenPort(t); !regexp.MustCompile(`(?m)^EXPOSE ` + listen + `$`).MatchString(text) {
		t.Errorf("%s: no EXPOSE %s, the port of server.addr %q", dockerfile, listen, l.cfg.Server.Addr)
	}
	// Every file the image copies from the context is there and not ignored.
	var ignore []string
	for line := range strings.Lines(string(mustRead(t, ".dockerignore"))) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignore = append(ignore, line)
		}
	}
	for _, src := range []string{"go.mod", "go.sum", "config.yaml", "kb", "examples", "main.go"} {
		if _, err := os.Stat(src); err != nil {
			t.Errorf("the image copies %s: %v", src, err)
		}
		if slices.Contains(ignore, src) || slices.Contains(ignore, src+"/") {
			t.Errorf(".dockerignore leaves out %s, which the image needs", src)
		}
	}
}

// --- the dashboard ---

// metricSources define Fengda's metric vectors and the queue's collector, whose names
// a registry reports only once they have a child or a server to ask.
var metricSources = []string{"metrics/metrics.go", "queue/stats.go"}

// servedMetrics returns the names /metrics serves: what the registry of
// metrics.New gathers before any traffic (the Go runtime and process collectors),
// and the fengda_* names defined in metricSources.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := make(map[string]bool)
	families, err := metrics.New().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}
	defined := regexp.MustCompile(`"(fengda_[a-z_]+)"`)
	for _, src := range metricSources {
		for _, m := range defined.FindAllStringSubmatch(string(mustRead(t, src)), -1) {
			names[m[1]] = true
		}
	}
	return names
}

// TestDeployDashboard: the Grafana dashboard is valid JSON, every metric its panels and
// variables query is one Fengda serves, and every Fengda metric has a panel.
func TestDeployDashboard(t *testing.T) {
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(mustRead(t, dashboardFile), &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.UID == "" {
		t.Errorf("%s: no uid", dashboardFile)
	}
	queries := make(map[string][]string) // panel or variable → its queries
	p95 := false
	for _, p := range dash.Panels {
		p95 = p95 || strings.Contains(p.Title, "p95")
		if p.Type == "row" {
			continue
		}
		at := fmt.Sprintf("panel %q", p.Title)
		if len(p.Targets) == 0 {
			t.Errorf("%s: %s has no query", dashboardFile, at)
		}
		for _, tg := range p.Targets {
			queries[at] = append(queries[at], tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			at := fmt.Sprintf("variable %q", v.Name)
			queries[at] = append(queries[at], q)
		}
	}
	if !p95 {
		t.Errorf("%s: no p95 latency panel", dashboardFile)
	}

	served := servedMetrics(t)
	queriedName := regexp.MustCompile(`\b((?:fengda|go|process)_[a-z0-9_]+)`)
	queried := make(map[string]bool)
	for _, at := range slices.Sorted(maps.Keys(queries)) {
		for _, q := range queries[at] {
			for _, m := range queriedName.FindAllStringSubmatch(q, -1) {
				name := m[1]
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
						name = base
					}
				}
				if !served[name] {
					t.Errorf("%s: %s queries %s, which /metrics does not serve", dashboardFile, at, m[1])
				}
				queried[name] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(served)) {
		if strings.HasPrefix(name, "fengda_") && !queried[name] {
			t.Errorf("%s: no panel shows %s", dashboardFile, name)
		}
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// mountsAt reports whether one of volumes (compose short syntax) is mounted at dir.
func mountsAt(volumes []string, dir string) bool {
	for _, v := range volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == dir {
			return true
		}
	}
	return false
}
