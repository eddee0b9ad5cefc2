package main

// The deployment files (docker-compose.yml, deploy/k8s/) against the configuration the
// binary reads: every FENGDA_* variable they set names a config key as applyEnv maps
// them, and each service's environment, with the config file it uses, loads.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/fengda-ai/fengda/internal/yamlenv"
	"github.com/fengda-ai/fengda/tenant"
)

// configEnvNames returns every variable applyEnv reads, derived from Config the way
// applyEnv walks it.
func configEnvNames(t *testing.T) map[string]string {
	t.Helper()
	names := make(map[string]string)
	cfg := defaultConfig()
	err := yamlenv.WalkScalars(reflect.ValueOf(&cfg).Elem(), "", func(key string, _ reflect.Value) error {
		names["FENGDA_"+strings.ToUpper(strings.ReplaceAll(key, ".", "_"))] = key
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// fileEnvRef is a variable a config file reads: ${NAME}, ${NAME:-default} or env: NAME.
var fileEnvRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)|\benv:\s*([A-Za-z_][A-Za-z0-9_]*)`)

// deployedService is one way the deployment files run the binary.
type deployedService struct {
	where  string            // file and service
	config string            // the config file it reads, in this repository
	env    map[string]string // its environment
}

// check fails the test unless every FENGDA_* variable of s names a config key or a
// variable its config file reads, and unless its configuration loads.
func (s deployedService) check(t *testing.T, keys map[string]string) {
	t.Helper()
	data, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatalf("%s: %v", s.where, err)
	}
	reads := make(map[string]bool)
	for _, m := range fileEnvRef.FindAllStringSubmatch(string(data), -1) {
		reads[m[1]+m[2]] = true
	}
	for _, name := range slices.Sorted(maps.Keys(s.env)) {
		if _, ok := keys[name]; strings.HasPrefix(name, "FENGDA_") && !ok && !reads[name] {
			t.Errorf("%s: %s names no config key and is not read by %s: the binary ignores it", s.where, name, s.config)
		}
	}
	getenv := func(k string) string { return s.env[k] }
	cfg, _, err := loadConfig(s.config, getenv)
	if err != nil {
		t.Errorf("%s: the configuration does not load: %v", s.where, err)
		return
	}
	if _, err := tenant.NewRegistry(cfg.Tenants, getenv); err != nil {
		t.Errorf("%s: the tenants do not load: %v", s.where, err)
	}
}

func TestComposeEnvIsConfig(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	readYAML(t, "docker-compose.yml", &compose)
	keys := configEnvNames(t)
	checked := 0
	for _, name := range slices.Sorted(maps.Keys(compose.Services)) {
		svc := compose.Services[name]
		if !strings.Contains(svc.Image, "fengda") {
			continue
		}
		s := deployedService{where: "docker-compose.yml: " + name, config: "config.yaml", env: svc.Environment}
		if i := slices.Index(svc.Command, "-config"); i >= 0 && i+1 < len(svc.Command) {
			// The image holds the repository's files under /app.
			s.config = strings.TrimPrefix(svc.Command[i+1], "/app/")
		}
		s.check(t, keys)
		checked++
	}
	if checked < 2 {
		t.Errorf("checked %d Fengda services in docker-compose.yml, want the default one and the ollama profile's", checked)
	}
}

func TestKubernetesEnvIsConfig(t *testing.T) {
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	readYAML(t, "deploy/k8s/configmap.yaml", &cm)
	config := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(config, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Env []struct {
							Name      string `yaml:"name"`
							Value     string `yaml:"value"`
							ValueFrom any    `yaml:"valueFrom"`
						} `yaml:"env"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	readYAML(t, "deploy/k8s/deployment.yaml", &d)
	env := make(map[string]string)
	for _, c := range d.Spec.Template.Spec.Containers {
		for i, e := range c.Env {
			env[e.Name] = e.Value
			if e.ValueFrom != nil {
				// A Secret's value: long enough for any key, and distinct.
				env[e.Name] = fmt.Sprintf("secret-from-kubernetes-%02d-%s", i, strings.Repeat("x", 40))
			}
		}
	}
	deployedService{where: "deploy/k8s/deployment.yaml", config: config, env: env}.check(t, configEnvNames(t))
}

// TestConfigEnvCheckFails: the names the check above compares against are the ones
// applyEnv reads, and misspelt ones (as a deployment file might hold) are not among them.
func TestConfigEnvCheckFails(t *testing.T) {
	keys := configEnvNames(t)
	for _, name := range []string{"FENGDA_SERVER_DRAIN_DELAY", "FENGDA_SESSION_REDIS_URL", "FENGDA_QUEUE_URL", "FENGDA_SERVER_ADMIN_ADDR", "FENGDA_LOG_LEVEL"} {
		if _, ok := keys[name]; !ok {
			t.Errorf("%s is not among the variables applyEnv reads", name)
		}
	}
	for _, name := range []string{"FENGDA_SESSION_REDIS_ADDR", "FENGDA_QUEUE_NATS_URL", "FENGDA_TENANTS"} {
		if _, ok := keys[name]; ok {
			t.Errorf("%s is taken for a config key", name)
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
