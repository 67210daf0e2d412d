package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

// readmeAddr is the gRPC address of `make run`, which the README's examples use literally so that
// they stay copy-pasteable; the test substitutes its own server's address.
const readmeAddr = "127.0.0.1:50051"

// readmeTLSAddr is the address of the TLS server that the certificate-bound tokens example uses.
const readmeTLSAddr = "localhost:50443"

var (
	// invokesGrpcurl and invokesTokenctl match a command that runs grpcurl, or the tokenctl that
	// the README builds into bin/.
	invokesGrpcurl  = regexp.MustCompile(`(^|[\s;&|(])grpcurl\s`)
	invokesTokenctl = regexp.MustCompile(`(^|[\s;&|(])bin/tokenctl(\s|$)`)
	// expectComment marks a command that must fail with the named gRPC code.
	expectComment = regexp.MustCompile(`#\s*expect:\s*([A-Za-z]+)\s*$`)
	// tokenctlComment gives the tokenctl equivalent of the grpcurl call above it.
	tokenctlComment = regexp.MustCompile(`^#\s*tokenctl:\s*(.*\bbin/tokenctl\s.*)$`)
)

// readmeCommand is one logical shell command of a README code block (continuation lines joined).
type readmeCommand struct {
	line int    // line of README.md where it starts
	text string // as written, with the address of make run
	// expect is the gRPC code the command must fail with; codes.OK means it must succeed.
	expect codes.Code
	// dryRun marks a tokenctl equivalent given in a comment: it is run against a closed port,
	// which checks that the command and its flags exist (exit status 1, Unavailable) rather than
	// repeating the grpcurl call's effect.
	dryRun bool
}

func (c readmeCommand) grpcurl() bool  { return !c.dryRun && invokesGrpcurl.MatchString(c.text) }
func (c readmeCommand) tokenctl() bool { return invokesTokenctl.MatchString(c.text) }

