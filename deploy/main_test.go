package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

// binDir holds the service's binary, built once for the tests that ask it what it accepts.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenauthority-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// serviceBinary returns the path of the service's binary, built from the repository root (the
// module above this one) on first use. The manifests are checked against what this binary
// accepts, not against a copy of its variable names.
func serviceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(binDir, "tokenauthority")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tokenauthority")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tokenauthority: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var (
	knownOnce sync.Once
	known     map[string]bool
	knownErr  error
)

// variableName matches the service's environment variables in its usage text.
var variableName = regexp.MustCompile(`\bTOKENAUTHORITY_[A-Z0-9_]+\b`)

// knownVariables returns the environment variables the service reads, from the usage text of its
// binary; nil in -short mode, where the binary is not built and names are not checked.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	if testing.Short() {
		return nil
	}
	bin := serviceBinary(t)
	knownOnce.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "-h")
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			knownErr = fmt.Errorf("tokenauthority -h: %w\n%s", err, stderr.String())
			return
		}
		known = map[string]bool{}
		for _, name := range variableName.FindAllString(stderr.String(), -1) {
			known[name] = true
		}
		for _, name := range []string{varEnv, varGRPCAddr, varHTTPAddr, varRedisURL, varMasterKey + fileSuffix, varKEK + fileSuffix} {
			if !known[name] {
				knownErr = fmt.Errorf("the usage text of tokenauthority does not list %s:\n%s", name, stderr.String())
			}
		}
	})
	if knownErr != nil {
		t.Fatal(knownErr)
	}
	return known
}

// TestServiceHasHealthcheckMode checks that the command the Dockerfile and the compose file run
// as their health check exists.
func TestServiceHasHealthcheckMode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service")
	}
	out, err := exec.Command(serviceBinary(t), "healthcheck", "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("tokenauthority healthcheck -h: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("grpc.health.v1")) {
		t.Errorf("the usage of the health check does not mention the gRPC health protocol:\n%s", out)
	}
}
