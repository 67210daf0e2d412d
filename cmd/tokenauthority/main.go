// Command tokenauthority runs the token authority: a gRPC server for issuing, refreshing,
// verifying and revoking JWTs, and an HTTP server for health, metrics and JWKS.
//
// "tokenauthority healthcheck" instead asks a running server whether it is serving, through the
// gRPC health protocol, for container images that have no shell or curl.
//
// "tokenauthority extauthz" runs the Envoy ext_authz sidecar: envoy.service.auth.v3.Authorization
// next to the proxy, verifying tokens locally against the authority's keys and pushed revocations.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tokenauthority/tokenauthority/internal/app"
	"github.com/tokenauthority/tokenauthority/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode returns the exit status for the result of run, reporting an error on stderr: 0 for
// success or help, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(stderr, "tokenauthority:", err)
		return 1
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == healthcheckCommand {
		return healthcheck(ctx, args[1:], os.Getenv, os.Stderr)
	}
	if len(args) > 0 && args[0] == extauthzCommand {
		return runExtauthz(ctx, args[1:], os.Getenv, os.Stderr)
	}
	cfg, err := config.Parse(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg)
	notes, err := cfg.ResolveSecrets()
	if err != nil {
		return err
	}
	for _, n := range notes {
		log.Info(n)
	}
	// What this process runs with, secrets and the Redis password redacted (Config.LogValue).
	log.Info("configuration", slog.Any("config", cfg))
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func newLogger(cfg *config.Config) *slog.Logger {
	return newLoggerTo(os.Stderr, cfg)
}

func newLoggerTo(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		opts.ReplaceAttr = durationsAsText
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationsAsText writes durations as Go duration strings ("1.5s", "250ms"), as the text format
// and the configuration do, instead of the JSON handler's integer nanoseconds.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
