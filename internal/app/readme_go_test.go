package app

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goBlock matches a fenced Go code block of a markdown file.
var goBlock = regexp.MustCompile("(?ms)^```go\n(.*?)^```")

// snippetPrelude is what every Go block of the READMEs may use: these packages. Each block is the
// body of a function whose parameters are the free variables its document's prose defines
// (snippetParams).
const snippetPrelude = `package readmesnippets

import (
	"context"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthority/tokenauthority/authn"
	ordersv1 "github.com/tokenauthority/tokenauthority/gen/demo/orders/v1"
)

var (
	_ = os.Getenv
	_ = time.Second
	_ = insecure.NewCredentials
	_ = health.NewServer
	_ = healthpb.RegisterHealthServer
	_ = ordersv1.NewOrderServiceClient
)
`

// TestREADMEGoSnippetsCompile type-checks every Go block of README.md and the demo's README as the
// body of a function, so that code a reader copies compiles against today's API.
func TestREADMEGoSnippetsCompile(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	src.WriteString(snippetPrelude)
	n := 0
	snippetParams := map[string]string{
		"README.md":                 "ctx context.Context, lis net.Listener",
		"cmd/demo-orders/README.md": "ctx context.Context, conn *grpc.ClientConn, apiKey, issuer string, policy authn.Policy, lis net.Listener",
	}
	for _, doc := range []string{"README.md", "cmd/demo-orders/README.md"} {
		md, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goBlock.FindAllSubmatch(md, -1) {
			n++
			fmt.Fprintf(&src, "\n// %s, Go block %d.\nfunc snippet%d(%s) error {\n%s}\n", doc, n, n, snippetParams[doc], m[1])
		}
	}
	if n < 3 {
		t.Fatalf("found %d Go blocks in the READMEs, want at least 3", n)
	}
	// Inside the module, so that its packages resolve; a leading dot keeps ./... from seeing it.
	dir, err := os.MkdirTemp(root, ".readme-snippets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "snippets.go"), []byte(src.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "vet", "./"+filepath.Base(dir))
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the READMEs' Go blocks do not compile: %v\n%s\n--- source ---\n%s", err, out, src.String())
	}
}
