package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/fengda-ai/fengda/queue"
)

const (
	// manifestDir holds the Kubernetes manifests, relative to this package.
	manifestDir = "k8s"
	// rootConfig is the repository's config.yaml, which shows every key the binary reads.
	rootConfig = "../config.yaml"
	// configMapKey is the ConfigMap entry mounted as the config file.
	configMapKey = "config.yaml"
	// envPrefix starts every variable that overrides a config key.
	envPrefix = "FENGDA_"

	// Defaults of the binary for the settings checked here.
	defaultShutdownTimeout = 20 * time.Second
	defaultDrainDelay      = 5 * time.Second
	defaultStream          = "FENGDA_TURNS"
)

// manifest is one YAML document of a file under k8s/.
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

// loadManifests parses every YAML file under k8s/, every document of each, and fails on
// invalid YAML (including duplicate keys) or a document that is not a Kubernetes object.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	var files []string
	err := filepath.WalkDir(manifestDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no YAML files under %s", manifestDir)
	}
	var out []manifest
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
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
			var generic map[string]any // also catches duplicate keys, which yaml.Node keeps
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

type objectMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deployment struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas *int32        `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     struct {
				TerminationGracePeriodSeconds *int64      `yaml:"terminationGracePeriodSeconds"`
				Containers                    []container `yaml:"containers"`
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

type container struct {
	Name  string   `yaml:"name"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env            []envVar `yaml:"env"`
	ReadinessProbe *probe   `yaml:"readinessProbe"`
	LivenessProbe  *probe   `yaml:"livenessProbe"`
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

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name string `yaml:"name"`
			Key  string `yaml:"key"`
		} `yaml:"secretKeyRef"`
	} `yaml:"valueFrom"`
}

type configMap struct {
	Data map[string]string `yaml:"data"`
}