// readmeBlocks returns the logical commands of every sh, bash, shell or console code block of the
// markdown text, one slice per block. In console blocks only lines after a "$ " prompt count.
func readmeBlocks(t *testing.T, markdown []byte) [][]readmeCommand {
	t.Helper()
	var (
		blocks  [][]readmeCommand
		current []readmeCommand
		inBlock bool
		console bool
		pending *readmeCommand // a command whose last line ended with a backslash
	)
	sc := bufio.NewScanner(bytes.NewReader(markdown))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			switch {
			case !inBlock:
				lang := strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
				switch lang {
				case "sh", "bash", "shell", "console":
					inBlock, console, current = true, lang == "console", nil
				default:
					// Skip another language's block whole.
					for sc.Scan() {
						n++
						if strings.HasPrefix(strings.TrimSpace(sc.Text()), "```") {
							break
						}
					}
				}
			default:
				if pending != nil {
					t.Fatalf("README.md:%d: the command ends with a backslash at the end of its block", pending.line)
				}
				blocks = append(blocks, current)
				inBlock = false
			}
			continue
		}
		if !inBlock {
			continue
		}
		if pending != nil {
			pending.text += "\n" + line
		} else {
			switch {
			case console && !strings.HasPrefix(trimmed, "$ "):
				continue // output
			case console:
				line = strings.TrimPrefix(trimmed, "$ ")
			case trimmed == "":
				continue
			case strings.HasPrefix(trimmed, "#"):
				if m := tokenctlComment.FindStringSubmatch(trimmed); m != nil {
					current = append(current, readmeCommand{line: n, text: m[1], dryRun: true})
				}
				continue
			}
			pending = &readmeCommand{line: n, text: line}
		}
		if strings.HasSuffix(line, `\`) {
			continue
		}
		if m := expectComment.FindStringSubmatch(line); m != nil {
			pending.expect = parseCode(t, n, m[1])
		}
		current = append(current, *pending)
		pending = nil
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inBlock {
		t.Fatal("README.md: a code block is not closed")
	}
	return blocks
}

// parseCode returns the gRPC code named as codes.Code.String spells it ("Unauthenticated").
func parseCode(t *testing.T, line int, name string) codes.Code {
	t.Helper()
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() == name {
			return c
		}
	}
	t.Fatalf("README.md:%d: # expect: %s is not a gRPC code name such as Unauthenticated", line, name)
	return codes.Unknown
}

// TestREADMEGrpcurlExamples runs every code block of the README that invokes grpcurl or
// bin/tokenctl, in order and in one bash, so that variables set by one example serve the next, as
// they do for a reader pasting them into a terminal. The server is started in-process with the
// in-memory store; the working directory holds its data directory as .data/ (so that
// $(cat .data/dev-api-key) and $(cat .data/master-key) work) and bin/tokenctl, built from
// cmd/tokenctl. Each command must exit 0, or fail with the code of its "# expect: Code" comment;
// each "# tokenctl: ..." comment must name a command with valid flags. Every RPC of TokenService
// and AdminService must have a grpcurl example.
func TestREADMEGrpcurlExamples(t *testing.T) {
	grpcurl := os.Getenv("GRPCURL")
	if grpcurl == "" {
		t.Skip("GRPCURL is unset: `make test` installs the pinned grpcurl and sets it " +
			"(or run GRPCURL=/path/to/grpcurl go test -run TestREADME ./internal/app/)")
	}
	grpcurl, err := filepath.Abs(grpcurl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(grpcurl); err != nil {
		t.Fatalf("GRPCURL: %v", err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("the README's examples need bash: %v", err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}

	var cmds []readmeCommand
	for _, block := range readmeBlocks(t, readme) {
		runs := false
		for _, c := range block {
			runs = runs || c.grpcurl() || (!c.dryRun && c.tokenctl())
		}
		if runs {
			cmds = append(cmds, block...)
		}
	}
	checkEveryRPCHasAnExample(t, cmds)

	work := t.TempDir()
	toolDir := filepath.Dir(grpcurl)
	if filepath.Base(grpcurl) != "grpcurl" {
		// The README calls it grpcurl.
		toolDir = t.TempDir()
		if err := os.Symlink(grpcurl, filepath.Join(toolDir, "grpcurl")); err != nil {
			t.Fatal(err)
		}
	}
	buildTokenctl(t, filepath.Join(work, "bin", "tokenctl"))

	cfg := testConfig(t, "")
	// As the README's ext_authz example asks of make run.
	cfg.ExtAuthzPolicy = filepath.Join("..", "..", "deploy", "envoy", "extauthz-policy.json")
	r := start(t, cfg)
	if err := os.Symlink(cfg.DataDir, filepath.Join(work, ".data")); err != nil {
		t.Fatal(err)
	}
	addr := r.conn.Target()
	// The certificate-bound tokens example: a second server, on TLS with client certificates of
	// a CA the test makes, beside the first (same data directory: same dev API key).
	tlsDir := filepath.Join(cfg.DataDir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := tlstest.NewCA(t, "README CA")
	tlstest.WriteFile(t, filepath.Join(tlsDir, "ca.pem"), ca.PEM)
	server, client := ca.Server(t), ca.Client(t, "orders-worker")
	for name, pemBytes := range map[string][]byte{"server.pem": server.CertPEM, "server-key.pem": server.KeyPEM,
		"client.pem": client.CertPEM, "client-key.pem": client.KeyPEM} {
		tlstest.WriteFile(t, filepath.Join(tlsDir, name), pemBytes)
	}
	tlsCfg := *cfg
	tlsCfg.TLSCertFile, tlsCfg.TLSKeyFile = filepath.Join(tlsDir, "server.pem"), filepath.Join(tlsDir, "server-key.pem")
	tlsCfg.TLSClientCAFile, tlsCfg.TLSClientAuth = filepath.Join(tlsDir, "ca.pem"), config.ClientAuthOptional
	rTLS, _ := startWithCreds(t, &tlsCfg, nil, func(log *slog.Logger) (*App, error) { return New(&tlsCfg, log) },
		credentials.NewTLS(tlstest.ClientConfig(ca, client)))
	_, tlsPort, err := net.SplitHostPort(rTLS.conn.Target())
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closedPort(t)

	out := t.TempDir()
	var script strings.Builder
	script.WriteString("set -o pipefail\n")
	for i, c := range cmds {
		text := strings.ReplaceAll(strings.ReplaceAll(c.text, readmeAddr, addr), readmeTLSAddr, "localhost:"+tlsPort)
		open, closing := "{", "}"
		if c.dryRun {
			// In a subshell, so that the closed port reaches tokenctl in a pipeline or a command
			// substitution too, and nothing that follows.
			text = "export TOKENCTL_ADDR=" + closedAddr + "\n" + text
			open, closing = "(", ")"
		}
		fmt.Fprintf(&script, "# README.md:%d\n%s %s\n%s >%q 2>%q </dev/null\n", c.line, open, text, closing,
			filepath.Join(out, fmt.Sprintf("%d.out", i)), filepath.Join(out, fmt.Sprintf("%d.err", i)))
		fmt.Fprintf(&script, "readme_rc=$?; echo $readme_rc >%q\n", filepath.Join(out, fmt.Sprintf("%d.rc", i)))
		if c.expect == codes.OK && !c.dryRun {
			script.WriteString("[ $readme_rc -eq 0 ] || exit 1\n")
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "-c", script.String())
	cmd.Dir = work
	cmd.Env = readmeEnv(toolDir, addr)
	cmd.WaitDelay = 5 * time.Second
	combined, runErr := cmd.CombinedOutput()

	var nGrpcurl, nTokenctl, nDry int
	for i, c := range cmds {
		read := func(ext string) string {
			b, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.%s", i, ext)))
			return string(b)
		}
		rcText := strings.TrimSpace(read("rc"))
		if rcText == "" {
			t.Fatalf("README.md:%d was not run (bash: %v, %s)\n%s", c.line, runErr, combined, c.text)
		}
		rc, err := strconv.Atoi(rcText)
		if err != nil {
			t.Fatal(err)
		}
		if problem := checkResult(c, rc, read("err")); problem != "" {
			t.Fatalf("README.md:%d: %s\n$ %s\n--- stdout\n%s--- stderr\n%s", c.line, problem, c.text, read("out"), read("err"))
		}
		switch {
		case c.dryRun:
			nDry++
		case c.grpcurl():
			nGrpcurl++
		case c.tokenctl():
			nTokenctl++
		}
	}
	if runErr != nil {
		t.Fatalf("bash: %v\n%s", runErr, combined)
	}
	t.Logf("ran %d README commands: %d grpcurl calls, %d tokenctl calls, %d tokenctl equivalents checked against a closed port",
		len(cmds), nGrpcurl, nTokenctl, nDry)
}

// checkResult returns what is wrong with a command's exit status and standard error, or "".
func checkResult(c readmeCommand, rc int, stderr string) string {
	switch {
	case c.dryRun:
		// tokenctl exits 2 for a usage error and 1 when the call fails, as it must at a closed port.
		if rc != 1 || !strings.Contains(stderr, "tokenctl: Unavailable") {
			return fmt.Sprintf("the tokenctl equivalent is not a valid command: exit status %d, want 1 with Unavailable", rc)
		}
	case c.expect == codes.OK:
		if rc != 0 {
			return fmt.Sprintf("exit status %d, want 0", rc)
		}
	default:
		name := c.expect.String()
		reported := strings.Contains(stderr, "Code: "+name) || strings.Contains(stderr, "tokenctl: "+name)
		if rc == 0 || !reported {
			return fmt.Sprintf("exit status %d, want a failure with code %s", rc, name)
		}
		// grpcurl exits with 64 plus the code when it runs alone (not inside a pipeline or an
		// assignment, whose status is another command's).
		if strings.HasPrefix(c.text, "grpcurl ") && rc != 64+int(c.expect) {
			return fmt.Sprintf("grpcurl exit status %d, want %d (64 + %s)", rc, 64+int(c.expect), name)
		}
	}
	return ""
}

// checkEveryRPCHasAnExample fails the test for an RPC of TokenService or AdminService that no
// README grpcurl example calls.
func checkEveryRPCHasAnExample(t *testing.T, cmds []readmeCommand) {
	t.Helper()
	var all strings.Builder
	for _, c := range cmds {
		if c.grpcurl() {
			all.WriteString(c.text + "\n")
		}
	}
	for _, sd := range []grpc.ServiceDesc{tokenauthorityv1.TokenService_ServiceDesc, tokenauthorityv1.AdminService_ServiceDesc} {
		for _, m := range methodNames(sd) {
			if !regexp.MustCompile(regexp.QuoteMeta(sd.ServiceName+"/"+m) + `\b`).MatchString(all.String()) {
				t.Errorf("README.md has no grpcurl example of %s/%s", sd.ServiceName, m)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// methodNames returns the names of a service's RPCs.
func methodNames(sd grpc.ServiceDesc) []string {
	var names []string
	for _, m := range sd.Methods {
		names = append(names, m.MethodName)
	}
	for _, s := range sd.Streams {
		names = append(names, s.StreamName)
	}
	return names
}

// buildTokenctl builds cmd/tokenctl into path.
func buildTokenctl(t *testing.T, path string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building tokenctl: %v", err)
	}
	cmd := exec.Command(goTool, "build", "-o", path, "./cmd/tokenctl")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tokenctl: %v\n%s", err, out)
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// readmeEnv is the environment of the examples: the test's, without tokenctl settings that would
// change what the examples do, with grpcurl first on PATH and tokenctl pointed at the server.
func readmeEnv(toolDir, addr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TOKENCTL_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+toolDir+string(os.PathListSeparator)+os.Getenv("PATH"), "TOKENCTL_ADDR="+addr)
}
