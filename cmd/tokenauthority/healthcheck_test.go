package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startHealthServer serves the standard gRPC health service on a loopback port, with the whole
// server reported as st, and returns its address.
func startHealthServer(t *testing.T, st healthpb.HealthCheckResponse_ServingStatus) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", st)
	hs.SetServingStatus("tokenauthority.v1.TokenService", st)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestHealthcheckExitCodes(t *testing.T) {
	serving := startHealthServer(t, healthpb.HealthCheckResponse_SERVING)
	notServing := startHealthServer(t, healthpb.HealthCheckResponse_NOT_SERVING)
	nothing := freeAddr(t) // closed again: nothing listens there
	_, servingPort, _ := net.SplitHostPort(serving)

	tests := []struct {
		name    string
		args    []string
		grpcEnv string // TOKENAUTHORITY_GRPC_ADDR
		want    int
		wantErr string // part of what is reported on stderr
	}{
		{name: "serving", args: []string{"-addr", serving}, want: 0},
		{name: "serving service", args: []string{"-addr", serving, "-service", "tokenauthority.v1.TokenService"}, want: 0},
		{name: "not serving", args: []string{"-addr", notServing}, want: 1, wantErr: "NOT_SERVING"},
		{name: "unknown service", args: []string{"-addr", serving, "-service", "no.such.Service"}, want: 1, wantErr: "NotFound"},
		{name: "nothing listening", args: []string{"-addr", nothing, "-timeout", "300ms"}, want: 1, wantErr: nothing},
		{name: "address from the environment", grpcEnv: serving, want: 0},
		{name: "wildcard listen address", grpcEnv: "0.0.0.0:" + servingPort, want: 0},
		{name: "wildcard host omitted", grpcEnv: ":" + servingPort, want: 0},
		{name: "flag wins over the environment", args: []string{"-addr", serving}, grpcEnv: nothing, want: 0},
		{name: "environment not listening", args: []string{"-timeout", "300ms"}, grpcEnv: nothing, want: 1, wantErr: nothing},
		{name: "invalid environment", grpcEnv: "no-port", want: 1, wantErr: "TOKENAUTHORITY_GRPC_ADDR"},
		{name: "unexpected argument", args: []string{"extra"}, want: 1, wantErr: "unexpected argument"},
		{name: "bad timeout", args: []string{"-timeout", "0s"}, want: 1, wantErr: "-timeout"},
		{name: "help", args: []string{"-h"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(grpcAddrEnv, tt.grpcEnv)
			var stderr bytes.Buffer
			start := time.Now()
			got := exitCode(run(context.Background(), append([]string{"healthcheck"}, tt.args...)), &stderr)
			if got != tt.want {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantErr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the check took %v", d)
			}
		})
	}
}

func TestHealthcheckUsage(t *testing.T) {
	var usage bytes.Buffer
	err := healthcheck(context.Background(), []string{"-h"}, nil, &usage)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-addr", "-service", "-timeout", grpcAddrEnv, "SERVING"} {
		if !strings.Contains(usage.String(), want) {
			t.Errorf("usage does not mention %s:\n%s", want, usage.String())
		}
	}
}

func TestProbeAddr(t *testing.T) {
	tests := []struct {
		listen, want string
		wantErr      bool
	}{
		{listen: "", want: "127.0.0.1:50051"},
		{listen: ":50051", want: "127.0.0.1:50051"},
		{listen: "0.0.0.0:6000", want: "127.0.0.1:6000"},
		{listen: "[::]:6000", want: "127.0.0.1:6000"},
		{listen: "127.0.0.1:6000", want: "127.0.0.1:6000"},
		{listen: "10.1.2.3:6000", want: "10.1.2.3:6000"},
		{listen: "[::1]:6000", want: "[::1]:6000"},
		{listen: "localhost:6000", want: "localhost:6000"},
		{listen: "50051", wantErr: true},
	}
	for _, tt := range tests {
		got, err := probeAddr(tt.listen)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("probeAddr(%q) = %q, %v; want %q, error %v", tt.listen, got, err, tt.want, tt.wantErr)
		}
	}
}
