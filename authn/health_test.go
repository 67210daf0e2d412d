package authn_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthority/tokenauthority/authn"
)

type fakeLiveness struct{ live atomic.Bool }

func (f *fakeLiveness) Live() bool { return f.live.Load() }

func TestKeepHealth(t *testing.T) {
	hs := health.NewServer()
	v := &fakeLiveness{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		authn.KeepHealth(ctx, hs, v, time.Millisecond, "orders.v1.OrderService")
	}()
	status := func(service string) healthpb.HealthCheckResponse_ServingStatus {
		resp, err := hs.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	for _, want := range []bool{false, true, false} {
		v.live.Store(want)
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if want {
			st = healthpb.HealthCheckResponse_SERVING
		}
		eventually(t, "health "+st.String(), func() bool {
			return status("") == st && status("orders.v1.OrderService") == st
		})
	}
	cancel()
	<-done
}
