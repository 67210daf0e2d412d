package grpcserver

import (
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// maxHeaderListSize bounds the metadata of a call (HPACK size: each field's name and value plus
// 32 bytes). The largest legitimate metadata is about 18 KiB: an 8 KiB bearer token forwarded in
// authorization (the largest token VerifyToken accepts), W3C baggage (8 KiB at most) and
// tracestate (512 bytes), an API key or master key (1 KiB at most), and gRPC's own fields. 32 KiB
// leaves room for that and more; grpc-go's default, 16 MiB, let 16 unauthenticated clients take
// more than a gigabyte before any check. Beyond the limit grpc-go clients fail before sending
// (Internal, "header list size to send violates the maximum size ... set by server"), and the
// server resets the stream of a client that sends anyway, or closes its connection when the
// excess is large, without buffering it.
const maxHeaderListSize = 32 << 10

// maxConcurrentStreams bounds the streams open at once on one connection. grpc-go clients queue
// calls beyond it rather than fail, and 256 calls in flight on one connection are far more than
// one client needs (the server answers a call in well under a millisecond); it bounds what one
// connection can make the server hold.
const maxConcurrentStreams = 256

// streamWorkers is the number of goroutines kept to serve calls. A call served on a new goroutine
// grows that goroutine's stack, by copying, through the interceptors, the handler and the store
// client: about a tenth of the server's CPU per VerifyToken in a profile. A kept goroutine keeps
// its grown stack for the next call (grpc-go starts it afresh every 65,536 calls). When all are
// busy, grpc-go serves the call on a new goroutine as before, so long streams never starve
// unary calls; but each long-lived stream (WatchRevocations, Health/Watch) that lands on a kept
// goroutine holds it for its life, so a replica with many such streams open serves its unary
// calls on new goroutines again, at the old cost. 64 goroutines hold a few MiB of stack at most.
const streamWorkers = 64

// Defaults of the limits that Config sets.
const (
	// DefaultMaxPublicStreams bounds the streams open at once that need no credential
	// (grpc.health.v1.Health/Watch, and server reflection in development) on one replica. A
	// client that checks health over a stream holds one per connection; each costs the server
	// about 10 KiB.
	DefaultMaxPublicStreams = 1024
	// DefaultMaxConnectionAge is how long a connection lives before the server asks its client
	// to reconnect (grpc-go adds up to 10% of jitter), so that no connection, and no stream on
	// it, lives forever, and clients spread again over the replicas.
	DefaultMaxConnectionAge = 30 * time.Minute
	// DefaultMaxConnectionAgeGrace is how long the calls still open on an aged connection may
	// run; streams still open then (revocation and health watches) end with Unavailable and
	// their clients reconnect (a revocation watcher with its last cursor, losing nothing).
	DefaultMaxConnectionAgeGrace = time.Minute
)

// streamCap bounds the public streams open at once on this server. Unary calls return at once;
// a stream that needs no credential lives as long as its caller wants, with nothing else to
// bound how many one caller opens.
type streamCap struct {
	max      int64
	open     atomic.Int64
	policyOf func(string) (policy, bool)
}

func (c *streamCap) interceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if p, ok := c.policyOf(info.FullMethod); !ok || !p.public {
		return handler(srv, ss)
	}
	if c.open.Add(1) > c.max {
		c.open.Add(-1)
		return status.Error(codes.ResourceExhausted, fmt.Sprintf(
			"this server already has %d unauthenticated streams open, its limit; retry later, or use Health/Check", c.max))
	}
	defer c.open.Add(-1)
	return handler(srv, ss)
}
