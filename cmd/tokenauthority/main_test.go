package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProductionRefusesToStartWithoutSecrets(t *testing.T) {
	t.Setenv("TOKENAUTHORITY_ENV", "production")
	err := run(context.Background(), nil)
	if err == nil {
		t.Fatal("production started without secrets")
	}
	for _, name := range []string{"TOKENAUTHORITY_MASTER_KEY", "TOKENAUTHORITY_KEY_ENCRYPTION_KEY", "TOKENAUTHORITY_REDIS_URL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestBinaryServesAndStopsOnSIGTERM builds the real binary, starts it on the embedded default,
// waits until it serves, and checks that SIGTERM stops it cleanly.
func TestBinaryServesAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tokenauthority")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "-grpc-addr", grpcAddr, "-http-addr", httpAddr, "-data-dir", filepath.Join(dir, "data"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log strings.Builder
	deadline := time.After(20 * time.Second)
	for !strings.Contains(log.String(), "msg=serving") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("exited before serving:\n%s", log.String())
			}
			log.WriteString(l + "\n")
		case <-deadline:
			t.Fatalf("not serving after 20s:\n%s", log.String())
		}
	}
	// The health-check mode of the same binary, as a container's HEALTHCHECK runs it.
	for _, hc := range []struct {
		env  string
		want int
	}{
		{env: "TOKENAUTHORITY_GRPC_ADDR=" + grpcAddr, want: 0},
		{env: "TOKENAUTHORITY_GRPC_ADDR=" + httpAddr, want: 1}, // not a gRPC server
	} {
		check := exec.Command(bin, "healthcheck", "-timeout", "3s")
		check.Env = []string{hc.env}
		out, err := check.CombinedOutput()
		if got := check.ProcessState.ExitCode(); got != hc.want {
			t.Errorf("healthcheck with %s: exit code %d (%v), want %d\n%s", hc.env, got, err, hc.want, out)
		}
	}
	key, err := os.ReadFile(filepath.Join(dir, "data", "dev-api-key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "data", "dev-api-key")); fi.Mode().Perm() != 0o600 {
		t.Errorf("dev-api-key mode %v, want 0600", fi.Mode().Perm())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		for l := range lines {
			log.WriteString(l + "\n")
		}
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, log.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("still running 15s after SIGTERM")
	}
	if strings.Contains(log.String(), strings.TrimSpace(string(key))) {
		t.Fatal("the dev API key was logged")
	}
	// The effective configuration is logged at start, its secrets redacted.
	if !strings.Contains(log.String(), "msg=configuration") || !strings.Contains(log.String(), "config.grpc_addr") {
		t.Errorf("no configuration line in the log:\n%s", log.String())
	}
	for _, name := range []string{"master-key", "key-encryption-key"} {
		secret, err := os.ReadFile(filepath.Join(dir, "data", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(log.String(), strings.TrimSpace(string(secret))) {
			t.Fatalf("the %s was logged", name)
		}
	}
	if !strings.Contains(log.String(), "dev-api-key") {
		t.Errorf("the log does not say where the dev API key is:\n%s", log.String())
	}
}

// TestProductionRefusesPlaintext: production with every secret but no TLS stops start-up with a
// message naming both ways out.
func TestProductionRefusesPlaintext(t *testing.T) {
	t.Setenv("TOKENAUTHORITY_ENV", "production")
	t.Setenv("TOKENAUTHORITY_REDIS_URL", "redis://127.0.0.1:1/0")
	t.Setenv("TOKENAUTHORITY_MASTER_KEY", strings.Repeat("m", 40))
	t.Setenv("TOKENAUTHORITY_KEY_ENCRYPTION_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	// Bounded: a server that did start would serve until cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := run(ctx, nil)
	if err == nil {
		t.Fatal("production started in plaintext")
	}
	for _, name := range []string{"TOKENAUTHORITY_TLS_CERT_FILE", "TOKENAUTHORITY_INSECURE_PLAINTEXT"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	for _, name := range []string{"TOKENAUTHORITY_MASTER_KEY (", "TOKENAUTHORITY_REDIS_URL ("} {
		if strings.Contains(err.Error(), name) {
			t.Errorf("error names %s, which is set: %v", name, err)
		}
	}
}
