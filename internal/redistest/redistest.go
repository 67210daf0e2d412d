package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// startAttempts bounds how often Start picks a new port when another process took the one
	// it chose between probing and binding.
	startAttempts = 5
	// readyTimeout bounds how long a starting server may take to answer PING.
	readyTimeout = 10 * time.Second
)

// reserved holds the ports of this process's servers, stopped or not, so that a stopped server's
// port is not handed to another one before it restarts.
var reserved = struct {
	sync.Mutex
	ports map[int]bool
}{ports: make(map[int]bool)}

// Server is a redis-server process owned by one test.
type Server struct {
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *process
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	output *lockedBuffer
}

// Start launches a redis-server on a free port of 127.0.0.1 and registers its shutdown with
// tb.Cleanup. It fails the test when redis-server is not installed or does not come up.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found on PATH (run `make test`, which installs it): %v", err)
		return nil
	}
	s := &Server{bin: bin, dir: tb.TempDir()}
	var lastErr error
	for range startAttempts {
		port, err := reservePort()
		if err != nil {
			tb.Fatalf("redistest: pick a free port: %v", err)
		}
		s.port = port
		if lastErr = s.launch(); lastErr == nil {
			tb.Cleanup(func() {
				s.kill()
				releasePort(port)
			})
			return s
		}
		releasePort(port)
	}
	tb.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// URL returns the server's address as a redis:// URL selecting database 0.
func (s *Server) URL() string {
	return "redis://" + s.Addr() + "/0"
}

// Client returns a new client of the server, closed when the test ends.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server and waits for it to exit. The port stays reserved for Restart: no other
// test server is started on it.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.kill()
}

// Restart starts the server again on the same port, with no data. The server must be stopped.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	running := s.proc != nil
	s.mu.Unlock()
	if running {
		tb.Fatalf("redistest: Restart of a running server")
	}
	var err error
	for range startAttempts {
		if err = s.launch(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("redistest: restart redis-server on port %d: %v", s.port, err)
}

// CommandStats returns how often each command was called since the server started or since the
// last ResetStats, from INFO commandstats, keyed by lower-case command name ("evalsha",
// "client|setinfo"). Commands run by scripts are counted too, and so is the harness's own
// CONFIG RESETSTAT ("config|resetstat"); the harness sends nothing else (it speaks RESP on a
// plain connection, without a client's handshake).
func (s *Server) CommandStats(tb testing.TB) map[string]int64 {
	tb.Helper()
	info, err := roundTrip(s.Addr(), 5*time.Second, "INFO", "commandstats")
	if err != nil {
		tb.Fatalf("redistest: INFO commandstats: %v", err)
	}
	stats, err := parseCommandStats(info)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	return stats
}

// CPUSeconds returns the CPU time (user and system) the server has used since it started, from
// INFO cpu: what a measurement charges to Redis.
func (s *Server) CPUSeconds(tb testing.TB) float64 {
	tb.Helper()
	info, err := roundTrip(s.Addr(), 5*time.Second, "INFO", "cpu")
	if err != nil {
		tb.Fatalf("redistest: INFO cpu: %v", err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (name != "used_cpu_sys" && name != "used_cpu_user") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			tb.Fatalf("redistest: INFO cpu: %s: %v", line, err)
		}
		total += f
	}
	return total
}

// ResetStats resets the server's statistics (CONFIG RESETSTAT).
func (s *Server) ResetStats(tb testing.TB) {
	tb.Helper()
	if _, err := roundTrip(s.Addr(), 5*time.Second, "CONFIG", "RESETSTAT"); err != nil {
		tb.Fatalf("redistest: CONFIG RESETSTAT: %v", err)
	}
}

// roundTrip sends one command to addr on a new connection and returns its reply, which must be a
// simple string, a bulk string or an error. A plain connection sends nothing else (a client would
// add its handshake), and fails at once when nothing listens (a client's pool would back off).
func roundTrip(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&req, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, req.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "-"):
		return "", fmt.Errorf("redis error: %s", line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(r, body); err != nil {
			return "", err
		}
		return string(body[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// launch starts redis-server on s.port and waits until it answers PING.
func (s *Server) launch() error {
	p, err := startProcess(s.bin, s.Addr(), []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// startProcess runs bin with argv, its output kept for error reports, and waits until the server
// answers PING at addr.
func startProcess(bin, addr string, argv []string) (*process, error) {
	out := &lockedBuffer{}
	//nolint:gosec // G204: the binary is redis-server from PATH; every argument is the harness's own.
	cmd := exec.Command(bin, argv...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{}), output: out}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(addr, p); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// kill stops the running process, if any, and waits for it to exit.
func (s *Server) kill() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitReady polls addr with PING until it answers, the process exits or readyTimeout passes.
func waitReady(addr string, p *process) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server exited: %s", strings.TrimSpace(p.output.String()))
		default:
		}
		reply, err := roundTrip(addr, 200*time.Millisecond, "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected answer %q", reply)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v: %w", readyTimeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reservePort returns a port of 127.0.0.1 that was free a moment ago and that no other server of
// this process holds.
func reservePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		reserved.Lock()
		taken := reserved.ports[port]
		reserved.ports[port] = true
		reserved.Unlock()
		if !taken {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}

// releasePort lets another server use port.
func releasePort(port int) {
	reserved.Lock()
	delete(reserved.ports, port)
	reserved.Unlock()
}

// parseCommandStats parses the output of INFO commandstats.
func parseCommandStats(info string) (map[string]int64, error) {
	stats := make(map[string]int64)
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			return nil, fmt.Errorf("malformed commandstats line %q", line)
		}
		var found bool
		for _, f := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(f, "=")
			if k != "calls" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse commandstats line %q: %w", line, err)
			}
			stats[strings.ToLower(name)] = n
			found = true
		}
		if !found {
			return nil, fmt.Errorf("commandstats line %q has no calls field", line)
		}
	}
	return stats, sc.Err()
}

// lockedBuffer collects a process's output; the process writes while a test may read.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
