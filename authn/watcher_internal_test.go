package authn

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// downConn is a connection to an authority that does not answer; it counts the resets of its
// connection backoff.
type downConn struct{ resets atomic.Int32 }

func (*downConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return status.Error(codes.Unavailable, "connection refused")
}

func (*downConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unavailable, "connection refused")
}

func (c *downConn) ResetConnectBackoff() { c.resets.Add(1) }

type nopSink struct{}

func (nopSink) apply(*tokenauthorityv1.WatchRevocationsResponse) {}
func (nopSink) resync()                                          {}
func (nopSink) tick(time.Time)                                   {}

// TestWatcherResetsTheConnectionBackoff: between its own attempts, the watcher makes a
// *grpc.ClientConn dial again at once instead of waiting out the connection's backoff.
func TestWatcherResetsTheConnectionBackoff(t *testing.T) {
	conn := &downConn{}
	cfg := newConfig([]Option{WithReconnectBackoff(time.Millisecond, 2*time.Millisecond)})
	w := startWatcher(conn, "key", nopSink{}, cfg)
	defer w.close()
	deadline := time.Now().Add(10 * time.Second)
	for conn.resets.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d backoff resets after 10s of failed attempts, want 3", conn.resets.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
