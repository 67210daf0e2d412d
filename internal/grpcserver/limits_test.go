package grpcserver

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// openHealthWatch opens a Health/Watch stream on r and returns it once its first answer (or its
// error) has arrived.
func openHealthWatch(ctx context.Context, r *replica) (healthpb.Health_WatchClient, error) {
	stream, err := healthpb.NewHealthClient(r.conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); err != nil {
		return nil, err
	}
	return stream, nil
}

// TestPublicStreamsAreCapped checks that the streams that need no credential are bounded on the
// server as a whole, while authenticated streams are not counted against that bound.
func TestPublicStreamsAreCapped(t *testing.T) {
	b := newBackend()
	r := b.replica(t, func(c *Config) { c.MaxPublicStreams = 3 })
	key := newTenant(t, r, "acme")
	var cancels []context.CancelFunc
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		cancels = append(cancels, cancel)
		if _, err := openHealthWatch(ctx, r); err != nil {
			t.Fatalf("health watch %d: %v", i, err)
		}
	}
	_, err := openHealthWatch(context.Background(), r)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a health watch beyond the limit: %v, want ResourceExhausted", err)
	}
	if _, err := listServices(t, r, false, ""); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("public reflection beyond the limit: %v, want ResourceExhausted", err)
	}
	// An authenticated stream is bounded by its key and tenant, not by this limit.
	openWatch(t, r, key)

	// A closed stream frees its place once the server has seen it end.
	cancels[0]()
	deadline := time.Now().Add(waitLimit)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		_, err := openHealthWatch(ctx, r)
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a health watch after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
