package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// knownEnv is the binary's whole configuration surface (plus the SDK's
// TEMPORAL_* variables we pass through); anything else is a typo.
var knownEnv = []string{
	"LINSYNC_HTTP_ADDR",
	"LINSYNC_OPS_ADDR",
	"DATABASE_URL",
	"LINSYNC_SECRETS_KEY_URL",
	"TEMPORAL_ADDRESS",
	"TEMPORAL_NAMESPACE",
	"TEMPORAL_API_KEY",
	"LINSYNC_SECRETS_PREVIOUS_KEY_URLS",
	"LINSYNC_CODEC_TOKEN",
	"LINSYNC_TASK_QUEUE",
	"LINSYNC_TEMPORAL_UI_URL",
	"LINSYNC_LOG_LEVEL",
	"LINEAR_API_URL",
}

// secretEnv must never be set from a literal or a ConfigMap in Kubernetes.
var secretEnv = []string{"DATABASE_URL", "LINSYNC_SECRETS_KEY_URL"}

const (
	httpPort   = 8080
	opsPort    = 9090
	image      = "ghcr.io/linsync/linsync"
	namespace  = "linsync"
	configName = "linsync-config"
	secretName = "linsync-secrets"
)

// ---------------------------------------------------------------------------
// docker-compose.yml

func loadCompose(t *testing.T, env types.Mapping) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	details := types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}
	return loader.LoadWithContext(t.Context(), details, func(o *loader.Options) {
		o.SetProjectName("linsync", true)
		o.ResolvePaths = true
	})
}

func TestComposeRequiresSecretsKey(t *testing.T) {
	t.Parallel()
	_, err := loadCompose(t, types.Mapping{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "LINSYNC_SECRETS_KEY_URL")
}

func TestCompose(t *testing.T) {
	t.Parallel()
	const key = "base64key://dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC0xMjM="
	project, err := loadCompose(t, types.Mapping{"LINSYNC_SECRETS_KEY_URL": key})
	require.NoError(t, err)

	require.ElementsMatch(t,
		[]string{"postgres", "temporal-data-init", "temporal", "migrate", "api", "worker"},
		project.ServiceNames())

	root, err := filepath.Abs("..")
	require.NoError(t, err)

	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		pg := service(t, project, "postgres")
		require.Equal(t, "postgres:16", pg.Image)
		require.NotNil(t, pg.HealthCheck)
		require.Contains(t, pg.HealthCheck.Test, "pg_isready")
		requirePort(t, pg, 5432, "5432")
		requireLoopbackOnly(t, pg)
	})

	t.Run("temporal", func(t *testing.T) {
		t.Parallel()
		tmp := service(t, project, "temporal")
		require.True(t, strings.HasPrefix(tmp.Image, "temporalio/temporal:"), tmp.Image)
		cmd := strings.Join(tmp.Command, " ")
		for _, want := range []string{
			"server start-dev",
			"--ip 0.0.0.0",
			"--db-filename /data/temporal.db",
			"--sqlite-pragma journal_mode=wal",
			"--sqlite-pragma synchronous=normal",
			"--ui-port 8233",
		} {
			require.Contains(t, cmd, want)
		}
		requirePort(t, tmp, 7233, "7233")
		requirePort(t, tmp, 8233, "8233")
		requireLoopbackOnly(t, tmp)
		require.NotNil(t, tmp.HealthCheck, "api and worker wait for temporal to be healthy")
		require.True(t, slices.ContainsFunc(tmp.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Source == "temporal-data" && v.Target == "/data"
		}), "the SQLite file must survive restarts")
		requireDependsOn(t, tmp, "temporal-data-init", types.ServiceConditionCompletedSuccessfully)
	})

	for _, tc := range []struct {
		name      string
		command   []string
		dependsOn map[string]string
		ports     map[uint32]string
	}{
		{
			name:      "migrate",
			command:   []string{"migrate"},
			dependsOn: map[string]string{"postgres": types.ServiceConditionHealthy},
		},
		{
			name:    "api",
			command: []string{"api"},
			dependsOn: map[string]string{
				"migrate":  types.ServiceConditionCompletedSuccessfully,
				"temporal": types.ServiceConditionHealthy,
			},
			ports: map[uint32]string{httpPort: "8080"},
		},
		{
			name:    "worker",
			command: []string{"worker"},
			dependsOn: map[string]string{
				"migrate":  types.ServiceConditionCompletedSuccessfully,
				"temporal": types.ServiceConditionHealthy,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc := service(t, project, tc.name)
			require.NotNil(t, svc.Build, "built from the repository")
			require.Equal(t, root, svc.Build.Context)
			require.Equal(t, "deploy/Dockerfile", svc.Build.Dockerfile)
			require.Empty(t, svc.Entrypoint, "the image's ENTRYPOINT is the binary")
			require.Equal(t, types.ShellCommand(tc.command), svc.Command)

			require.Len(t, svc.DependsOn, len(tc.dependsOn))
			for dep, cond := range tc.dependsOn {
				requireDependsOn(t, svc, dep, cond)
			}
			require.Len(t, svc.Ports, len(tc.ports))
			for target, published := range tc.ports {
				requirePort(t, svc, target, published)
			}
			requireLoopbackOnly(t, svc)

			env := map[string]string{}
			for k, v := range svc.Environment {
				require.Contains(t, knownEnv, k)
				require.NotNil(t, v, "%s has no value", k)
				env[k] = *v
			}
			require.Equal(t, key, env["LINSYNC_SECRETS_KEY_URL"])
			require.Equal(t, "postgres://linsync:linsync@postgres:5432/linsync?sslmode=disable", env["DATABASE_URL"])
			require.Equal(t, "temporal:7233", env["TEMPORAL_ADDRESS"])
			require.Equal(t, "default", env["TEMPORAL_NAMESPACE"])
			require.Equal(t, "linsync", env["LINSYNC_TASK_QUEUE"])
			require.Equal(t, ":8080", env["LINSYNC_HTTP_ADDR"])
			require.Equal(t, ":9090", env["LINSYNC_OPS_ADDR"], "health and metrics on their own listener")
			require.Equal(t, "http://localhost:8233", env["LINSYNC_TEMPORAL_UI_URL"])
			require.Equal(t, "https://api.linear.app/graphql", env["LINEAR_API_URL"])
		})
	}
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	svc, err := p.GetService(name)
	require.NoError(t, err)
	return svc
}

