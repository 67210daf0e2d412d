package redistest

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// settleTimeout bounds how long a cluster or a Sentinel set-up may take to agree on its state,
	// and how long a failover may take. Generous: the machine running the tests may be loaded, and
	// a Sentinel election that splits its votes is only retried after twice the failover timeout.
	settleTimeout = 90 * time.Second
	// pollInterval is the pause between two looks at a converging state.
	pollInterval = 50 * time.Millisecond
)

// node is a redis-server process run with arguments of the harness's choosing: a cluster node, a
// Sentinel-managed server or a Sentinel itself. Server remains the plain standalone case.
type node struct {
	bin  string
	dir  string
	port int
	// extra are further reserved ports the process binds (a cluster node's bus port).
	extra []int

	mu   sync.Mutex
	proc *process
}

// argsFunc returns the command line of a node listening on port (and extra ports) with its files
// in dir. It may write files into dir (a Sentinel's configuration).
type argsFunc func(port int, extra []int, dir string) ([]string, error)

// startNode reserves 1+extraPorts free loopback ports, launches redis-server with the arguments
// that args returns, waits until it answers PING, and registers its shutdown with tb.Cleanup. Like
// Start, it picks new ports when another process took the ones it chose.
func startNode(tb testing.TB, extraPorts int, args argsFunc) *node {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found on PATH (run `make test`, which installs it): %v", err)
		return nil
	}
	n := &node{bin: bin, dir: tb.TempDir()}
	var lastErr error
	for range startAttempts {
		ports := make([]int, 0, 1+extraPorts)
		for range 1 + extraPorts {
			p, err := reservePort()
			if err != nil {
				releasePorts(ports)
				tb.Fatalf("redistest: pick a free port: %v", err)
			}
			ports = append(ports, p)
		}
		n.port, n.extra = ports[0], ports[1:]
		argv, err := args(n.port, n.extra, n.dir)
		if err != nil {
			releasePorts(ports)
			tb.Fatalf("redistest: %v", err)
		}
		if lastErr = n.launch(argv); lastErr == nil {
			tb.Cleanup(func() {
				n.kill()
				releasePorts(ports)
			})
			return n
		}
		releasePorts(ports)
	}
	tb.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// serverArgs are the arguments of every data-holding server: loopback only, no persistence, its
// files in dir.
func serverArgs(port int, dir string) []string {
	return []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	}
}

func (n *node) addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
}

// launch starts redis-server with argv and waits until it answers PING.
func (n *node) launch(argv []string) error {
	p, err := startProcess(n.bin, n.addr(), argv)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return nil
}

// kill stops the running process, if any, and waits for it to exit. Its ports stay reserved
// until the test ends.
func (n *node) kill() {
	n.mu.Lock()
	p := n.proc
	n.proc = nil
	n.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// running reports whether the node's process has been started and not killed.
func (n *node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

// output returns what the process has logged, for failure messages.
func (n *node) output() string {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return ""
	}
	return strings.TrimSpace(p.output.String())
}

// releasePorts lets other servers use ports.
func releasePorts(ports []int) {
	for _, p := range ports {
		releasePort(p)
	}
}

// logsOf formats the output of nodes for a failure message.
func logsOf(nodes []*node) string {
	var b strings.Builder
	for _, n := range nodes {
		if out := n.output(); out != "" {
			fmt.Fprintf(&b, "\n--- %s:\n%s", n.addr(), out)
		}
	}
	return b.String()
}

// poll calls check every pollInterval until it returns nil or settleTimeout passes, and then
// returns the last error.
func poll(check func() error) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v: %w", settleTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}
