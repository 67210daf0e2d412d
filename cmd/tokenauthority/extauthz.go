package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/internal/extauthz"
	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
)

// extauthzCommand is the first argument that runs the ext_authz sidecar instead of the authority.
const extauthzCommand = "extauthz"

// The sidecar's environment variables; each flag overrides its variable.
const (
	extauthzAuthorityEnv = "TOKENAUTHORITY_EXTAUTHZ_AUTHORITY"
	extauthzKeyFileEnv   = "TOKENAUTHORITY_EXTAUTHZ_API_KEY_FILE"
	extauthzPolicyEnv    = "TOKENAUTHORITY_EXTAUTHZ_POLICY"
	extauthzAddrEnv      = "TOKENAUTHORITY_EXTAUTHZ_ADDR"
	extauthzStaleEnv     = "TOKENAUTHORITY_EXTAUTHZ_STALENESS"
	extauthzCACertEnv    = "TOKENAUTHORITY_EXTAUTHZ_CACERT"
	extauthzCertEnv      = "TOKENAUTHORITY_EXTAUTHZ_CERT"
	extauthzCertKeyEnv   = "TOKENAUTHORITY_EXTAUTHZ_CERT_KEY"
)

// Defaults of the sidecar: the authority of `make run`, and a loopback listen address, since
// Envoy on the same node (or pod) is its only caller and Check has no credential of its own.
const (
	defaultExtauthzAuthority = "127.0.0.1:50051"
	defaultExtauthzAddr      = "127.0.0.1:9191"
	// extauthzStartTimeout bounds the wait for the authority's keys and revocation stream.
	extauthzStartTimeout = time.Minute
	extauthzStopTimeout  = 10 * time.Second
)

// extauthzSettings are the sidecar's parsed settings.
type extauthzSettings struct {
	authority, keyFile, policyFile, addr string
	// caCert, cert and certKey are the files of TLS to the authority: its CA bundle, and this
	// sidecar's client certificate and key (mutual TLS). Plaintext when all are empty.
	caCert, cert, certKey string
	staleness             time.Duration
}

// parseExtauthz reads the sidecar's flags and variables and reports every problem at once.
func parseExtauthz(args []string, getenv func(string) string, usage io.Writer) (*extauthzSettings, error) {
	fs := flag.NewFlagSet("tokenauthority extauthz", flag.ContinueOnError)
	fs.SetOutput(usage)
	s := &extauthzSettings{}
	fs.StringVar(&s.authority, "authority", "", "gRPC address of the authority ("+extauthzAuthorityEnv+"; default "+defaultExtauthzAuthority+")")
	fs.StringVar(&s.keyFile, "api-key-file", "", "file holding an API key of the tenant with role verify ("+extauthzKeyFileEnv+"; required)")
	fs.StringVar(&s.policyFile, "policy", "", "per-route policy, JSON ("+extauthzPolicyEnv+"; required)")
	fs.StringVar(&s.addr, "listen", "", "listen address of the ext_authz gRPC server ("+extauthzAddrEnv+"; default "+defaultExtauthzAddr+")")
	fs.StringVar(&s.caCert, "cacert", "", "CA bundle (PEM) that verifies the authority: reach it over TLS ("+extauthzCACertEnv+")")
	fs.StringVar(&s.cert, "cert", "", "client certificate (PEM) for mutual TLS to the authority ("+extauthzCertEnv+")")
	fs.StringVar(&s.certKey, "key", "", "key of -cert ("+extauthzCertKeyEnv+")")
	stale := fs.String("staleness", "", "how long without news from the authority before every Check fails closed ("+extauthzStaleEnv+"; default "+authn.DefaultStalenessBound.String()+")")
	fs.Usage = func() {
		fmt.Fprintln(usage, "Usage: tokenauthority extauthz -api-key-file path -policy path [-authority host:port] [-listen host:port] [-staleness duration] [-cacert path [-cert path -key path]]")
		fmt.Fprintln(usage, "\nServes Envoy's envoy.service.auth.v3.Authorization/Check next to the proxy, verifying tokens locally")
		fmt.Fprintln(usage, "against the authority's keys and pushed revocations.")
		fmt.Fprintln(usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	or := func(v *string, env, def string) {
		if *v == "" {
			*v = getenv(env)
		}
		if *v == "" {
			*v = def
		}
	}
	or(&s.authority, extauthzAuthorityEnv, defaultExtauthzAuthority)
	or(&s.keyFile, extauthzKeyFileEnv, "")
	or(&s.policyFile, extauthzPolicyEnv, "")
	or(&s.addr, extauthzAddrEnv, defaultExtauthzAddr)
	or(stale, extauthzStaleEnv, authn.DefaultStalenessBound.String())
	or(&s.caCert, extauthzCACertEnv, "")
	or(&s.cert, extauthzCertEnv, "")
	or(&s.certKey, extauthzCertKeyEnv, "")
	if (s.cert == "") != (s.certKey == "") {
		errs = append(errs, errors.New("-cert and -key go together"))
	}
	if s.keyFile == "" {
		errs = append(errs, fmt.Errorf("-api-key-file (%s) is required", extauthzKeyFileEnv))
	}
	if s.policyFile == "" {
		errs = append(errs, fmt.Errorf("-policy (%s) is required", extauthzPolicyEnv))
	}
	for _, a := range []struct{ name, v string }{{"-authority", s.authority}, {"-listen", s.addr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", a.name, a.v))
		}
	}
	d, err := time.ParseDuration(*stale)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("-staleness: %q is not a duration", *stale))
	case d < 100*time.Millisecond || d > 10*time.Minute:
		errs = append(errs, fmt.Errorf("-staleness: must be between 100ms and 10m, got %v", d))
	}
	s.staleness = d
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	return s, nil
}

