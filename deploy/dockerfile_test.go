package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// parseDockerfile returns the instructions of a Dockerfile, without comments and parser
// directives.
func parseDockerfile(t *testing.T, file string) []instruction {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// envPair matches one KEY=value of an ENV instruction.
var envPair = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)=(\S*)`)

func TestDockerfile(t *testing.T) {
	known := knownVariables(t)
	ins := parseDockerfile(t, "Dockerfile")
	var froms []int
	for i, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, i)
		}
	}
	if len(froms) != 2 {
		t.Fatalf("want a build stage and a final stage, got %d FROM", len(froms))
	}
	build, final := ins[froms[0]:froms[1]], ins[froms[1]:]
	all := func(stage []instruction, cmd string) string {
		var parts []string
		for _, in := range stage {
			if in.cmd == cmd {
				parts = append(parts, in.args)
			}
		}
		return strings.Join(parts, "\n")
	}

	if from := build[0].args; !strings.Contains(from, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s, want golang:${GO_VERSION}", from)
	}
	if arg := all(ins[:froms[0]], "ARG"); !strings.Contains(arg, "GO_VERSION=1.26") {
		t.Errorf("ARG GO_VERSION is not 1.26: %q", arg)
	}
	run := all(build, "RUN")
	for _, want := range []string{
		"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build",
		"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/tokenauthority", "./cmd/tokenctl",
	} {
		if !strings.Contains(run, want) {
			t.Errorf("the build stage does not run with %s", want)
		}
	}

	if from := final[0].args; from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", from)
	}
	if user := all(final, "USER"); user != "65532:65532" && user != "65532" {
		t.Errorf("final stage USER %q, want 65532", user)
	}
	if expose := strings.Fields(all(final, "EXPOSE")); !slices.Contains(expose, "50051") || !slices.Contains(expose, "8081") {
		t.Errorf("EXPOSE %v, want 50051 and 8081", expose)
	}
	env := map[string]string{}
	for _, m := range envPair.FindAllStringSubmatch(all(final, "ENV"), -1) {
		env[m[1]] = m[2]
		if known != nil && strings.HasPrefix(m[1], varPrefix) && !known[m[1]] {
			t.Errorf("ENV %s is not a variable of the service (misspelt?)", m[1])
		}
	}
	for name, want := range map[string]string{varEnv: "production", varGRPCAddr: "0.0.0.0:50051", varHTTPAddr: "0.0.0.0:8081"} {
		if env[name] != want {
			t.Errorf("ENV %s=%q, want %q", name, env[name], want)
		}
	}
	if v, ok := env[varInsecurePlaintext]; ok {
		t.Errorf("ENV %s=%s: the image must not allow plaintext in production", varInsecurePlaintext, v)
	}
	if hc := all(final, "HEALTHCHECK"); !strings.HasSuffix(hc, `CMD ["/tokenauthority", "healthcheck"]`) {
		t.Errorf("HEALTHCHECK %q does not run /tokenauthority healthcheck", hc)
	}
	if ep := all(final, "ENTRYPOINT"); ep != `["/tokenauthority"]` {
		t.Errorf("ENTRYPOINT %s, want [\"/tokenauthority\"]", ep)
	}
	if cp := all(final, "COPY"); !strings.Contains(cp, "/out/tokenauthority") || !strings.Contains(cp, "/out/tokenctl") {
		t.Errorf("the final stage does not copy both binaries: %s", cp)
	}
}