func requireDependsOn(t *testing.T, svc types.ServiceConfig, dep, condition string) {
	t.Helper()
	d, ok := svc.DependsOn[dep]
	require.True(t, ok, "%s must depend on %s", svc.Name, dep)
	require.Equal(t, condition, d.Condition, "%s depends_on %s", svc.Name, dep)
}

// requireLoopbackOnly: what compose publishes is reachable from this machine only, not from its networks.
func requireLoopbackOnly(t *testing.T, svc types.ServiceConfig) {
	t.Helper()
	for _, p := range svc.Ports {
		require.Equal(t, "127.0.0.1", p.HostIP, "%s publishes port %d on every interface", svc.Name, p.Target)
	}
}

func requirePort(t *testing.T, svc types.ServiceConfig, target uint32, published string) {
	t.Helper()
	for _, p := range svc.Ports {
		if p.Target == target {
			require.Equal(t, published, p.Published, "%s port %d", svc.Name, target)
			return
		}
	}
	require.Failf(t, "port not published", "%s: container port %d", svc.Name, target)
}

// ---------------------------------------------------------------------------
// deploy/k8s

type manifests struct {
	namespaces    map[string]corev1.Namespace
	configMaps    map[string]corev1.ConfigMap
	secrets       map[string]corev1.Secret
	services      map[string]corev1.Service
	deployments   map[string]appsv1.Deployment
	jobs          map[string]batchv1.Job
	pdbs          map[string]policyv1.PodDisruptionBudget
	kustomization map[string]any
	// files maps each file name to the kinds it declares.
	files map[string][]string
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)

	m := manifests{
		namespaces:  map[string]corev1.Namespace{},
		configMaps:  map[string]corev1.ConfigMap{},
		secrets:     map[string]corev1.Secret{},
		services:    map[string]corev1.Service{},
		deployments: map[string]appsv1.Deployment{},
		jobs:        map[string]batchv1.Job{},
		pdbs:        map[string]policyv1.PodDisruptionBudget{},
		files:       map[string][]string{},
	}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		for i, doc := range docSeparator.Split(string(raw), -1) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			require.NoError(t, yaml.Unmarshal([]byte(doc), &head), "%s#%d", path, i)
			if head.Kind == "" && head.APIVersion == "" {
				continue // empty or comment-only document
			}
			where := fmt.Sprintf("%s#%d (%s %s)", path, i, head.APIVersion, head.Kind)
			m.files[filepath.Base(path)] = append(m.files[filepath.Base(path)], head.Kind)
			strict := func(v any) {
				require.NoError(t, yaml.UnmarshalStrict([]byte(doc), v), where)
			}
			switch head.APIVersion + "/" + head.Kind {
			case "v1/Namespace":
				var o corev1.Namespace
				strict(&o)
				add(t, m.namespaces, o.Name, o, where)
			case "v1/ConfigMap":
				var o corev1.ConfigMap
				strict(&o)
				add(t, m.configMaps, o.Name, o, where)
			case "v1/Secret":
				var o corev1.Secret
				strict(&o)
				add(t, m.secrets, o.Name, o, where)
			case "v1/Service":
				var o corev1.Service
				strict(&o)
				add(t, m.services, o.Name, o, where)
			case "apps/v1/Deployment":
				var o appsv1.Deployment
				strict(&o)
				add(t, m.deployments, o.Name, o, where)
			case "batch/v1/Job":
				var o batchv1.Job
				strict(&o)
				add(t, m.jobs, o.Name, o, where)
			case "policy/v1/PodDisruptionBudget":
				var o policyv1.PodDisruptionBudget
				strict(&o)
				add(t, m.pdbs, o.Name, o, where)
			case "kustomize.config.k8s.io/v1beta1/Kustomization":
				require.Nil(t, m.kustomization, "second kustomization in %s", where)
				strict(&m.kustomization)
			default:
				require.Failf(t, "unexpected manifest", "%s: unknown apiVersion/kind", where)
			}
		}
	}
	return m
}

