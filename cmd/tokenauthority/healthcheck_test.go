package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
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

// startTLSHealthServer is startHealthServer over TLS with the certificate files in dir, asking
// for (and requiring, when require is set) client certificates of ca.
func startTLSHealthServer(t *testing.T, ca *tlstest.CA, dir string, require bool) string {
	t.Helper()
	certFile, keyFile := ca.Server(t).Write(t, dir)
	cfg := tlsfiles.Config{CertFile: certFile, KeyFile: keyFile}
	if require {
		cfg.ClientCAFile, cfg.RequireClientCert = filepath.Join(dir, "ca.pem"), true
		tlstest.WriteFile(t, cfg.ClientCAFile, ca.PEM)
	}
	files, err := tlsfiles.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(files.GRPC())))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestHealthcheckTLS: the check follows the server's TLS settings from the environment.
func TestHealthcheckTLS(t *testing.T) {
	ca, other := tlstest.NewCA(t, "test CA"), tlstest.NewCA(t, "other CA")
	dir := t.TempDir()
	addr := startTLSHealthServer(t, ca, dir, false)
	mtlsDir := t.TempDir()
	mtlsAddr := startTLSHealthServer(t, ca, mtlsDir, true)
	caFile, otherFile := filepath.Join(dir, "trust.pem"), filepath.Join(dir, "other.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	tlstest.WriteFile(t, otherFile, other.PEM)
	clientDir := t.TempDir()
	clientCert, clientKey := ca.Client(t, "probe").Write(t, clientDir)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{name: "TLS from the environment", args: []string{"-addr", addr}, env: map[string]string{tlsCertEnv: filepath.Join(dir, "cert.pem")}, want: 0},
		{name: "TLS by flag, verified", args: []string{"-addr", addr, "-tls", "-cacert", caFile}, want: 0},
		{name: "another CA", args: []string{"-addr", addr, "-tls", "-cacert", otherFile, "-timeout", "300ms"}, want: 1},
		{name: "plaintext against TLS", args: []string{"-addr", addr, "-timeout", "300ms"}, want: 1},
		{name: "mTLS without a certificate", args: []string{"-addr", mtlsAddr, "-tls", "-timeout", "300ms"}, want: 1},
		{name: "mTLS with a client certificate", args: []string{"-addr", mtlsAddr, "-tls", "-cert", clientCert, "-key", clientKey}, want: 0},
		{name: "cert without key", args: []string{"-addr", addr, "-tls", "-cert", clientCert}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{tlsCertEnv, tlsKeyEnv, tlsClientAuthEnv} {
				t.Setenv(name, tt.env[name])
			}
			var stderr bytes.Buffer
			if got := exitCode(run(context.Background(), append([]string{"healthcheck"}, tt.args...)), &stderr); got != tt.want {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", got, tt.want, stderr.String())
			}
		})
	}
}
