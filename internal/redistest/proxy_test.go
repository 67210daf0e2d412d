package redistest_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// ping is the RESP encoding of PING.
const ping = "*1\r\n$4\r\nPING\r\n"

// dial opens a plain connection to the proxy, closed when the test ends.
func dial(t *testing.T, p *redistest.Proxy) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// rawPing sends PING on conn and reads one line, waiting at most timeout.
func rawPing(conn net.Conn, timeout time.Duration) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, ping); err != nil {
		return "", err
	}
	return readLine(conn)
}

func readLine(conn net.Conn) (string, error) {
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// waitConns polls until the proxy has want open connections.
func waitConns(t *testing.T, p *redistest.Proxy, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Conns() != want {
		if time.Now().After(deadline) {
			t.Fatalf("proxy has %d connections, want %d", p.Conns(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProxyForwards(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || p.Addr() == srv.Addr() {
		t.Fatalf("Addr() = %q, want its own loopback port", p.Addr())
	}
	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", strings.Repeat("v", 1<<20), 0).Err(); err != nil {
		t.Fatalf("SET of 1 MiB through the proxy: %v", err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || len(v) != 1<<20 {
		t.Fatalf("GET through the proxy: %d bytes, %v", len(v), err)
	}
	if pong, err := rawPing(dial(t, p), 5*time.Second); err != nil || pong != "+PONG" {
		t.Fatalf("PING: %q, %v", pong, err)
	}
}

func TestProxyLatency(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	conn := dial(t, p)
	const latency = 100 * time.Millisecond
	p.SetLatency(latency)
	start := time.Now()
	if pong, err := rawPing(conn, 10*time.Second); err != nil || pong != "+PONG" {
		t.Fatalf("PING: %q, %v", pong, err)
	}
	// Latency is a floor, so this bound holds however loaded the machine is.
	if rtt := time.Since(start); rtt < 2*latency {
		t.Fatalf("round trip %v with latency %v each way, want at least %v", rtt, latency, 2*latency)
	} else {
		t.Logf("round trip with %v each way: %v", latency, rtt)
	}
	p.SetLatency(0)
	start = time.Now()
	if _, err := rawPing(conn, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("round trip without latency: %v", time.Since(start))
}

// TestProxyLatencyChangeWakesWaiters checks that removing the latency releases data that waits.
func TestProxyLatencyChangeWakesWaiters(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	conn := dial(t, p)
	p.SetLatency(time.Hour)
	errc := make(chan error, 1)
	go func() {
		_, err := rawPing(conn, 30*time.Second)
		errc <- err
	}()
	// The PING must be waiting in the proxy when the latency goes, or the test proves nothing.
	deadline := time.Now().Add(10 * time.Second)
	for p.Held() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the PING never reached the proxy")
		}
		time.Sleep(time.Millisecond)
	}
	p.SetLatency(0)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("PING still held after the latency was removed")
	}
}

func TestProxyStall(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	// A pooled connection and a new one both stay open and silent.
	err := c.Ping(ctx).Err()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING of a stalled proxy: %v, want a timeout", err)
	}
	held := dial(t, p)
	if _, err := rawPing(held, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("PING on a new connection to a stalled proxy: %v, want a timeout", err)
	}
	p.Resume()
	// What was held is delivered.
	if err := held.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if pong, err := readLine(held); err != nil || pong != "+PONG" {
		t.Fatalf("held PING after Resume: %q, %v", pong, err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume: %v", err)
	}
}

func TestProxyCut(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	conn := dial(t, p)
	if _, err := rawPing(conn, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitConns(t, p, 1)
	p.Cut()
	if _, err := rawPing(conn, 5*time.Second); err == nil {
		t.Fatal("PING on a cut connection succeeded")
	}
	waitConns(t, p, 0)
	if pong, err := rawPing(dial(t, p), 5*time.Second); err != nil || pong != "+PONG" {
		t.Fatalf("PING on a new connection after Cut: %q, %v", pong, err)
	}
	// A client with a pool gets past the cut by itself.
	c := redis.NewClient(&redis.Options{Addr: p.Addr()})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("pooled client after Cut: %v", err)
	}
}

func TestProxyRefuse(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	kept := dial(t, p)
	if _, err := rawPing(kept, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Refuse()
	if _, err := rawPing(dial(t, p), 5*time.Second); err == nil {
		t.Fatal("PING on a refused connection succeeded")
	}
	if _, err := rawPing(kept, 5*time.Second); err != nil {
		t.Fatalf("a connection from before Refuse: %v", err)
	}
	p.Accept()
	if pong, err := rawPing(dial(t, p), 5*time.Second); err != nil || pong != "+PONG" {
		t.Fatalf("PING after Accept: %q, %v", pong, err)
	}
}

// TestProxyUpstreamDown checks that a connection to a proxy whose upstream is down is closed,
// and that the proxy forwards again once the upstream is back.
func TestProxyUpstreamDown(t *testing.T) {
	srv := redistest.Start(t)
	p := redistest.StartProxy(t, srv.Addr())
	srv.Stop(t)
	if _, err := rawPing(dial(t, p), 5*time.Second); err == nil {
		t.Fatal("PING with the upstream down succeeded")
	}
	srv.Restart(t)
	if pong, err := rawPing(dial(t, p), 5*time.Second); err != nil || pong != "+PONG" {
		t.Fatalf("PING after the upstream restarted: %q, %v", pong, err)
	}
}

// TestProxyCleanupWithOpenConnections checks that the proxy's cleanup ends stalled and slow
// connections whose client is still there instead of waiting for them (a hang here fails the test
// by its timeout).
func TestProxyCleanupWithOpenConnections(t *testing.T) {
	srv := redistest.Start(t)
	for _, tt := range []struct {
		name  string
		fault func(p *redistest.Proxy)
	}{
		{"stalled", func(p *redistest.Proxy) { p.Stall() }},
		{"slow", func(p *redistest.Proxy) { p.SetLatency(time.Hour) }},
	} {
		var conn net.Conn
		t.Run(tt.name, func(t *testing.T) {
			p := redistest.StartProxy(t, srv.Addr())
			var err error
			if conn, err = net.DialTimeout("tcp", p.Addr(), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			waitConns(t, p, 1)
			tt.fault(p)
			if _, err := io.WriteString(conn, ping); err != nil {
				t.Fatal(err)
			}
		})
		// The proxy is gone, and the client's connection with it.
		if conn != nil {
			if _, err := readLine(conn); err == nil {
				t.Errorf("%s: the connection outlived the proxy", tt.name)
			}
			_ = conn.Close()
		}
	}
}