func add[T any](t *testing.T, into map[string]T, name string, o T, where string) {
	t.Helper()
	require.NotEmpty(t, name, "%s: metadata.name", where)
	_, dup := into[name]
	require.False(t, dup, "%s: duplicate name %q", where, name)
	into[name] = o
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)

	require.Len(t, m.namespaces, 1)
	require.Contains(t, m.namespaces, namespace)
	require.Len(t, m.deployments, 2)
	require.Len(t, m.jobs, 1)
	require.Len(t, m.services, 1)
	require.Len(t, m.configMaps, 1)
	require.Len(t, m.secrets, 1)

	t.Run("namespaced", func(t *testing.T) {
		t.Parallel()
		var got []string
		for _, o := range m.configMaps {
			got = append(got, o.Namespace)
		}
		for _, o := range m.secrets {
			got = append(got, o.Namespace)
		}
		for _, o := range m.services {
			got = append(got, o.Namespace)
		}
		for _, o := range m.deployments {
			got = append(got, o.Namespace)
		}
		for _, o := range m.jobs {
			got = append(got, o.Namespace)
		}
		for _, o := range m.pdbs {
			got = append(got, o.Namespace)
		}
		for _, ns := range got {
			require.Equal(t, namespace, ns)
		}
	})

	t.Run("configmap", func(t *testing.T) {
		t.Parallel()
		cm, ok := m.configMaps[configName]
		require.True(t, ok)
		for k := range cm.Data {
			require.Contains(t, knownEnv, k)
			require.NotContains(t, secretEnv, k, "secret material does not belong in a ConfigMap")
		}
		require.Equal(t, ":8080", cm.Data["LINSYNC_HTTP_ADDR"])
		require.Equal(t, ":9090", cm.Data["LINSYNC_OPS_ADDR"])
		require.Equal(t, "linsync", cm.Data["LINSYNC_TASK_QUEUE"])
		require.Equal(t, "https://api.linear.app/graphql", cm.Data["LINEAR_API_URL"])
		for _, k := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "LINSYNC_TEMPORAL_UI_URL", "LINSYNC_LOG_LEVEL"} {
			require.NotEmpty(t, cm.Data[k], k)
		}
		require.Regexp(t, `^[a-z0-9.-]+:\d+$`, cm.Data["TEMPORAL_ADDRESS"], "host:port")
	})

	t.Run("secret template", func(t *testing.T) {
		t.Parallel()
		s, ok := m.secrets[secretName]
		require.True(t, ok)
		require.Empty(t, s.Data, "the template uses readable stringData placeholders only")
		require.ElementsMatch(t, secretEnv, keys(s.StringData))
		for k, v := range s.StringData {
			require.Contains(t, v, "REPLACE_ME", "%s must be an obvious placeholder", k)
		}
	})

	t.Run("kustomization", func(t *testing.T) {
		t.Parallel()
		k := m.kustomization
		require.NotNil(t, k)
		for key := range k {
			require.Contains(t, []string{"apiVersion", "kind", "namespace", "resources", "images", "labels"}, key)
		}
		require.Equal(t, namespace, k["namespace"])
		var resources []string
		for _, r := range k["resources"].([]any) {
			resources = append(resources, r.(string))
		}
		var want []string
		for file, kinds := range m.files {
			if file == "kustomization.yaml" || slices.Contains(kinds, "Secret") {
				continue
			}
			want = append(want, file)
		}
		require.ElementsMatch(t, want, resources,
			"every manifest except the Secret template is listed, so apply -k never overwrites the real Secret")
		images := k["images"].([]any)
		require.Len(t, images, 1)
		require.Equal(t, image, images[0].(map[string]any)["name"])
	})

	api, ok := m.deployments["linsync-api"]
	require.True(t, ok)
	worker, ok := m.deployments["linsync-worker"]
	require.True(t, ok)
	migrate, ok := m.jobs["linsync-migrate"]
	require.True(t, ok)

	t.Run("api", func(t *testing.T) {
		t.Parallel()
		require.NotNil(t, api.Spec.Replicas)
		require.EqualValues(t, 2, *api.Spec.Replicas)
		requireSelects(t, api.Spec.Selector.MatchLabels, api.Spec.Template.Labels)
		c := checkPod(t, api.Spec.Template, "api")
		requireScraped(t, api.Spec.Template)
		requireHTTPProbe(t, c, c.LivenessProbe, "/healthz")
		requireHTTPProbe(t, c, c.ReadinessProbe, "/readyz")
		requireGracefulStop(t, api.Spec.Template.Spec, c)
		requireFromSecret(t, c, "LINSYNC_SECRETS_PREVIOUS_KEY_URLS", "LINSYNC_CODEC_TOKEN")
	})

	t.Run("worker", func(t *testing.T) {
		t.Parallel()
		requireSelects(t, worker.Spec.Selector.MatchLabels, worker.Spec.Template.Labels)
		require.False(t, labelsMatch(api.Spec.Selector.MatchLabels, worker.Spec.Template.Labels),
			"the api selector must not pick up worker pods")
		c := checkPod(t, worker.Spec.Template, "worker")
		requireScraped(t, worker.Spec.Template)
		requireHTTPProbe(t, c, c.LivenessProbe, "/healthz")
		requireGracefulStop(t, worker.Spec.Template.Spec, c)
		// The worker opens payloads sealed before a key rotation too.
		requireFromSecret(t, c, "LINSYNC_SECRETS_PREVIOUS_KEY_URLS")
	})

	t.Run("migrate", func(t *testing.T) {
		t.Parallel()
		require.NotNil(t, migrate.Spec.BackoffLimit)
		require.Positive(t, *migrate.Spec.BackoffLimit)
		require.LessOrEqual(t, *migrate.Spec.BackoffLimit, int32(10))
		require.NotNil(t, migrate.Spec.ActiveDeadlineSeconds)
		require.Equal(t, corev1.RestartPolicyNever, migrate.Spec.Template.Spec.RestartPolicy)
		c := checkPod(t, migrate.Spec.Template, "migrate")
		require.Nil(t, c.LivenessProbe)
		require.Nil(t, c.ReadinessProbe)
	})

	t.Run("service", func(t *testing.T) {
		t.Parallel()
		svc, ok := m.services["linsync-api"]
		require.True(t, ok)
		requireSelects(t, svc.Spec.Selector, api.Spec.Template.Labels)
		require.False(t, labelsMatch(svc.Spec.Selector, worker.Spec.Template.Labels))
		require.False(t, labelsMatch(svc.Spec.Selector, migrate.Spec.Template.Labels))
		require.Len(t, svc.Spec.Ports, 1)
		require.Equal(t, httpPort, containerPort(t, api.Spec.Template.Spec.Containers[0], svc.Spec.Ports[0].TargetPort))
	})

	t.Run("pdb", func(t *testing.T) {
		t.Parallel()
		pdb, ok := m.pdbs["linsync-api"]
		require.True(t, ok)
		require.NotNil(t, pdb.Spec.Selector)
		requireSelects(t, pdb.Spec.Selector.MatchLabels, api.Spec.Template.Labels)
		require.NotNil(t, pdb.Spec.MinAvailable)
		require.Less(t, pdb.Spec.MinAvailable.IntValue(), int(*api.Spec.Replicas),
			"a PDB that allows no disruption blocks node drains")
	})
}