type service struct {
	Spec struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			TargetPort any `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	Spec struct {
		Selector labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type scaleTarget struct {
	Kind string `yaml:"kind"`
	Name string `yaml:"name"`
}

type hpa struct {
	Spec struct {
		ScaleTargetRef scaleTarget `yaml:"scaleTargetRef"`
		MinReplicas    int         `yaml:"minReplicas"`
		MaxReplicas    int         `yaml:"maxReplicas"`
		Behavior       any         `yaml:"behavior"`
	} `yaml:"spec"`
}

type scaledObject struct {
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

// setup is everything the checks share: the manifests, the fengda Deployment and its
// container, and the config file the ConfigMap holds.
type setup struct {
	manifests []manifest
	deploy    deployment
	container container
	config    *yaml.Node // the ConfigMap's config.yaml, a mapping
}

func load(t *testing.T) setup {
	t.Helper()
	s := setup{manifests: loadManifests(t)}
	only(t, s.manifests, "Deployment").decode(t, &s.deploy)
	cs := s.deploy.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("Deployment %s: want one container, found %d", s.deploy.Metadata.Name, len(cs))
	}
	s.container = cs[0]

	var cm configMap
	only(t, s.manifests, "ConfigMap").decode(t, &cm)
	text, ok := cm.Data[configMapKey]
	if !ok {
		t.Fatalf("ConfigMap: no data key %q", configMapKey)
	}
	s.config = parseMapping(t, "ConfigMap "+configMapKey, []byte(text))
	return s
}

// parseMapping parses a config file whose top level must be a mapping.
func parseMapping(t *testing.T, what string, data []byte) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: invalid YAML: %v", what, err)
	}
	var generic map[string]any
	if err := doc.Decode(&generic); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a mapping of keys", what)
	}
	return doc.Content[0]
}

// env returns the value of the container's variable name, if it has one.
func (s setup) env(name string) (string, bool) {
	for _, e := range s.container.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// setting returns the value the binary sees for the scalar config key: the
// environment's FENGDA_ variable, else the ConfigMap's file, else def. from says which.
func (s setup) setting(key, def string) (value, from string) {
	name := envName(key)
	if v, ok := s.env(name); ok {
		return v, "env " + name
	}
	if n := lookup(s.config, key); n != nil && n.Kind == yaml.ScalarNode {
		return n.Value, "ConfigMap " + key
	}
	return def, "default of " + key
}

// lookup returns the node at the dotted key path of mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	n := m
	for part := range strings.SplitSeq(key, ".") {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// envName is the variable that overrides the config key a.b.c: FENGDA_A_B_C.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// configKeys lists the keys the binary reads, each with its node kind: the keys of the
// repository's config.yaml (not looking inside lists such as tenants, as the binary's
// environment overrides do not either), plus queue.* from queue.Config's YAML tags,
// which config.yaml need not show yet.
func configKeys(t *testing.T) map[string]yaml.Kind {
	t.Helper()
	data, err := os.ReadFile(rootConfig)
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]yaml.Kind)
	walkKeys(parseMapping(t, rootConfig, data), "", func(key string, v *yaml.Node) { keys[key] = v.Kind })
	keys["queue"] = yaml.MappingNode
	typ := reflect.TypeFor[queue.Config]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys["queue."+name] = yaml.ScalarNode
		}
	}
	return keys
}

// walkKeys calls fn with the dotted path of every key below mapping m, descending into
// mappings but not into lists.
func walkKeys(m *yaml.Node, path string, fn func(key string, v *yaml.Node)) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		key := m.Content[i].Value
		if path != "" {
			key = path + "." + key
		}
		v := m.Content[i+1]
		fn(key, v)
		if v.Kind == yaml.MappingNode {
			walkKeys(v, key, fn)
		}
	}
}

// parseDuration reads a duration as the binary does.
func parseDuration(t *testing.T, value, from string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(value)
	if err != nil || d <= 0 {
		t.Fatalf("%s: %q is not a positive duration", from, value)
	}
	return d
}

// tenantIDs returns the ids of the ConfigMap's tenants.
func (s setup) tenantIDs(t *testing.T) []string {
	t.Helper()
	n := lookup(s.config, "tenants")
	if n == nil {
		t.Fatal("ConfigMap config.yaml: no tenants")
	}
	var tenants []struct {
		ID string `yaml:"id"`
	}
	if err := n.Decode(&tenants); err != nil {
		t.Fatalf("ConfigMap config.yaml: tenants: %v", err)
	}
	var ids []string
	for i, tn := range tenants {
		if tn.ID == "" {
			t.Fatalf("ConfigMap config.yaml: tenants[%d] has no id", i)
		}
		ids = append(ids, tn.ID)
	}
	if len(ids) == 0 {
		t.Fatal("ConfigMap config.yaml: tenants is empty")
	}
	return ids
}

func TestManifestKinds(t *testing.T) {
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

func TestDeploymentProbesAndShutdown(t *testing.T) {
	s := load(t)
	c := s.container
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("container %s: want a readinessProbe httpGet on /readyz (503 while draining)", c.Name)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("container %s: want a livenessProbe httpGet on /healthz", c.Name)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		t.Fatalf("container %s: no lifecycle.preStop: a replica scaling in must drain first", c.Name)
	}
	if c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
		t.Fatalf("container %s: lifecycle.preStop must be a sleep action of some seconds, so its length is known", c.Name)
	}
	sleep := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second

	grace := s.deploy.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("Deployment: terminationGracePeriodSeconds unset (the default 30s is not derived from the shutdown)")
	}
	value, from := s.setting("server.shutdown_timeout", defaultShutdownTimeout.String())
	shutdown := parseDuration(t, value, from)
	value, drainFrom := s.setting("server.drain_delay", defaultDrainDelay.String())
	drain, err := time.ParseDuration(value)
	if err != nil || drain < 0 {
		t.Fatalf("%s: %q is not a duration of 0s or more", drainFrom, value)
	}
	// The grace period counts from the start of preStop: the process gets what is left
	// of it after the sleep, serves on for drain_delay, and needs shutdown_timeout of it
	// and then some.
	if got, need := time.Duration(*grace)*time.Second, sleep+drain+shutdown; got <= need {
		t.Errorf("terminationGracePeriodSeconds %s must exceed the preStop sleep %s plus server.drain_delay %s (%s) plus server.shutdown_timeout %s (%s) = %s",
			got, sleep, drain, drainFrom, shutdown, from, need)
	}
}

func TestEnvNamesAreConfigKeys(t *testing.T) {
	s := load(t)
	keys := configKeys(t)
	byEnv := make(map[string]string)
	for key, kind := range keys {
		if kind == yaml.ScalarNode {
			byEnv[envName(key)] = key
		}
	}
	names := make(map[string]bool)
	for _, e := range s.container.Env {
		if names[e.Name] {
			t.Errorf("env %s set twice", e.Name)
		}
		names[e.Name] = true
		if strings.HasPrefix(e.Name, envPrefix) {
			if _, ok := byEnv[e.Name]; !ok {
				// The binary ignores it silently: the setting it meant never applies.
				t.Errorf("env %s names no config key (FENGDA_A_B_C overrides the scalar key a.b.c)", e.Name)
			}
		}
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			if ref := e.ValueFrom.SecretKeyRef; ref.Name == "" || ref.Key == "" {
				t.Errorf("env %s: secretKeyRef needs a name and a key", e.Name)
			}
		}
	}

	// The ConfigMap's file may only use keys the binary knows: unknown keys stop start-up.
	walkKeys(s.config, "", func(key string, v *yaml.Node) {
		kind, ok := keys[key]
		switch {
		case !ok:
			t.Errorf("ConfigMap config.yaml: unknown key %s", key)
		case (kind == yaml.MappingNode) != (v.Kind == yaml.MappingNode):
			t.Errorf("ConfigMap config.yaml: %s is a section in %s and not here, or the other way round", key, rootConfig)
		}
	})

	// Every variable the ConfigMap's file reads (a tenant secret's env:, or ${NAME}
	// without a default) must be set by the Deployment, or start-up stops.
	for _, name := range envRefs(s.config) {
		if !names[name] {
			t.Errorf("ConfigMap config.yaml reads environment variable %s, which the Deployment does not set", name)
		}
	}
}

// envRef is ${NAME} without a default, which the binary requires to be set.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// envRefs returns the variables n reads: every "env: NAME" entry (a Secret read from the
// environment) and every ${NAME} in a value.
func envRefs(n *yaml.Node) []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "env" && v.Kind == yaml.ScalarNode && v.Value != "" {
					out = append(out, v.Value)
				}
				walk(v)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.ScalarNode:
			for _, m := range envRef.FindAllStringSubmatch(n.Value, -1) {
				out = append(out, m[1])
			}
		}
	}
	walk(n)
	return out
}

func TestKEDATriggersMatchTenantConsumers(t *testing.T) {
	s := load(t)
	var so scaledObject
	soM := only(t, s.manifests, "ScaledObject")
	soM.decode(t, &so)
	if so.Spec.ScaleTargetRef.Name != s.deploy.Metadata.Name {
		t.Errorf("%s: scaleTargetRef.name %q, want the Deployment %q", soM, so.Spec.ScaleTargetRef.Name, s.deploy.Metadata.Name)
	}

	stream, _ := s.setting("queue.stream", defaultStream)
	if mode, from := s.setting("queue.mode", queue.ModeEmbedded); mode != queue.ModeExternal {
		t.Errorf("%s is %q: replicas share one queue only with mode %s", from, mode, queue.ModeExternal)
	}
	queueURL, from := s.setting("queue.url", "")
	first, _, _ := strings.Cut(queueURL, ",")
	u, err := url.Parse(strings.TrimSpace(first))
	if err != nil || u.Hostname() == "" {
		t.Fatalf("%s: %q is not a NATS URL", from, queueURL)
	}

	consumers := make(map[string]string) // consumer name → tenant
	for _, id := range s.tenantIDs(t) {
		consumers[stream+"_"+id] = id
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
		if md["stream"] != stream {
			t.Errorf("%s: stream %q, want %q (queue.stream)", at, md["stream"], stream)
		}
		tenant, ok := consumers[md["consumer"]]
		switch {
		case !ok:
			// KEDA reports a missing consumer's lag as the stream's last sequence
			// number and scales to the maximum.
			t.Errorf("%s: consumer %q is not <stream>_<tenant> for any tenant of the ConfigMap (want one of %v)",
				at, md["consumer"], slices.Sorted(maps.Keys(consumers)))
		case triggered[tenant]:
			t.Errorf("%s: a second trigger for tenant %s", at, tenant)
		default:
			triggered[tenant] = true
		}
		if n, err := strconv.ParseInt(md["lagThreshold"], 10, 64); err != nil || n <= 0 {
			t.Errorf("%s: lagThreshold %q is not a positive whole number", at, md["lagThreshold"])
		}
		host, port, err := splitHostPort(md["natsServerMonitoringEndpoint"])
		if err != nil {
			t.Errorf("%s: natsServerMonitoringEndpoint %q: %v", at, md["natsServerMonitoringEndpoint"], err)
		} else if host != u.Hostname() {
			t.Errorf("%s: lag is read from %s, but the replicas queue on %s (%s)", at, host, u.Hostname(), from)
		} else if port == "" {
			t.Errorf("%s: natsServerMonitoringEndpoint %q has no port (NATS monitoring is 8222)", at, md["natsServerMonitoringEndpoint"])
		}
	}
	for _, id := range s.tenantIDs(t) {
		if !triggered[id] {
			t.Errorf("%s: no nats-jetstream trigger for tenant %s (consumer %s_%s): its backlog would not scale anything",
				soM, id, stream, id)
		}
	}
}

func splitHostPort(endpoint string) (host, port string, err error) {
	u, err := url.Parse("http://" + endpoint)
	if err != nil {
		return "", "", err
	}
	if u.Path != "" || u.Hostname() == "" {
		return "", "", errors.New("want host:port")
	}
	return u.Hostname(), u.Port(), nil
}

func TestAutoscalersAgree(t *testing.T) {
	s := load(t)
	var h hpa
	hM := only(t, s.manifests, "HorizontalPodAutoscaler")
	hM.decode(t, &h)
	var so scaledObject
	soM := only(t, s.manifests, "ScaledObject")
	soM.decode(t, &so)

	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != s.deploy.Metadata.Name {
		t.Errorf("%s: scaleTargetRef %s/%s, want Deployment/%s", hM, ref.Kind, ref.Name, s.deploy.Metadata.Name)
	}
	if s.deploy.Spec.Replicas != nil {
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
		t.Errorf("behavior differs between hpa.yaml and keda-scaledobject.yaml (-hpa +keda):\n%s", diff)
	}
}

func TestSelectorsAndReferences(t *testing.T) {
	s := load(t)
	pod := s.deploy.Spec.Template.Metadata.Labels
	selects := func(sel map[string]string) bool {
		if len(sel) == 0 {
			return false
		}
		for k, v := range sel {
			if pod[k] != v {
				return false
			}
		}
		return true
	}
	if !selects(s.deploy.Spec.Selector.MatchLabels) {
		t.Errorf("Deployment: selector %v does not match its pod labels %v", s.deploy.Spec.Selector.MatchLabels, pod)
	}
	var svc service
	only(t, s.manifests, "Service").decode(t, &svc)
	if !selects(svc.Spec.Selector) {
		t.Errorf("Service: selector %v does not match the pod labels %v", svc.Spec.Selector, pod)
	}
	for _, p := range svc.Spec.Ports {
		found := false
		for _, cp := range s.container.Ports {
			if p.TargetPort == cp.Name || p.TargetPort == cp.ContainerPort {
				found = true
			}
		}
		if !found {
			t.Errorf("Service: targetPort %v is no port of the container", p.TargetPort)
		}
	}
	var pdb podDisruptionBudget
	only(t, s.manifests, "PodDisruptionBudget").decode(t, &pdb)
	if !selects(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget: selector %v does not match the pod labels %v", pdb.Spec.Selector.MatchLabels, pod)
	}

	cm := only(t, s.manifests, "ConfigMap")
	mounted := false
	for _, v := range s.deploy.Spec.Template.Spec.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != cm.name {
			continue
		}
		for _, m := range s.container.VolumeMounts {
			if m.Name == v.Name && slices.Contains(s.container.Args, filepath.Join(m.MountPath, configMapKey)) {
				mounted = true
			}
		}
	}
	if !mounted {
		t.Errorf("Deployment: ConfigMap %s is not mounted where -config reads it (args %v)", cm.name, s.container.Args)
	}
}
