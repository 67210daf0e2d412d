package grpcserver

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/extauthz"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// TokenDomain is what the server needs of the token service: the token service's calls and the
// admin service's announcements of signing keys.
type TokenDomain interface {
	Tokens
	KeyAnnouncer
}

// Config holds what the gRPC server serves.
type Config struct {
	Tokens  TokenDomain
	Keys    KeyAdmin
	Tenants TenantAdmin
	// Lifecycle creates and deletes tenants (CreateTenant, DeleteTenant).
	Lifecycle TenantLifecycle
	Logger    *slog.Logger
	// Registerer receives the RPC metrics; none are recorded when nil.
	Registerer prometheus.Registerer
	// Revocations serves WatchRevocations; the method is Unimplemented when nil.
	Revocations *revocation.Hub
	// Now is the clock of the rate limits, of the log throttle and of the revocation lag; time.Now
	// when nil.
	Now func() time.Time
	// MaxWatchesPerKey bounds the open WatchRevocations streams of one API key
	// (DefaultMaxWatchesPerKey when zero).
	MaxWatchesPerKey int
	// StatsHandler, when not nil, sees every call (the tracing of RPCs); none is installed when
	// nil, so that tracing that is off costs nothing.
	StatsHandler stats.Handler
	// WatchObserver is told how late each revocation event reaches its watcher; nothing is
	// reported when nil.
	WatchObserver WatchObserver
	// MaxWatchesPerTenant bounds the open WatchRevocations streams of one tenant, all its keys
	// together (DefaultMaxWatchesPerTenant when zero).
	MaxWatchesPerTenant int
	// WatchRecheck is how often a WatchRevocations stream re-checks its API key and tenant
	// (DefaultWatchRecheck when zero).
	WatchRecheck time.Duration
	// RecheckTicker makes the ticker of each stream's re-checks: time.NewTicker when nil; tests
	// inject their own ticks.
	RecheckTicker func(time.Duration) (ticks <-chan time.Time, stop func())
	// MaxPublicStreams bounds the streams open at once that need no credential
	// (DefaultMaxPublicStreams when zero).
	MaxPublicStreams int
	// MaxConnectionAge and MaxConnectionAgeGrace end every connection after that age, giving its
	// open calls the grace to finish (DefaultMaxConnectionAge and DefaultMaxConnectionAgeGrace
	// when zero).
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// AuthenticateReflection puts server reflection behind a credential (any API key, or the
	// master credential); production sets it. Reflection is public otherwise.
	AuthenticateReflection bool
	// StoreTimeout bounds the store work of each unary call, its authentication included: the
	// store ends it with store.ErrUnavailable (Unavailable) once the time has passed. None when zero.
	StoreTimeout time.Duration
	// ExtAuthz, when not nil, is the per-route policy of the Envoy ext_authz service
	// (envoy.service.auth.v3.Authorization) that the server then serves, strictly: each Check
	// verifies with Tokens for the tenant of the caller's API key, as VerifyToken does.
	ExtAuthz *extauthz.Policy
	// TLS, when not nil, makes the server speak TLS (mutual TLS when it asks for client
	// certificates); plaintext when nil.
	TLS *tls.Config
}

// withStoreBudget gives a call's store work a budget of d from now (store.WithBudget); none when d
// is not positive.
func withStoreBudget(ctx context.Context, d time.Duration) context.Context {
	if d <= 0 {
		return ctx
	}
	return store.WithBudget(ctx, time.Now().Add(d))
}

// storeBudget gives each unary call a store budget of d from its start, before authentication,
// whose key lookups count against it. Streams have none: a stream's store calls are bounded one
// by one by the store itself.
func storeBudget(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(withStoreBudget(ctx, d), req)
	}
}

// Server is the gRPC server and its health service.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	// OAuth answers RFC 7662 introspection and RFC 7009 revocation for the HTTP server, with the
	// same authentication, policy, rate limits and answers as VerifyToken and RevokeToken.
	OAuth *OAuth
}

// Services lists the names whose health the server reports.
var Services = []string{
	"",
	tokenauthorityv1.TokenService_ServiceDesc.ServiceName,
	tokenauthorityv1.AdminService_ServiceDesc.ServiceName,
}

// maxRecvMsgSize bounds a request: the largest legitimate one (an 8 KiB token, 4 KiB of extra
// claims and their metadata) is far below it.
const maxRecvMsgSize = 64 << 10