// checkPod asserts what every linsync pod shares and returns its container.
func checkPod(t *testing.T, tpl corev1.PodTemplateSpec, args ...string) corev1.Container {
	t.Helper()
	spec := tpl.Spec
	require.Len(t, spec.Containers, 1)
	require.Empty(t, spec.InitContainers)
	c := spec.Containers[0]

	require.Equal(t, args, c.Args, "subcommand")
	require.Empty(t, c.Command, "the image's ENTRYPOINT is the binary")
	require.True(t, strings.HasPrefix(c.Image, image+":") || strings.HasPrefix(c.Image, image+"@"), c.Image)

	// Security: non-root with a numeric UID, read-only root, no privilege.
	psc := spec.SecurityContext
	require.NotNil(t, psc)
	require.NotNil(t, psc.RunAsNonRoot)
	require.True(t, *psc.RunAsNonRoot)
	require.NotNil(t, psc.RunAsUser)
	require.EqualValues(t, 65532, *psc.RunAsUser, "matches USER in deploy/Dockerfile")
	require.NotNil(t, psc.SeccompProfile)
	require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, psc.SeccompProfile.Type)
	require.NotNil(t, spec.AutomountServiceAccountToken)
	require.False(t, *spec.AutomountServiceAccountToken, "linsync never talks to the Kubernetes API")
	csc := c.SecurityContext
	require.NotNil(t, csc)
	require.NotNil(t, csc.ReadOnlyRootFilesystem)
	require.True(t, *csc.ReadOnlyRootFilesystem)
	require.NotNil(t, csc.AllowPrivilegeEscalation)
	require.False(t, *csc.AllowPrivilegeEscalation)
	require.NotNil(t, csc.Capabilities)
	require.Equal(t, []corev1.Capability{"ALL"}, csc.Capabilities.Drop)
	require.Nil(t, csc.Privileged)

	// Resources: requests for scheduling, a memory limit against leaks.
	require.False(t, c.Resources.Requests.Cpu().IsZero())
	require.False(t, c.Resources.Requests.Memory().IsZero())
	require.False(t, c.Resources.Limits.Memory().IsZero())
	require.GreaterOrEqual(t, c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()), 0)

	// Configuration: everything non-secret from the ConfigMap, secrets by reference.
	require.Len(t, c.EnvFrom, 1)
	require.NotNil(t, c.EnvFrom[0].ConfigMapRef)
	require.Equal(t, configName, c.EnvFrom[0].ConfigMapRef.Name)
	require.Nil(t, c.EnvFrom[0].SecretRef)
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		require.Contains(t, knownEnv, e.Name)
		require.Empty(t, e.Value, "%s: set it in the ConfigMap or the Secret, not inline", e.Name)
		require.NotNil(t, e.ValueFrom, e.Name)
		ref := e.ValueFrom.SecretKeyRef
		require.NotNil(t, ref, e.Name)
		require.Equal(t, secretName, ref.Name)
		require.Equal(t, e.Name, ref.Key)
		required := ref.Optional == nil || !*ref.Optional
		fromSecret[e.Name] = required
	}
	for _, name := range secretEnv {
		require.True(t, fromSecret[name], "%s must come from a required Secret key", name)
	}
	return c
}

