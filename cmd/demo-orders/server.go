package main

import (
	"context"
	"log/slog"
	"slices"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
	ordersv1 "github.com/tokenauthority/tokenauthority/gen/demo/orders/v1"
)

// The scopes the order service requires.
const (
	scopeRead  = "orders:read"
	scopeWrite = "orders:write"
)

// reflectionV1AlphaMethod is the older reflection protocol, which reflection.Register serves too
// (its Go package is deprecated, hence the literal).
const reflectionV1AlphaMethod = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

// policy classifies every method the server serves; a test proves it with Policy.Covers. A method
// added later without an entry is refused to every token (authn.DenyUnlisted, the zero value).
func policy() authn.Policy {
	return authn.Policy{
		// Probes and grpcurl need no token. Health/List is public like the other health methods:
		// it reveals service names, which reflection reveals anyway.
		Public: append(slices.Clone(authn.HealthMethods),
			reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName,
			reflectionV1AlphaMethod,
		),
		Scopes: map[string][]string{
			ordersv1.OrderService_CreateOrder_FullMethodName: {scopeWrite},
			ordersv1.OrderService_GetOrder_FullMethodName:    {scopeRead},
			ordersv1.OrderService_WatchOrders_FullMethodName: {scopeRead},
		},
	}
}

// newServer returns the gRPC server of the order service, with health and reflection, protected
// by v and policy. The chain is logging -> selector(auth) -> recovery, so that refused calls are
// logged and a panic in a handler never crashes the process. Public methods (probes, grpcurl's
// reflection) are not logged: they would drown the order calls.
func newServer(v authn.Verifier, svc *orderService, log *slog.Logger) (*grpc.Server, *health.Server) {
	p := policy()
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall)}
	recoverOpts := []recovery.Option{recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in a handler", slog.Any("panic", p))
		return status.Error(codes.Internal, "internal error")
	})}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(
			selector.UnaryServerInterceptor(logging.UnaryServerInterceptor(interceptorLogger(log), logOpts...), p.Matcher()),
			authn.UnaryServerInterceptor(v, p),
			recovery.UnaryServerInterceptor(recoverOpts...),
		),
		grpc.ChainStreamInterceptor(
			selector.StreamServerInterceptor(logging.StreamServerInterceptor(interceptorLogger(log), logOpts...), p.Matcher()),
			authn.StreamServerInterceptor(v, p),
			recovery.StreamServerInterceptor(recoverOpts...),
		),
	)
	ordersv1.RegisterOrderServiceServer(srv, svc)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs
}

// interceptorLogger adapts slog to go-grpc-middleware's logging interceptor. The interceptor logs
// the method, code, duration and status message; it logs no metadata, so no token.
func interceptorLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
