package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthcheckCommand is the first argument that selects the health-check mode. Container images
// without a shell (distroless) run it as their HEALTHCHECK.
const healthcheckCommand = "healthcheck"

// grpcAddrEnv is the variable of the server's gRPC listen address, which the health check probes
// by default.
const grpcAddrEnv = "TOKENAUTHORITY_GRPC_ADDR"

// Defaults of the health check: the port of the server's default listen address, and a timeout
// well inside the intervals of container and Kubernetes probes.
const (
	defaultHealthcheckPort    = "50051"
	defaultHealthcheckTimeout = 3 * time.Second
)

// errNotServing reports a health answer other than SERVING.
var errNotServing = errors.New("not serving")

// healthcheck asks the gRPC health service of a running server for its status and returns nil
// only if it answers SERVING. The address defaults to TOKENAUTHORITY_GRPC_ADDR (read through
// getenv) with a wildcard host replaced by the loopback address, so that the check run inside the
// server's container reaches the server whatever address it listens on.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, usage io.Writer) error {
	fs := flag.NewFlagSet("tokenauthority healthcheck", flag.ContinueOnError)
	fs.SetOutput(usage)
	addr := fs.String("addr", "", "gRPC address to check (default: "+grpcAddrEnv+" with a wildcard host replaced by 127.0.0.1, else 127.0.0.1:"+defaultHealthcheckPort+")")
	service := fs.String("service", "", "service name to check; empty means the whole server")
	timeout := fs.Duration("timeout", defaultHealthcheckTimeout, "time allowed for the check")
	fs.Usage = func() {
		fmt.Fprintln(usage, "Usage: tokenauthority healthcheck [-addr host:port] [-service name] [-timeout duration]")
		fmt.Fprintln(usage, "\nCalls grpc.health.v1.Health/Check and exits 0 only when the answer is SERVING.")
		fmt.Fprintln(usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	if *timeout <= 0 {
		return fmt.Errorf("healthcheck: -timeout must be positive, got %v", *timeout)
	}
	target := *addr
	if target == "" {
		var err error
		if target, err = probeAddr(getenv(grpcAddrEnv)); err != nil {
			return fmt.Errorf("healthcheck: %s: %w", grpcAddrEnv, err)
		}
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// The server speaks plaintext gRPC; TLS, where there is any, ends in front of it.
	conn, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", target, err)
	}
	defer conn.Close()
	// WaitForReady lets a server that is still starting answer within the timeout instead of
	// failing on the first refused connection.
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: *service}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", target, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("healthcheck %s: %w: %s", target, errNotServing, st)
	}
	return nil
}

// probeAddr returns the address to probe for a listen address: an empty or wildcard host becomes
// 127.0.0.1 (Go listens on both IPv4 and IPv6 for a wildcard), and an empty listen address means
// the default port.
func probeAddr(listen string) (string, error) {
	if listen == "" {
		return net.JoinHostPort("127.0.0.1", defaultHealthcheckPort), nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("invalid address %q: want host:port", listen)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}