// requireFromSecret: the container takes each named variable from the Secret (checkPod checks how).
func requireFromSecret(t *testing.T, c corev1.Container, names ...string) {
	t.Helper()
	for _, name := range names {
		require.True(t, slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name }), "%s takes %s", c.Name, name)
	}
}

func requireHTTPProbe(t *testing.T, c corev1.Container, p *corev1.Probe, path string) {
	t.Helper()
	require.NotNil(t, p, "%s probe on %s", path, c.Name)
	require.NotNil(t, p.HTTPGet)
	require.Equal(t, path, p.HTTPGet.Path)
	require.Equal(t, opsPort, containerPort(t, c, p.HTTPGet.Port), "probes go to the operations listener")
}

func requireScraped(t *testing.T, tpl corev1.PodTemplateSpec) {
	t.Helper()
	a := tpl.Annotations
	require.Equal(t, "true", a["prometheus.io/scrape"])
	require.Equal(t, "/metrics", a["prometheus.io/path"])
	require.Equal(t, strconv.Itoa(opsPort), a["prometheus.io/port"], "metrics are on the operations listener")
}

func requireGracefulStop(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	require.NotNil(t, spec.TerminationGracePeriodSeconds)
	grace := *spec.TerminationGracePeriodSeconds
	require.GreaterOrEqual(t, grace, int64(30))
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		require.NotNil(t, c.Lifecycle.PreStop.Sleep, "the image has no shell for exec hooks")
		require.Less(t, c.Lifecycle.PreStop.Sleep.Seconds, grace/2,
			"preStop eats into the grace period left for draining")
	}
}

