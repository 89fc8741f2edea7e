package deploy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// roles are the subcommands an image may be started with in a deployment.
var roles = []string{"api", "worker", "all", "migrate"}

// probePaths are the endpoints linsync serves on LINSYNC_OPS_ADDR for probes (scripts/image-smoke.sh checks both
// answer 200 in the real image).
var probePaths = []string{"/healthz", "/readyz"}

// imageContract is what deploy/Dockerfile and deploy/build-rootfs.sh promise about the image.
type imageContract struct {
	entrypoint []string
	cmd        []string
	uid, gid   int
	// port is the API's (the first EXPOSE), opsPort the operations listener's (the second).
	port, opsPort int
	// binary is where build-rootfs.sh puts linsync in the image; passwdUID and passwdGID are the non-root user it
	// writes into /etc/passwd.
	binary               string
	passwdUID, passwdGID int
}

func loadImageContract(t *testing.T) imageContract {
	t.Helper()
	stages := parseDockerfile(t, "Dockerfile")
	require.NotEmpty(t, stages)
	final := stages[len(stages)-1]
	var c imageContract
	for _, in := range final.instr {
		op, arg, _ := strings.Cut(in, " ")
		switch strings.ToUpper(op) {
		case "ENTRYPOINT":
			require.NoError(t, json.Unmarshal([]byte(arg), &c.entrypoint), "ENTRYPOINT must be exec form: %s", arg)
		case "CMD":
			require.NoError(t, json.Unmarshal([]byte(arg), &c.cmd), "CMD must be exec form: %s", arg)
		case "USER":
			u, g, ok := strings.Cut(arg, ":")
			require.True(t, ok, "USER must name uid:gid, got %q", arg)
			var err error
			c.uid, err = strconv.Atoi(u)
			require.NoError(t, err, "USER must be numeric so Kubernetes can verify runAsNonRoot, got %q", arg)
			c.gid, err = strconv.Atoi(g)
			require.NoError(t, err, "USER group must be numeric, got %q", arg)
		case "EXPOSE":
			require.Zero(t, c.port, "one EXPOSE")
			ports := strings.Fields(arg)
			require.Len(t, ports, 2, "EXPOSE the API's port and the operations listener's: %s", arg)
			var err error
			c.port, err = strconv.Atoi(strings.TrimSuffix(ports[0], "/tcp"))
			require.NoError(t, err, "EXPOSE %s", arg)
			c.opsPort, err = strconv.Atoi(strings.TrimSuffix(ports[1], "/tcp"))
			require.NoError(t, err, "EXPOSE %s", arg)
		}
	}

	script, err := os.ReadFile("build-rootfs.sh")
	require.NoError(t, err)
	out := regexp.MustCompile(`-o "\$out(/[^"]+)" \./cmd/linsync`).FindSubmatch(script)
	require.NotNil(t, out, "build-rootfs.sh builds ./cmd/linsync into $out")
	c.binary = string(out[1])
	uid := regexp.MustCompile(`(?m)^uid=(\d+)$`).FindSubmatch(script)
	require.NotNil(t, uid, "build-rootfs.sh sets uid=")
	require.Contains(t, string(script), `linsync:x:%s:%s:`, "the passwd entry is uid=gid=$uid")
	c.passwdUID, err = strconv.Atoi(string(uid[1]))
	require.NoError(t, err)
	c.passwdGID = c.passwdUID
	return c
}

