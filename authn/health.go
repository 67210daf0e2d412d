package authn

import (
	"context"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HealthMethods are the methods of grpc.health.v1.Health, for Policy.Public: probes, load balancers
// and grpcurl call them without a token.
var HealthMethods = []string{
	healthpb.Health_Check_FullMethodName,
	healthpb.Health_Watch_FullMethodName,
	healthpb.Health_List_FullMethodName,
}

// DefaultHealthInterval is how often KeepHealth looks at the verifier when given no interval.
const DefaultHealthInterval = time.Second

// Liveness is what KeepHealth watches: a *Local reports whether its revocation stream is live.
type Liveness interface {
	Live() bool
}

// KeepHealth keeps hs's status of the server ("") and of each named service in step with v until
// ctx ends: NOT_SERVING while v fails every call closed (its revocation stream has been down longer
// than the staleness bound), SERVING otherwise, so that a load balancer sends calls to replicas that
// can check tokens. It looks every interval (DefaultHealthInterval when zero) and returns when ctx
// ends; run it in its own goroutine. A service whose health ignores its verifier reports SERVING
// while every call fails.
func KeepHealth(ctx context.Context, hs *health.Server, v Liveness, interval time.Duration, services ...string) {
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	set := func() {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if v.Live() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		for _, s := range services {
			hs.SetServingStatus(s, st)
		}
	}
	set()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			set()
		}
	}
}
