package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// APIKeyHeader is the metadata key that carries the caller's credential.
const APIKeyHeader = "x-api-key"

// Authenticator resolves a presented credential to a caller.
type Authenticator interface {
	Authenticate(ctx context.Context, credential string) (*tenant.Caller, error)
}

type callerKey struct{}

// CallerFrom returns the authenticated caller of ctx.
func CallerFrom(ctx context.Context) (*tenant.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*tenant.Caller)
	return c, ok
}

// authGuards is what the authentication interceptor keeps between calls.
type authGuards struct {
	// failures bounds the "authentication failed" log lines, which anyone can cause.
	failures *logThrottle
	// writes bounds the admin writes of each caller's key (adminWrites).
	writes *limiter
}

func newAuthGuards(now func() time.Time) *authGuards {
	return &authGuards{failures: newLogThrottle(now, authFailureLogRate, authFailureLogBurst), writes: newLimiter(now)}
}

// logFailure logs a failed authentication unless too many have been logged lately; the next line
// logged says how many were not.
func (g *authGuards) logFailure(ctx context.Context, log *slog.Logger, method, why string) {
	ok, held := g.failures.allow()
	if !ok {
		return
	}
	attrs := []slog.Attr{slog.String("method", method), slog.String("why", why)}
	if held > 0 {
		attrs = append(attrs, slog.Int("suppressed", held))
	}
	log.LogAttrs(ctx, slog.LevelInfo, "authentication failed", attrs...)
}

// authFunc authenticates the caller and applies the method's policy and the admin write limit.
func authFunc(authn Authenticator, log *slog.Logger, g *authGuards, policyOf func(string) (policy, bool)) auth.AuthFunc {
	return func(ctx context.Context) (context.Context, error) {
		method, _ := grpc.Method(ctx)
		p, ok := policyOf(method)
		if !ok {
			return nil, status.Error(codes.PermissionDenied, "method has no access policy")
		}
		// One key's values, not a copy of every header (FromIncomingContext copies the map).
		vals := metadata.ValueFromIncomingContext(ctx, APIKeyHeader)
		if len(vals) != 1 || vals[0] == "" {
			g.logFailure(ctx, log, method, "no x-api-key")
			return nil, status.Error(codes.Unauthenticated, "missing x-api-key metadata")
		}
		return authorize(ctx, authn, log, g, method, p, vals[0])
	}
}

// authorizer is authorize for a method's policy in policyOf: the HTTP endpoints (OAuth) use it.
func authorizer(authn Authenticator, log *slog.Logger, g *authGuards, policyOf func(string) (policy, bool)) func(ctx context.Context, method, credential string) (context.Context, error) {
	return func(ctx context.Context, method, credential string) (context.Context, error) {
		p, ok := policyOf(method)
		if !ok {
			return nil, status.Error(codes.PermissionDenied, "method has no access policy")
		}
		return authorize(ctx, authn, log, g, method, p, credential)
	}
}

// authorize authenticates a credential presented for a method and applies the method's policy p
// and the admin write limit: the gRPC interceptor and the HTTP endpoints (OAuth) share it.
func authorize(ctx context.Context, authn Authenticator, log *slog.Logger, g *authGuards, method string, p policy, credential string) (context.Context, error) {
	caller, err := authn.Authenticate(ctx, credential)
	if errors.Is(err, tenant.ErrUnauthenticated) {
		// Never log the credential, not even a prefix of it.
		g.logFailure(ctx, log, method, "invalid x-api-key")
		return nil, status.Error(codes.Unauthenticated, "invalid x-api-key")
	}
	if err != nil {
		return nil, toStatus(ctx, log, err)
	}
	if !allowed(p, caller) {
		log.LogAttrs(ctx, slog.LevelInfo, "permission denied", slog.String("method", method), slog.String("key_id", caller.KeyID))
		return nil, status.Error(codes.PermissionDenied, "the caller's credential lacks a role this method requires")
	}
	if adminWrites[method] {
		if err := g.writes.allow(writerKey(caller), "admin-write", adminWriteLimit); err != nil {
			return nil, err
		}
	}
	return context.WithValue(ctx, callerKey{}, caller), nil
}

func allowed(p policy, c *tenant.Caller) bool {
	if c.Master {
		return p.master
	}
	for _, r := range p.roles {
		if slices.Contains(c.Roles, r) {
			return true
		}
	}
	return false
}

// needsAuth selects the methods that are not public (unknown methods included: fail closed).
func needsAuth(policyOf func(string) (policy, bool)) selector.Matcher {
	return selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		p, ok := policyOf(c.FullMethod())
		return !ok || !p.public
	})
}

func authInterceptors(authn Authenticator, log *slog.Logger, g *authGuards, policyOf func(string) (policy, bool)) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	af := authFunc(authn, log, g, policyOf)
	match := needsAuth(policyOf)
	return selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(af), match),
		selector.StreamServerInterceptor(auth.StreamServerInterceptor(af), match)
}
