package redistest

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// proxyQueue bounds the chunks read but not yet forwarded in one direction of one connection:
// a stalled or slowed connection stops reading from its source once that many are waiting.
const proxyQueue = 64

// proxyDialTimeout bounds the proxy's dial of the upstream server.
const proxyDialTimeout = 5 * time.Second

// Proxy is a TCP proxy on a loopback port in front of one upstream address, for fault tests: it
// can delay, stall, cut and refuse connections. Its methods are safe for concurrent use.
//
// Faults act the way a network does, not the way a server does: a stalled connection stays
// open and keeps what both sides send, which is delivered on Resume unless the connection was cut
// meanwhile; a client that gives up on a stalled connection and closes it still has its requests
// delivered on Resume, as a FIN stuck behind them would be.
type Proxy struct {
	tb       testing.TB
	upstream string
	ln       net.Listener
	wg       sync.WaitGroup // the accept loop and every connection's goroutines

	mu       sync.Mutex
	latency  time.Duration
	stalled  bool
	refusing bool
	closed   bool
	// changed is closed and replaced whenever latency or stalled changes, so that forwarders
	// waiting on the old values look again.
	changed chan struct{}
	conns   map[*proxyConn]struct{}
	// held counts the chunks waiting for their latency or a stall to pass (Held).
	held int
}

// proxyConn is one client connection and its upstream connection.
type proxyConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{} // closed when the pair is closed
}

// chunk is what one read returned, and when.
type chunk struct {
	data []byte
	at   time.Time
}

// StartProxy starts a proxy to upstreamAddr on a free port of 127.0.0.1 and registers its
// shutdown with tb.Cleanup. The upstream is dialled for each accepted connection.
func StartProxy(tb testing.TB, upstreamAddr string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{
		tb:       tb,
		upstream: upstreamAddr,
		ln:       ln,
		changed:  make(chan struct{}),
		conns:    make(map[*proxyConn]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns the proxy's address as a redis:// URL selecting database 0.
func (p *Proxy) URL() string { return "redis://" + p.Addr() + "/0" }

// SetLatency delays every chunk of data, in both directions, by d from the moment the proxy read
// it: a request and its reply take at least 2d more. Data already waiting follows the new value.
func (p *Proxy) SetLatency(d time.Duration) {
	p.update(func() { p.latency = d })
}

// Stall stops forwarding on every connection, current and new, while keeping them open: the
// peers see no error, only silence. New connections are still accepted.
func (p *Proxy) Stall() { p.update(func() { p.stalled = true }) }

// Resume ends a Stall: what was held is forwarded.
func (p *Proxy) Resume() { p.update(func() { p.stalled = false }) }

// Cut closes every current connection, both sides, dropping what they held. The proxy keeps
// accepting new connections.
func (p *Proxy) Cut() {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Refuse makes the proxy close every new connection as soon as it accepts it, as a server that
// drops connections would (a client sees its connection reset or closed, not a dial error).
// Current connections are kept.
func (p *Proxy) Refuse() { p.update(func() { p.refusing = true }) }

// Accept ends a Refuse.
func (p *Proxy) Accept() { p.update(func() { p.refusing = false }) }

// Conns returns the number of open connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Held returns the number of chunks of data that the proxy holds back for their latency or a
// stall: a test can wait until a request is held rather than sleep for the time it takes to get
// there.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// update changes the settings under the lock and wakes the forwarders.
func (p *Proxy) update(change func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change()
	close(p.changed)
	p.changed = make(chan struct{})
}

// settings returns the current latency and stall, and the channel closed on their next change.
func (p *Proxy) settings() (latency time.Duration, stalled bool, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency, p.stalled, p.changed
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.tb.Logf("redistest: proxy accept: %v", err)
			}
			return
		}
		p.mu.Lock()
		refuse := p.refusing || p.closed
		p.mu.Unlock()
		if refuse {
			_ = client.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve dials the upstream for client and forwards both ways until either side ends or the pair
// is cut.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.upstream, proxyDialTimeout)
	if err != nil {
		// The upstream is down: the client sees its connection closed.
		_ = client.Close()
		return
	}
	c := &proxyConn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(c, client, server) }()
	go func() { defer wg.Done(); p.pipe(c, server, client) }()
	wg.Wait()
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// pipe forwards src to dst: one goroutine reads and stamps chunks, this one writes each when its
// latency has passed and the proxy is not stalled. When src ends, what was read is still
// delivered (subject to latency and stalls), then the whole pair is closed.
func (p *Proxy) pipe(c *proxyConn, src, dst net.Conn) {
	queue := make(chan chunk, proxyQueue)
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case queue <- chunk{data: buf[:n], at: time.Now()}:
				case <-c.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		c.close() // ends a read in progress
		<-read
	}()
	for ch := range queue {
		if !p.hold(c, ch.at) {
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			return
		}
	}
}

// hold waits until a chunk read at `at` may be forwarded; false when the pair closed meanwhile.
func (p *Proxy) hold(c *proxyConn, at time.Time) bool {
	counted := false
	defer func() {
		if counted {
			p.mu.Lock()
			p.held--
			p.mu.Unlock()
		}
	}()
	for {
		latency, stalled, changed := p.settings()
		wait := time.Until(at.Add(latency))
		if !stalled && wait <= 0 {
			return true
		}
		if !counted {
			counted = true
			p.mu.Lock()
			p.held++
			p.mu.Unlock()
		}
		if !c.sleep(wait, stalled, changed) {
			return false
		}
	}
}

// sleep waits for wait to pass (forever when stalled) or the settings to change; false when the
// pair closed meanwhile.
func (c *proxyConn) sleep(wait time.Duration, stalled bool, changed <-chan struct{}) bool {
	var timeout <-chan time.Time
	if !stalled {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-timeout:
	case <-changed:
	case <-c.done:
		return false
	}
	return true
}

// close closes both connections once; the reader goroutines then end with an error.
func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// close stops accepting, closes every connection and waits for every goroutine to end.
func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}