// imageDisagreements lists every way the image, docker-compose.yml and deploy/k8s disagree on how linsync runs:
// entrypoint, user, port, probes. Empty means they agree.
func imageDisagreements(img imageContract, project *types.Project, m manifests) []string {
	var problems []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	portOf := func(addr string) int {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return -1
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return -1
		}
		return n
	}

	// The image itself.
	check(slices.Equal(img.entrypoint, []string{img.binary}),
		"Dockerfile ENTRYPOINT %q is not the binary build-rootfs.sh installs (%s)", img.entrypoint, img.binary)
	check(len(img.cmd) == 1 && slices.Contains(roles, img.cmd[0]), "Dockerfile CMD %q is not one role of %v", img.cmd, roles)
	check(img.uid != 0 && img.gid != 0, "Dockerfile USER %d:%d is root", img.uid, img.gid)
	check(img.uid == img.passwdUID && img.gid == img.passwdGID,
		"Dockerfile USER %d:%d is not the user build-rootfs.sh writes to /etc/passwd (%d:%d)",
		img.uid, img.gid, img.passwdUID, img.passwdGID)
	check(img.port > 0, "Dockerfile EXPOSEs no port")
	check(img.opsPort > 0 && img.opsPort != img.port, "Dockerfile EXPOSEs no operations port apart from the API's")

	// docker-compose.yml: every service built from deploy/Dockerfile.
	user := fmt.Sprintf("%d:%d", img.uid, img.gid)
	var built []string
	for _, name := range project.ServiceNames() {
		svc := project.Services[name]
		if svc.Build == nil || svc.Build.Dockerfile != "deploy/Dockerfile" {
			continue
		}
		built = append(built, name)
		where := "docker-compose.yml " + name
		check(len(svc.Entrypoint) == 0, "%s overrides the image's entrypoint: %q", where, svc.Entrypoint)
		check(len(svc.Command) >= 1 && slices.Contains(roles, svc.Command[0]), "%s command %q is not a role", where, svc.Command)
		check(svc.User == user, "%s user %q, the image runs as %s", where, svc.User, user)
		check(svc.ReadOnly, "%s: read_only, as in deploy/k8s", where)
		check(slices.Contains(svc.Tmpfs, "/tmp"), "%s: a tmpfs on /tmp, as in deploy/k8s", where)
		check(slices.Equal(svc.CapDrop, []string{"ALL"}), "%s: cap_drop ALL, as in deploy/k8s", where)
		if addr := svc.Environment["LINSYNC_HTTP_ADDR"]; addr != nil {
			check(portOf(*addr) == img.port, "%s LINSYNC_HTTP_ADDR %q, the image EXPOSEs %d", where, *addr, img.port)
		} else {
			check(false, "%s sets no LINSYNC_HTTP_ADDR", where)
		}
		if addr := svc.Environment["LINSYNC_OPS_ADDR"]; addr != nil {
			check(portOf(*addr) == img.opsPort, "%s LINSYNC_OPS_ADDR %q, the image EXPOSEs %d for operations", where, *addr, img.opsPort)
		} else {
			check(false, "%s sets no LINSYNC_OPS_ADDR", where)
		}
		for _, p := range svc.Ports {
			check(int(p.Target) == img.port, "%s publishes container port %d, the image EXPOSEs %d for the API (metrics stay unpublished)",
				where, p.Target, img.port)
		}
	}
	check(len(built) > 0, "docker-compose.yml builds no service from deploy/Dockerfile")

	// deploy/k8s.
	cm := m.configMaps[configName]
	check(portOf(cm.Data["LINSYNC_HTTP_ADDR"]) == img.port,
		"ConfigMap LINSYNC_HTTP_ADDR %q, the image EXPOSEs %d", cm.Data["LINSYNC_HTTP_ADDR"], img.port)
	check(portOf(cm.Data["LINSYNC_OPS_ADDR"]) == img.opsPort,
		"ConfigMap LINSYNC_OPS_ADDR %q, the image EXPOSEs %d for operations", cm.Data["LINSYNC_OPS_ADDR"], img.opsPort)
	pods := map[string]corev1.PodTemplateSpec{}
	for name, d := range m.deployments {
		pods["Deployment "+name] = d.Spec.Template
	}
	for name, j := range m.jobs {
		pods["Job "+name] = j.Spec.Template
	}
	check(len(pods) > 0, "deploy/k8s runs no pods")
	for where, tpl := range pods {
		sc := tpl.Spec.SecurityContext
		check(sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == int64(img.uid),
			"%s runAsUser is not the image's uid %d", where, img.uid)
		check(sc != nil && sc.RunAsGroup != nil && *sc.RunAsGroup == int64(img.gid),
			"%s runAsGroup is not the image's gid %d", where, img.gid)
		if a, ok := tpl.Annotations["prometheus.io/port"]; ok {
			check(a == strconv.Itoa(img.opsPort), "%s scrapes port %s, the image EXPOSEs %d for operations", where, a, img.opsPort)
		}
		for _, c := range tpl.Spec.Containers {
			where := where + " container " + c.Name
			check(len(c.Command) == 0, "%s overrides the image's entrypoint: %q", where, c.Command)
			check(len(c.Args) >= 1 && slices.Contains(roles, c.Args[0]), "%s args %q is not a role", where, c.Args)
			for _, p := range c.Ports {
				want := map[string]int{"http": img.port, "ops": img.opsPort}[p.Name]
				check(int(p.ContainerPort) == want, "%s port %s is %d, the image EXPOSEs %d (http) and %d (ops)",
					where, p.Name, p.ContainerPort, img.port, img.opsPort)
			}
			for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if p == nil {
					continue
				}
				if p.HTTPGet == nil {
					check(false, "%s %s probe is not an HTTP GET (the image has no shell for exec probes)", where, kind)
					continue
				}
				check(slices.Contains(probePaths, p.HTTPGet.Path), "%s %s probe path %q is not one of %v",
					where, kind, p.HTTPGet.Path, probePaths)
				check(resolvePort(c, p.HTTPGet.Port) == img.opsPort, "%s %s probe port %s is not the image's operations port %d",
					where, kind, p.HTTPGet.Port.String(), img.opsPort)
			}
		}
	}
	for name, svc := range m.services {
		api, ok := m.deployments["linsync-api"]
		if !ok || len(api.Spec.Template.Spec.Containers) == 0 {
			continue
		}
		for _, p := range svc.Spec.Ports {
			check(resolvePort(api.Spec.Template.Spec.Containers[0], p.TargetPort) == img.port,
				"Service %s targetPort %s is not the image's port %d", name, p.TargetPort.String(), img.port)
		}
	}
	slices.Sort(problems)
	return problems
}