// runExtauthz runs the sidecar until ctx ends.
func runExtauthz(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	s, err := parseExtauthz(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{ReplaceAttr: durationsAsText}))
	policy, err := extauthz.LoadPolicy(s.policyFile)
	if err != nil {
		return fmt.Errorf("extauthz: %w", err)
	}
	key, err := os.ReadFile(s.keyFile)
	if err != nil {
		// The path only: never the content.
		return fmt.Errorf("extauthz: API key file: %w", err)
	}
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("extauthz: %w", err)
	}
	defer lis.Close()
	// The API key goes to the authority with every call: over TLS unless the authority is on this
	// machine (or a mesh encrypts the hop, which this process cannot see).
	creds := insecure.NewCredentials()
	if s.caCert != "" || s.cert != "" {
		tlsCfg, err := tlsfiles.ClientConfig(s.caCert, s.cert, s.certKey)
		if err != nil {
			return fmt.Errorf("extauthz: -cacert, -cert, -key: %w", err)
		}
		creds = credentials.NewTLS(tlsCfg)
	} else if !tlsfiles.IsLoopback(s.authority) {
		log.Warn("the authority is reached without TLS, with the API key on every call: outside loopback, use TLS (-cacert)",
			slog.String("authority", s.authority))
	}
	conn, err := grpc.NewClient("passthrough:///"+s.authority, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("extauthz: %w", err)
	}
	defer conn.Close()
	startCtx, cancel := context.WithTimeout(ctx, extauthzStartTimeout)
	defer cancel()
	sc, err := extauthz.NewSidecar(startCtx, extauthz.SidecarConfig{Conn: conn, APIKey: strings.TrimSpace(string(key)), Policy: policy,
		Logger: log, Options: []authn.Option{authn.WithStalenessBound(s.staleness)}})
	if err != nil {
		return err
	}
	defer sc.Close()
	return serveSidecar(ctx, lis, sc, log)
}

// serveSidecar serves sc on lis, with a health service that is SERVING while the sidecar can
// decide, until ctx ends.
func serveSidecar(ctx context.Context, lis net.Listener, sc *extauthz.Sidecar, log *slog.Logger) error {
	srv := grpc.NewServer()
	sc.Register(srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	g, ctx := errgroup.WithContext(ctx)
	// SERVING while the sidecar can decide, from before the listener serves.
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if sc.Live() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	g.Go(func() error {
		authn.KeepHealth(ctx, hs, sc, time.Second)
		return nil
	})
	g.Go(func() error {
		log.Info("ext_authz sidecar serving", slog.String("addr", lis.Addr().String()))
		return srv.Serve(lis)
	})
	g.Go(func() error {
		<-ctx.Done()
		hs.Shutdown()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(extauthzStopTimeout):
			srv.Stop()
		}
		return nil
	})
	return g.Wait()
}
