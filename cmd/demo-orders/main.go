// Command demo-orders is a small gRPC service protected by the authn package in local mode: it
// shows how a team protects its own service with the token authority's access tokens.
//
// It verifies tokens in-process against the tenant's public keys and applies the revocations
// that the authority pushes through WatchRevocations, so a revoked token is refused within about
// a second without a call to the authority per request. Its orders live in memory and belong to
// the subject of the token that created them. See README.md in this directory for a walkthrough.
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
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenauthority/tokenauthority/authn"
	ordersv1 "github.com/tokenauthority/tokenauthority/gen/demo/orders/v1"
	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := start(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "demo-orders:", err)
		os.Exit(1)
	}
}

// start parses the configuration, listens and runs the service until ctx ends.
func start(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	return run(ctx, cfg, lis)
}

// run starts a local verifier against the authority and serves the order service on lis until
// ctx ends, then stops gracefully within cfg.ShutdownTimeout.
func run(ctx context.Context, cfg config, lis net.Listener) error {
	defer lis.Close()
	log := cfg.Logger
	creds := insecure.NewCredentials()
	if cfg.CACert != "" || cfg.Cert != "" {
		tlsCfg, err := tlsfiles.ClientConfig(cfg.CACert, cfg.Cert, cfg.Key)
		if err != nil {
			return fmt.Errorf("-cacert, -cert, -key: %w", err)
		}
		creds = credentials.NewTLS(tlsCfg)
	} else if !tlsfiles.IsLoopback(cfg.AuthorityAddr) {
		log.Warn("the authority is reached without TLS: outside loopback, use TLS (-cacert)", slog.String("authority", cfg.AuthorityAddr))
	}
	conn, err := grpc.NewClient(cfg.AuthorityAddr,
		grpc.WithTransportCredentials(creds),
		// The verifier's calls fail fast while the connection is down, so after an outage the
		// connection's own backoff (up to 2 minutes by default) decides when the revocation
		// stream, and with it the service, comes back: keep it short.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return fmt.Errorf("connect to the authority: %w", err)
	}
	defer conn.Close()

	startCtx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	v, err := authn.NewLocal(startCtx, conn, cfg.APIKey,
		authn.WithIssuer(cfg.Issuer),
		authn.WithAudience(cfg.Audience),
		authn.WithLogger(log),
	)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		hint := ""
		if errors.Is(err, authn.ErrUnavailable) {
			hint = " (is the authority running? `make run` starts one)"
		}
		return fmt.Errorf("start the local verifier against the authority at %s%s: %w", cfg.AuthorityAddr, hint, err)
	}
	defer v.Close()
	log.Info("verifying tokens locally", slog.String("authority", cfg.AuthorityAddr),
		slog.String("issuer", cfg.Issuer), slog.String("audience", cfg.Audience),
		slog.String("api_key_file", cfg.APIKeyFile))

	book := newOrderBook(time.Now)
	srv, hs := newServer(v, &orderService{book: book, log: log, verifier: v, recheck: cfg.StreamRecheck}, log)

	g, gctx := errgroup.WithContext(ctx)
	log.Info("serving", slog.String("addr", lis.Addr().String()))
	g.Go(func() error { return srv.Serve(lis) })
	g.Go(func() error {
		authn.KeepHealth(gctx, hs, v, time.Second, ordersv1.OrderService_ServiceDesc.ServiceName)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
		hs.Shutdown()
		// Watch streams never end on their own: end them, so that GracefulStop waits only for
		// the unary calls in flight.
		book.close()
		stopped := make(chan struct{})
		go func() {
			srv.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(cfg.ShutdownTimeout):
			log.Warn("shutdown timeout reached; cancelling the remaining calls")
			srv.Stop()
		}
		return nil
	})
	return g.Wait()
}