// resolvePort resolves a named or numeric port against the container; -1 when it names no port.
func resolvePort(c corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func loadAll(t *testing.T) (imageContract, *types.Project, manifests) {
	t.Helper()
	project, err := loadCompose(t, types.Mapping{"LINSYNC_SECRETS_KEY_URL": "base64key://dGVzdA=="})
	require.NoError(t, err)
	return loadImageContract(t), project, loadManifests(t)
}

// TestImageAgreesWithComposeAndKubernetes: the Dockerfile, docker-compose.yml and deploy/k8s run the same image the
// same way.
func TestImageAgreesWithComposeAndKubernetes(t *testing.T) {
	t.Parallel()
	img, project, m := loadAll(t)
	require.Equal(t, []string{"/linsync"}, img.entrypoint)
	require.Equal(t, []string{"all"}, img.cmd)
	require.Equal(t, 65532, img.uid)
	require.Equal(t, httpPort, img.port)
	require.Equal(t, opsPort, img.opsPort)
	require.Empty(t, imageDisagreements(img, project, m))
}

// TestImageDisagreementsAreFound: the check above fails when any one side drifts.
func TestImageDisagreementsAreFound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		drift  func(*imageContract, *types.Project, *manifests)
		expect []string // substrings, each of some problem
	}{
		{
			name:  "Dockerfile USER",
			drift: func(i *imageContract, _ *types.Project, _ *manifests) { i.uid, i.gid = 1000, 1000 },
			expect: []string{
				"not the user build-rootfs.sh writes", `docker-compose.yml api user "65532:65532"`,
				"Deployment linsync-api runAsUser", "Job linsync-migrate runAsGroup",
			},
		},
		{
			name: "root",
			drift: func(i *imageContract, _ *types.Project, _ *manifests) {
				i.uid, i.gid, i.passwdUID, i.passwdGID = 0, 0, 0, 0
			},
			expect: []string{"USER 0:0 is root"},
		},
		{
			name:  "Dockerfile EXPOSE",
			drift: func(i *imageContract, _ *types.Project, _ *manifests) { i.port = 8081 },
			expect: []string{
				"ConfigMap LINSYNC_HTTP_ADDR", "docker-compose.yml api publishes container port 8080",
				"docker-compose.yml worker LINSYNC_HTTP_ADDR", "Deployment linsync-api container api port http is 8080",
				"Service linsync-api targetPort",
			},
		},
		{
			name:  "Dockerfile EXPOSE of the operations listener",
			drift: func(i *imageContract, _ *types.Project, _ *manifests) { i.opsPort = 9100 },
			expect: []string{
				"ConfigMap LINSYNC_OPS_ADDR", "docker-compose.yml worker LINSYNC_OPS_ADDR",
				"linsync-api container api liveness probe port ops", "scrapes port 9090",
				"Deployment linsync-worker container worker port ops is 9090",
			},
		},
		{
			name: "compose publishes the operations listener",
			drift: func(_ *imageContract, p *types.Project, _ *manifests) {
				svc := p.Services["api"]
				svc.Ports = append(svc.Ports, types.ServicePortConfig{Target: 9090, Published: "9090"})
				p.Services["api"] = svc
			},
			expect: []string{"docker-compose.yml api publishes container port 9090"},
		},
		{
			name:   "Dockerfile ENTRYPOINT",
			drift:  func(i *imageContract, _ *types.Project, _ *manifests) { i.entrypoint = []string{"/usr/bin/linsync"} },
			expect: []string{"is not the binary build-rootfs.sh installs (/linsync)"},
		},
		{
			name: "compose entrypoint and user",
			drift: func(_ *imageContract, p *types.Project, _ *manifests) {
				svc := p.Services["worker"]
				svc.Entrypoint = types.ShellCommand{"/bin/sh", "-c"}
				svc.User = "root"
				svc.ReadOnly = false
				p.Services["worker"] = svc
			},
			expect: []string{
				"docker-compose.yml worker overrides the image's entrypoint", `docker-compose.yml worker user "root"`,
				"docker-compose.yml worker: read_only",
			},
		},
		{
			name: "k8s command, probe and port",
			drift: func(_ *imageContract, _ *types.Project, m *manifests) {
				d := m.deployments["linsync-api"]
				c := &d.Spec.Template.Spec.Containers[0]
				c.Command = []string{"/linsync"}
				c.Args = []string{"serve"}
				c.ReadinessProbe.HTTPGet.Path = "/ready"
				c.Ports[0].ContainerPort = 8081
				m.deployments["linsync-api"] = d
			},
			expect: []string{
				"Deployment linsync-api container api overrides the image's entrypoint",
				`Deployment linsync-api container api args ["serve"] is not a role`,
				`readiness probe path "/ready"`, "Deployment linsync-api container api port http is 8081",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img, project, m := loadAll(t)
			tc.drift(&img, project, &m)
			problems := imageDisagreements(img, project, m)
			require.NotEmpty(t, problems)
			for _, want := range tc.expect {
				require.True(t, slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }),
					"no problem mentions %q in:\n%s", want, strings.Join(problems, "\n"))
			}
		})
	}
}
