package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/tokenauthority/tokenauthority/authn"
)

// SidecarConfig is what the node-local placement needs.
type SidecarConfig struct {
	// Conn reaches the authority, for the tenant's keys and its revocation stream.
	Conn grpc.ClientConnInterface
	// APIKey is a key of the tenant with role verify.
	APIKey string
	// Policy maps routes to what a token needs there.
	Policy *Policy
	// Logger records reconnects and denials it cannot decide; nowhere when nil.
	Logger *slog.Logger
	// Options tune the local verifier (authn.WithStalenessBound, authn.WithClock, ...). The
	// verifier accepts any audience of the tenant: each route names its own.
	Options []authn.Option
}

// Sidecar is the ext_authz server of the node-local placement: it verifies in-process with
// authn.NewLocal, against the keys and the revocations the authority pushes, so that an answer
// costs no network hop; past the verifier's staleness bound without news from the authority, it
// answers 503 (fail closed).
type Sidecar struct {
	*Server
	local *authn.Local
}

// NewSidecar starts the local verifier (it returns once the revocation stream has caught up, or
// with ctx's error) and returns the server. Close stops it.
func NewSidecar(ctx context.Context, cfg SidecarConfig) (*Sidecar, error) {
	if cfg.Policy == nil {
		return nil, errors.New("extauthz: no policy")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := append([]authn.Option{authn.WithAnyAudience(), authn.WithLogger(log)}, cfg.Options...)
	local, err := authn.NewLocal(ctx, cfg.Conn, cfg.APIKey, opts...)
	if err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	srv, err := New(Config{Verifier: local, Policy: cfg.Policy, Logger: log})
	if err != nil {
		local.Close()
		return nil, err
	}
	return &Sidecar{Server: srv, local: local}, nil
}

// Live reports whether the sidecar would decide now: its revocation stream is within the
// staleness bound. For a readiness probe.
func (s *Sidecar) Live() bool { return s.local.Live() }

// Close stops the local verifier; Check then fails closed once the staleness bound has passed.
func (s *Sidecar) Close() { s.local.Close() }
