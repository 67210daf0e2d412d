package deploy

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// composeFile is the part of a compose file the test reads; other keys are ignored (docker
// compose config validates the whole file where Docker Compose is installed).
type composeFile struct {
	Services map[string]composeService `json:"services"`
	Secrets  map[string]struct {
		File string `json:"file"`
	} `json:"secrets"`
	Volumes map[string]any `json:"volumes"`
}

type composeService struct {
	Build *struct {
		Context    string `json:"context"`
		Dockerfile string `json:"dockerfile"`
	} `json:"build"`
	Image       string            `json:"image"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Secrets     []string          `json:"secrets"`
	Ports       []string          `json:"ports"`
	Volumes     []string          `json:"volumes"`
	NetworkMode string            `json:"network_mode"`
	DependsOn   map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Healthcheck *struct {
		Test []string `json:"test"`
	} `json:"healthcheck"`
}

const composePath = "compose/compose.yaml"

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", composePath, err)
	}
	return c
}

func TestCompose(t *testing.T) {
	c := readCompose(t)
	known := knownVariables(t)

	app, ok := c.Services[appName]
	if !ok {
		t.Fatalf("no service %s", appName)
	}
	rds, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no service redis")
	}

	// Redis: AOF on, on a named volume, never evicting, with a health check.
	cmd := strings.Join(rds.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("redis: command %q lacks %s", cmd, want)
		}
	}
	if err := checkImage(rds.Image); err != nil {
		t.Errorf("redis: %v", err)
	}
	onVolume := false
	for _, v := range rds.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if _, named := c.Volumes[src]; named && dst == redisDataMount {
			onVolume = true
		}
	}
	if !onVolume {
		t.Errorf("redis: %s is not on a named volume: %v", redisDataMount, rds.Volumes)
	}
	if rds.Healthcheck == nil || len(rds.Healthcheck.Test) == 0 || !strings.Contains(strings.Join(rds.Healthcheck.Test, " "), "ping") {
		t.Error("redis: no health check that pings it")
	}
	if len(rds.Ports) > 0 {
		t.Errorf("redis: publishes ports %v: only the token authority may reach it", rds.Ports)
	}

	// The token authority: built from the Dockerfile, healthy by the gRPC health protocol, started
	// after a healthy Redis, secrets as files.
	if app.Build == nil || path.Join("compose", app.Build.Context) != ".." || app.Build.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("%s: want build context ../.. (the repository root) and dockerfile deploy/Dockerfile, got %+v", appName, app.Build)
	} else if _, err := os.Stat(filepath.Join("compose", app.Build.Context, app.Build.Dockerfile)); err != nil {
		t.Errorf("%s: %v", appName, err)
	}
	if app.Healthcheck == nil || !slices.Equal(app.Healthcheck.Test, []string{"CMD", "/tokenauthority", "healthcheck", "-tls", "-cacert", app.Environment[varTLSClientCA]}) {
		t.Errorf("%s: want the health check CMD /tokenauthority healthcheck -tls -cacert %s, got %+v", appName, app.Environment[varTLSClientCA], app.Healthcheck)
	}
	for name, dep := range app.DependsOn {
		if name == composeCertsService {
			if dep.Condition != "service_completed_successfully" {
				t.Errorf("%s: depends on %s with condition %q, want service_completed_successfully", appName, name, dep.Condition)
			}
			continue
		}
		if dep.Condition != "service_healthy" {
			t.Errorf("%s: depends on %s with condition %q, want service_healthy", appName, name, dep.Condition)
		}
		if d, ok := c.Services[name]; !ok || d.Healthcheck == nil {
			t.Errorf("%s: depends on %s, which has no health check", appName, name)
		}
	}
	if _, ok := app.DependsOn[composeCertsService]; !ok {
		t.Errorf("%s: does not wait for its certificates (service %s)", appName, composeCertsService)
	}
	if _, ok := app.DependsOn["redis"]; !ok {
		t.Errorf("%s: does not wait for redis", appName)
	}
	for name := range app.Environment {
		if known != nil && strings.HasPrefix(name, varPrefix) && !known[name] {
			t.Errorf("%s: %s is not a variable of the service (misspelt?)", appName, name)
		}
	}
	redisURL := app.Environment[varRedisURL]
	if mode, err := redisMode(redisURL); err != nil || mode != "single" {
		t.Errorf("%s: %s %q: %s %v", appName, varRedisURL, redisURL, mode, err)
	} else if u, _ := url.Parse(redisURL); u.Hostname() != "redis" {
		t.Errorf("%s: %s points at %s, not at the redis service", appName, varRedisURL, u.Host)
	}
	for _, secret := range []string{varMasterKey, varKEK} {
		if _, ok := app.Environment[secret]; ok {
			t.Errorf("%s: %s is given as a value: give it as a file", appName, secret)
		}
		file := app.Environment[secret+fileSuffix]
		name, ok := strings.CutPrefix(file, "/run/secrets/")
		if !ok || !slices.Contains(app.Secrets, name) {
			t.Errorf("%s: %s is %q, not /run/secrets/NAME of a secret of the service", appName, secret+fileSuffix, file)
			continue
		}
		if s, ok := c.Secrets[name]; !ok || s.File == "" {
			t.Errorf("secret %s is not defined from a file", name)
		} else if !strings.HasPrefix(path.Clean(s.File), "secrets/") {
			t.Errorf("secret %s: %s is outside compose/secrets/, which .gitignore and .dockerignore keep out", name, s.File)
		}
	}
	for _, p := range app.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("%s: port %s is published on every interface", appName, p)
		}
	}
}

// TestComposeSecretsAreIgnored checks that the generated secrets stay out of git and of the
// image's build context.
func TestComposeSecretsAreIgnored(t *testing.T) {
	gitignore, err := os.ReadFile("compose/.gitignore")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(gitignore)), "/secrets/") {
		t.Error("compose/.gitignore does not ignore /secrets/")
	}
	dockerignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(dockerignore))
	for _, want := range []string{".git", "bin/", ".data/", "deploy/compose/secrets/"} {
		if !slices.Contains(lines, want) {
			t.Errorf("../.dockerignore does not exclude %s", want)
		}
	}
}
