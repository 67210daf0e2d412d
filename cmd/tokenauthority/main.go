// Command tokenauthority runs the token authority: a gRPC server for issuing, refreshing,
// verifying and revoking JWTs, and an HTTP server for health, metrics and JWKS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "tokenauthority:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
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
	a, err := app.New(cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func newLogger(cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
