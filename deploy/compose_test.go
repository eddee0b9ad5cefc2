package deploy

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	composeFile = "../docker-compose.yml"
	dockerfile  = "../Dockerfile"
	// imageRepo is the image every deployment file runs.
	imageRepo = "ghcr.io/fengda-ai/fengda"
	// binaryPath is where the Dockerfile puts the binary, which health checks call.
	binaryPath = "/usr/local/bin/fengda"
)

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Profiles    []string          `yaml:"profiles"`
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
	data, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any // fails on duplicate keys too
	if err := yaml.Unmarshal(data, &generic); err != nil {
		t.Fatalf("%s: invalid YAML: %v", composeFile, err)
	}
	var p composeProject
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"fengda", "redis", "nats"} {
		s, ok := p.Services[name]
		switch {
		case !ok:
			t.Errorf("no service %s", name)
		case len(s.Profiles) > 0:
			t.Errorf("service %s is in profiles %v: it must start by default", name, s.Profiles)
		case s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD":
			t.Errorf("service %s: want a healthcheck test in exec form [CMD, …] (no shell in the images)", name)
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

func TestComposeFengdaServices(t *testing.T) {
	p := loadCompose(t)
	var fengdas []string
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, imageRepo+":") {
			fengdas = append(fengdas, name)
		}
	}
	slices.Sort(fengdas)
	if !slices.Contains(fengdas, "fengda") {
		t.Fatalf("service fengda does not run %s (services running it: %v)", imageRepo, fengdas)
	}
	if p.Services["fengda"].Build == nil {
		t.Error("service fengda has no build: docker compose up --build could not make the image")
	}
	shutdown := defaultShutdownTimeout
	for _, name := range fengdas {
		s := p.Services[name]
		at := composeFile + ": " + name
		for _, dep := range []string{"redis", "nats"} {
			if c := s.DependsOn[dep].Condition; c != "service_healthy" {
				t.Errorf("%s: depends_on %s condition %q, want service_healthy", at, dep, c)
			}
		}
		want := map[string]string{"FENGDA_SESSION_STORE": "redis", "FENGDA_QUEUE_MODE": "external"}
		for k, v := range want {
			if s.Environment[k] != v {
				t.Errorf("%s: %s=%q, want %q", at, k, s.Environment[k], v)
			}
		}
		if u := s.Environment["FENGDA_SESSION_REDIS_URL"]; !strings.HasPrefix(u, "redis://redis:") {
			t.Errorf("%s: FENGDA_SESSION_REDIS_URL %q does not name the redis service", at, u)
		}
		if u := s.Environment["FENGDA_QUEUE_URL"]; !strings.HasPrefix(u, "nats://nats:") {
			t.Errorf("%s: FENGDA_QUEUE_URL %q does not name the nats service", at, u)
		}
		if hc := s.Healthcheck; hc == nil || !slices.Equal(hc.Test, []string{"CMD", binaryPath, "healthcheck"}) {
			t.Errorf("%s: want healthcheck [CMD %s healthcheck]: the image has no curl", at, binaryPath)
		}
		grace, err := time.ParseDuration(s.StopGracePeriod)
		drain := 5 * time.Second
		if v, ok := s.Environment["FENGDA_SERVER_DRAIN_DELAY"]; ok {
			drain, _ = time.ParseDuration(v)
		}
		if v, ok := s.Environment["FENGDA_SERVER_SHUTDOWN_TIMEOUT"]; ok {
			shutdown, _ = time.ParseDuration(v)
		}
		if err != nil || grace <= drain+shutdown {
			t.Errorf("%s: stop_grace_period %q must exceed server.drain_delay %v + server.shutdown_timeout %v (docker's default is 10s)",
				at, s.StopGracePeriod, drain, shutdown)
		}
	}
	var ollama bool
	for _, name := range fengdas {
		if s := p.Services[name]; slices.Contains(s.Profiles, "ollama") && slices.Contains(s.Command, "/app/examples/openai.yaml") {
			ollama = true
			if u := s.Environment["FENGDA_LLM_BASE_URL"]; !strings.HasPrefix(u, "http://ollama:11434/") {
				t.Errorf("%s: FENGDA_LLM_BASE_URL %q does not name the ollama service", name, u)
			}
		}
	}
	if !ollama {
		t.Error("no Fengda service in profile ollama running examples/openai.yaml")
	}
}

// TestImagesAgree: the compose file and the Kubernetes Deployment run the same image.
func TestImagesAgree(t *testing.T) {
	s := load(t)
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Image string `yaml:"image"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	only(t, s.manifests, "Deployment").decode(t, &d)
	img := d.Spec.Template.Spec.Containers[0].Image
	repo, _, _ := strings.Cut(img, "@")
	if repo, _, _ = strings.Cut(repo, ":"); repo != imageRepo {
		t.Errorf("Deployment image %s, want %s:<version>", img, imageRepo)
	}
	if img := loadCompose(t).Services["fengda"].Image; !strings.HasPrefix(img, imageRepo+":") {
		t.Errorf("compose image %s, want %s:<version>", img, imageRepo)
	}
}

// TestDockerfile checks what the image must hold, as far as a file can show it
// without a Docker engine: a static build, a non-root user, the files the binary reads,
// its own health check, and the data directory as a volume.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, re := range []string{
		`(?m)^FROM \S+ AS build$`,
		`CGO_ENABLED=0`,
		`go build -trimpath -buildvcs=false -ldflags="-s -w -X main.version=\$\{VERSION\}"`,
		`(?m)^ARG RUNTIME_IMAGE=gcr\.io/distroless/static-debian12:nonroot$`,
		`(?m)^USER 65532:65532$`,
		`(?m)^COPY config\.yaml /app/config\.yaml$`,
		`(?m)^COPY kb/ /app/kb/$`,
		`(?m)^COPY examples/ /app/examples/$`,
		`(?m)^WORKDIR /app$`,
		`(?m)^VOLUME \["/app/data"\]$`,
		`CMD \["` + regexp.QuoteMeta(binaryPath) + `", "healthcheck"\]`,
		`(?m)^ENTRYPOINT \["` + regexp.QuoteMeta(binaryPath) + `"\]$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("%s: nothing matches %s", dockerfile, re)
		}
	}
	// queue.data_dir (./data/jetstream, relative to WORKDIR /app) lies in the volume.
	if n := lookup(parseMapping(t, rootConfig, mustRead(t, rootConfig)), "queue.data_dir"); n == nil || !strings.HasPrefix(n.Value, "./data/") {
		t.Errorf("%s: queue.data_dir is not below ./data/, the image's volume", rootConfig)
	}
	// Every file the image copies from the context is there and not ignored.
	var ignore []string
	for line := range strings.Lines(string(mustRead(t, "../.dockerignore"))) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ignore = append(ignore, line)
		}
	}
	for _, src := range []string{"go.mod", "go.sum", "config.yaml", "kb", "examples", "main.go"} {
		if _, err := os.Stat("../" + src); err != nil {
			t.Errorf("the image copies %s: %v", src, err)
		}
		if slices.Contains(ignore, src) || slices.Contains(ignore, src+"/") {
			t.Errorf(".dockerignore leaves out %s, which the image needs", src)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
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
