package grpcserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// countingListener records, for each accepted connection, how much the server has read from it
// and whether the server has closed it: what an attack test waits for before it measures.
type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[string]*countingConn // by the client's address
}

type countingConn struct {
	net.Conn
	read   atomic.Int64
	closed atomic.Bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &countingConn{Conn: conn}
	l.mu.Lock()
	l.conns[conn.RemoteAddr().String()] = c
	l.mu.Unlock()
	return c, nil
}

// serverSide returns the server's end of the client connection whose local address is addr.
func (l *countingListener) serverSide(addr net.Addr) *countingConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[addr.String()]
}

// heapInUse returns the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// attackServer serves a replica with its default limits on a loopback TCP port.
func attackServer(t *testing.T) (*countingListener, *replica) {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &countingListener{Listener: tcp, conns: map[string]*countingConn{}}
	r := newBackend().serve(t, lis, nil)
	conn, err := grpc.NewClient(tcp.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r.conn = conn
	return lis, r
}

// hpackLiteral appends a header field as HPACK's "literal without indexing, new name", its
// strings raw (not Huffman-coded), as an attacker sends it.
func hpackLiteral(b []byte, name, value string) []byte {
	b = append(b, 0)
	b = hpackString(b, name)
	return hpackString(b, value)
}

func hpackString(b []byte, s string) []byte {
	// A length with a 7-bit prefix (RFC 7541, 5.1), the Huffman bit clear.
	n := uint64(len(s))
	if n < 127 {
		b = append(b, byte(n))
	} else {
		b = append(b, 127)
		for n -= 127; n >= 128; n >>= 7 {
			b = append(b, byte(n%128+128))
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}

// hugeHeaderBlock is the header block of a call to ListPublicKeys whose x-api-key is valueLen
// bytes long.
func hugeHeaderBlock(valueLen int) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range []hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: tokenauthorityv1.TokenService_ListPublicKeys_FullMethodName}, {Name: ":authority", Value: "attack"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	} {
		_ = enc.WriteField(f)
	}
	return hpackLiteral(hb.Bytes(), APIKeyHeader, "tak_"+strings.Repeat("A", valueLen-4))
}

// sendHeaderBlock opens an HTTP/2 connection to addr, as a client that ignores the server's
// settings, and sends block as the headers of stream 1 in frames of 16 KiB, all but the end of
// the block: the server, unless it refuses the block first, holds what it has read while it
// waits for the rest. It returns the connection, which the caller closes, and how much was sent;
// an error means the server closed the connection.
func sendHeaderBlock(addr string, block []byte) (net.Conn, int64, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	counted := &countingWriter{w: conn}
	if _, err := counted.Write([]byte(http2.ClientPreface)); err != nil {
		return conn, counted.n, err
	}
	fr := http2.NewFramer(counted, conn)
	if err := fr.WriteSettings(); err != nil {
		return conn, counted.n, err
	}
	const frag = 16 << 10
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:frag]}); err != nil {
		return conn, counted.n, err
	}
	for off := frag; off < len(block)-1; off += frag {
		end := min(off+frag, len(block)-1)
		if err := fr.WriteContinuation(1, false, block[off:end]); err != nil {
			return conn, counted.n, err
		}
	}
	return conn, counted.n, nil
}

type countingWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// TestMemoryStaysBoundedUnderHeaderFlood reproduces the unauthenticated attack of issue 20: 16
// clients each send a 15 MB x-api-key. The server must refuse each header before holding it
// (grpc-go's default limit, 16 MiB, let it take more than a gigabyte), and a grpc-go client must
// get a status that names the limit.
func TestMemoryStaysBoundedUnderHeaderFlood(t *testing.T) {
	const (
		clients  = 16
		valueLen = 15 << 20
		// bound is generous: with the limit the server holds a few KiB per connection; without
		// it, 16 x 15 MB.
		bound = 32 << 20
	)
	lis, r := attackServer(t)

	// A well-behaved client fails before sending, with the limit in the message.
	_, err := tokenauthorityv1.NewTokenServiceClient(r.conn).ListPublicKeys(
		withAPIKey(context.Background(), "tak_"+strings.Repeat("A", valueLen)), &tokenauthorityv1.ListPublicKeysRequest{})
	if status.Code(err) == codes.OK || !strings.Contains(status.Convert(err).Message(), fmt.Sprint(maxHeaderListSize)) {
		t.Errorf("a call with a 15 MB x-api-key: %v, want a status naming the %d-byte limit", err, maxHeaderListSize)
	}

	block := hugeHeaderBlock(valueLen)
	before := heapInUse()
	type result struct {
		conn net.Conn
		sent int64
		err  error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			conn, sent, err := sendHeaderBlock(lis.Addr().String(), block)
			results[i] = result{conn, sent, err}
		})
	}
	wg.Wait()
	refused := 0
	for i, res := range results {
		if res.conn == nil {
			t.Fatalf("client %d: %v", i, res.err)
		}
		t.Cleanup(func() { _ = res.conn.Close() })
		server := lis.serverSide(res.conn.LocalAddr())
		// Measure once the server has read all that was sent, or has refused it.
		deadline := time.Now().Add(waitLimit)
		for server == nil || !server.closed.Load() && server.read.Load() < res.sent {
			if time.Now().After(deadline) {
				t.Fatalf("client %d: the server neither read its %d bytes nor closed the connection", i, res.sent)
			}
			time.Sleep(10 * time.Millisecond)
			server = lis.serverSide(res.conn.LocalAddr())
		}
		if server.closed.Load() {
			refused++
		}
	}
	grown := heapInUse() - before
	runtime.KeepAlive(block) // part of the baseline
	t.Logf("heap grew by %.1f MiB under %d unfinished %d MB headers; %d connections closed by the server",
		float64(grown)/(1<<20), clients, valueLen>>20, refused)
	if grown > bound {
		t.Errorf("the heap grew by %d MiB, more than %d MiB", grown>>20, bound>>20)
	}
	if refused != clients {
		t.Errorf("the server closed %d of %d connections that sent an oversized header", refused, clients)
	}
}

// TestMemoryStaysBoundedUnderHealthWatchFlood reproduces the other unauthenticated attack of
// issue 20: 20,000 Health/Watch streams (+260 MB before the limit). Beyond the server's limit of
// public streams, each is refused with ResourceExhausted.
func TestMemoryStaysBoundedUnderHealthWatchFlood(t *testing.T) {
	const (
		conns   = 80
		perConn = 250 // below the limit of streams per connection, which would queue the rest
		// bound is generous: DefaultMaxPublicStreams streams cost both ends about 25 MiB; without
		// the limit, 20,000 cost more than 400 MiB.
		bound = 64 << 20
	)
	lis, _ := attackServer(t)
	clients := make([]*grpc.ClientConn, conns)
	for i := range clients {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		cc.Connect()
		clients[i] = cc
	}
	// The connections are made before the measure: the limit is on streams.
	for _, cc := range clients {
		if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	before := heapInUse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var open, exhausted atomic.Int64
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for _, cc := range clients {
		wg.Go(func() {
			r := &replica{conn: cc}
			for range perConn {
				_, err := openHealthWatch(ctx, r)
				switch status.Code(err) {
				case codes.OK:
					open.Add(1)
				case codes.ResourceExhausted:
					exhausted.Add(1)
				default:
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(func() (all []error) {
		for err := range errs {
			all = append(all, err)
		}
		return all
	}()...); err != nil {
		t.Fatal(err)
	}
	grown := heapInUse() - before
	t.Logf("heap grew by %.1f MiB with %d Health/Watch streams open, %d refused", float64(grown)/(1<<20), open.Load(), exhausted.Load())
	if grown > bound {
		t.Errorf("the heap grew by %d MiB, more than %d MiB", grown>>20, bound>>20)
	}
	if open.Load() != DefaultMaxPublicStreams {
		t.Errorf("%d public streams open, want the limit, %d", open.Load(), DefaultMaxPublicStreams)
	}
}
