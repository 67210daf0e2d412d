package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
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
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	fs := flag.NewFlagSet("tokenauthority healthcheck", flag.ContinueOnError)
	fs.SetOutput(usage)
	addr := fs.String("addr", "", "gRPC address to check (default: "+grpcAddrEnv+" with a wildcard host replaced by 127.0.0.1, else 127.0.0.1:"+defaultHealthcheckPort+")")
	service := fs.String("service", "", "service name to check; empty means the whole server")
	timeout := fs.Duration("timeout", defaultHealthcheckTimeout, "time allowed for the check")
	useTLS := fs.Bool("tls", getenv(tlsCertEnv) != "", "speak TLS (default: true when "+tlsCertEnv+" is set, as for the server beside it)")
	caFile := fs.String("cacert", "", "PEM CAs to verify the server's certificate with; without it the certificate is not verified (the check sends no credential and reads one status)")
	certFile := fs.String("cert", "", "PEM client certificate to present (default: "+tlsCertEnv+" when "+tlsClientAuthEnv+"=require)")
	keyFile := fs.String("key", "", "PEM key of -cert (default: "+tlsKeyEnv+" when "+tlsClientAuthEnv+"=require)")
	fs.Usage = func() {
		fmt.Fprintln(usage, "Usage: tokenauthority healthcheck [-addr host:port] [-service name] [-timeout duration] [-tls] [-cacert file] [-cert file -key file]")
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

	creds := insecure.NewCredentials()
	if *useTLS {
		if *certFile == "" && *keyFile == "" && getenv(tlsClientAuthEnv) == "require" {
			// The server's own certificate, which cert-manager issues for client auth as well.
			*certFile, *keyFile = getenv(tlsCertEnv), getenv(tlsKeyEnv)
		}
		cfg, err := healthcheckTLS(*caFile, *certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("healthcheck: %w", err)
		}
		creds = credentials.NewTLS(cfg)
	}

	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	conn, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(creds))
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

// The server's TLS settings, which the check follows by default.
const (
	tlsCertEnv       = "TOKENAUTHORITY_TLS_CERT_FILE"
	tlsKeyEnv        = "TOKENAUTHORITY_TLS_KEY_FILE"
	tlsClientAuthEnv = "TOKENAUTHORITY_TLS_CLIENT_AUTH"
)

// healthcheckTLS returns the client configuration of the check: the server verified against
// caFile when given, and the client certificate in certFile and keyFile when given.
func healthcheckTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg, err := tlsfiles.ClientConfig(caFile, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("-cacert, -cert, -key: %w", err)
	}
	if caFile == "" {
		// The check runs beside the server, whose certificate names the service, not the
		// loopback address it dials; it sends no credential and reads one status, as the
		// kubelet's HTTPS probes do without verifying either.
		cfg.InsecureSkipVerify = true //nolint:gosec // see above: nothing secret crosses this connection
	}
	return cfg, nil
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