// containerPort resolves a named or numeric port against the container.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	n := resolvePort(c, p)
	require.NotEqual(t, -1, n, "%s has no port named %q", c.Name, p.StrVal)
	return n
}

func requireSelects(t *testing.T, selector, labels map[string]string) {
	t.Helper()
	require.NotEmpty(t, selector)
	require.True(t, labelsMatch(selector, labels), "selector %v does not match labels %v", selector, labels)
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// ---------------------------------------------------------------------------
// deploy/Dockerfile

type stage struct {
	from  string
	name  string
	instr []string // instructions with continuation lines joined
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var (
		stages []stage
		cur    strings.Builder
	)
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			s := stage{}
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") {
					s.from = f
					break
				}
			}
			if n := len(fields); n >= 4 && strings.EqualFold(fields[n-2], "AS") {
				s.name = fields[n-1]
			}
			stages = append(stages, s)
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, line)
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	require.NoError(t, sc.Err())
	flush()
	return stages
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	stages := parseDockerfile(t, "Dockerfile")
	require.Len(t, stages, 2)
	build, final := stages[0], stages[1]

	goMod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	require.NoError(t, err)
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	require.NotNil(t, goVersion, "go directive in go.mod")
	require.Equal(t, "golang:"+string(goVersion[1]), build.from, "the build stage's Go is go.mod's")
	require.NotEmpty(t, build.name)
	var rootfs string
	for _, in := range build.instr {
		if strings.HasPrefix(in, "RUN") && strings.Contains(in, "deploy/build-rootfs.sh") {
			rootfs = in
		}
	}
	require.NotEmpty(t, rootfs, "the build stage runs deploy/build-rootfs.sh, as make image's fallback does")
	for _, want := range []string{
		"--mount=type=cache,target=/go/pkg/mod",
		"--mount=type=cache,target=/root/.cache/go-build",
		"GOOS=$TARGETOS GOARCH=$TARGETARCH GO_BUILD_TAGS=$GO_BUILD_TAGS",
	} {
		require.Contains(t, rootfs, want)
	}
	require.True(t, strings.HasSuffix(rootfs, " deploy/build-rootfs.sh /rootfs"), rootfs)
	require.Contains(t, build.instr, "ARG GO_BUILD_TAGS=nodev", "production images leave the development commands out")

	script, err := os.ReadFile("build-rootfs.sh")
	require.NoError(t, err)
	for _, want := range []string{
		"CGO_ENABLED=0",
		"-trimpath",
		`-ldflags="-s -w"`,
		`-tags "${GO_BUILD_TAGS:-}"`,
		"./cmd/linsync",
		"/etc/ssl/certs/ca-certificates.crt",
		"/usr/share/zoneinfo",
	} {
		require.Contains(t, string(script), want, "deploy/build-rootfs.sh")
	}
	info, err := os.Stat(filepath.Join("..", "cmd", "linsync"))
	require.NoError(t, err)
	require.True(t, info.IsDir())

	// The final stage needs no pull; scripts/build-image.sh rebuilds exactly this stage from a staged rootfs/.
	require.Equal(t, "scratch", final.from)
	require.Equal(t, "COPY --from="+build.name+" /rootfs/ /", final.instr[1], "the final stage's first step")
	require.Regexp(t, `^COPY --from=[A-Za-z0-9_-]+ /rootfs/ /$`, final.instr[1], "the line scripts/build-image.sh rewrites")
	for _, in := range final.instr[2:] {
		require.NotRegexp(t, `^(?i)(RUN|COPY|ADD)\b`, in, "the final stage has one COPY and nothing to run (no shell)")
	}
}