// New builds the server with its interceptor chain. The order is metrics -> logging -> recovery ->
// (for streams, the bound on public ones) -> authentication and method policy: metrics and logs
// see the Internal status of a recovered panic and every refusal, and no handler runs before its
// caller is authenticated and authorised.
func New(cfg Config) (*Server, error) {
	log := cfg.Logger
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	var metrics *grpcprom.ServerMetrics
	if cfg.Registerer != nil {
		metrics = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1})))
		if err := cfg.Registerer.Register(metrics); err != nil {
			return nil, fmt.Errorf("register gRPC metrics: %w", err)
		}
		unary = append(unary, metrics.UnaryServerInterceptor())
		stream = append(stream, metrics.StreamServerInterceptor())
	}
	logger := interceptorLogger(log)
	logOpts := []logging.Option{logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(logLevel)}
	recoverOpt := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		// The panic value may hold request data: log its type and the stack, not the value.
		log.LogAttrs(ctx, slog.LevelError, "panic in handler", slog.String("type", fmt.Sprintf("%T", p)), slog.String("stack", string(debug.Stack())))
		return status.Error(codes.Internal, "internal error")
	})
	policyOf := policyLookup(cfg.AuthenticateReflection)
	guards := newAuthGuards(cfg.Now)
	authUnary, authStream := authInterceptors(cfg.Tenants, log, guards, policyOf)
	publicStreams := &streamCap{max: int64(orDefault(cfg.MaxPublicStreams, DefaultMaxPublicStreams)), policyOf: policyOf}
	codec := newRequestCodec()
	unary = append(unary, leanCallLog(log, logging.UnaryServerInterceptor(logger, logOpts...)), recovery.UnaryServerInterceptor(recoverOpt),
		codec.unaryInterceptor)
	if cfg.StoreTimeout > 0 {
		unary = append(unary, storeBudget(cfg.StoreTimeout))
	}
	unary = append(unary, authUnary)
	stream = append(stream, logging.StreamServerInterceptor(logger, logOpts...), recovery.StreamServerInterceptor(recoverOpt),
		codec.streamInterceptor, publicStreams.interceptor, authStream)

	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.ForceServerCodecV2(codec),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     15 * time.Minute,
			MaxConnectionAge:      orDefault(cfg.MaxConnectionAge, DefaultMaxConnectionAge),
			MaxConnectionAgeGrace: orDefault(cfg.MaxConnectionAgeGrace, DefaultMaxConnectionAgeGrace),
			Time:                  time.Minute,
			Timeout:               20 * time.Second,
		}),
	}
	if cfg.StatsHandler != nil {
		opts = append(opts, grpc.StatsHandler(cfg.StatsHandler))
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	srv := grpc.NewServer(opts...)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	watches := &watchers{maxPerKey: orDefault(cfg.MaxWatchesPerKey, DefaultMaxWatchesPerKey),
		maxPerTenant: orDefault(cfg.MaxWatchesPerTenant, DefaultMaxWatchesPerTenant)}
	ticker := cfg.RecheckTicker
	if ticker == nil {
		ticker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	ts := &tokenService{tokens: cfg.Tokens, keys: cfg.Keys, tenants: cfg.Tenants,
		hub: cfg.Revocations, watches: watches, limits: newLimiter(cfg.Now), log: log,
		watchObs: cfg.WatchObserver, now: now,
		recheckEvery: orDefault(cfg.WatchRecheck, DefaultWatchRecheck), recheckTicker: ticker, policyOf: policyOf}
	tokenauthorityv1.RegisterTokenServiceServer(srv, ts)
	tokenauthorityv1.RegisterAdminServiceServer(srv, &adminService{tenants: cfg.Tenants, keys: cfg.Keys, announcer: cfg.Tokens,
		lifecycle: cfg.Lifecycle, log: log, watches: watches})
	if cfg.ExtAuthz != nil {
		ea, err := extauthz.New(extauthz.Config{Verifier: strictVerifier{tokens: cfg.Tokens}, Policy: cfg.ExtAuthz, Logger: log})
		if err != nil {
			srv.Stop() // ends the stream workers NewServer started
			return nil, err
		}
		ea.Register(srv)
	}
	hs := health.NewServer()
	for _, name := range Services {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	if metrics != nil {
		metrics.InitializeMetrics(srv)
	}
	oauth := &OAuth{tokens: ts, authorize: authorizer(cfg.Tenants, log, guards, policyOf), storeTimeout: cfg.StoreTimeout}
	return &Server{GRPC: srv, Health: hs, OAuth: oauth}, nil
}

// orDefault returns v, or def when v is not positive.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// SetServing reports every service SERVING or NOT_SERVING.
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	for _, name := range Services {
		s.Health.SetServingStatus(name, st)
	}
}

// logLevel logs failures that are the server's problem at a higher level than callers' mistakes.
func logLevel(c codes.Code) logging.Level {
	switch c {
	case codes.OK, codes.NotFound, codes.Canceled, codes.AlreadyExists, codes.InvalidArgument,
		codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted, codes.FailedPrecondition:
		return logging.LevelDebug
	case codes.Unavailable, codes.DeadlineExceeded:
		return logging.LevelWarn
	}
	return logging.LevelError
}

// interceptorLogger adapts slog to go-grpc-middleware's logging. Only call metadata (method, code,
// duration, peer) reaches it: payloads and request metadata, where credentials live, never do.
func interceptorLogger(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}
