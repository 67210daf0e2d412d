package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/stats"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/extauthz"
	"github.com/tokenauthority/tokenauthority/internal/grpcserver"
	"github.com/tokenauthority/tokenauthority/internal/httpserver"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/lifecycle"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	redisstore "github.com/tokenauthority/tokenauthority/internal/store/redis"
	"github.com/tokenauthority/tokenauthority/internal/telemetry"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// Backend is everything the authority needs of its store.
type Backend interface {
	token.Store
	tenant.Store
	keys.Store
}

// The backends satisfy the interfaces of the packages that use them. The checks are here, where
// the backends are wired, so that the backends need not import those packages.
var (
	_ Backend        = (*memory.Store)(nil)
	_ Backend        = (*redisstore.Store)(nil)
	_ revocation.Log = (*memory.Events)(nil)
	_ revocation.Log = (*redisstore.Events)(nil)
)

// App is a configured authority, ready to serve.
type App struct {
	cfg     *config.Config
	log     *slog.Logger
	store   Backend
	closers []func() error
	keys    *keys.Manager
	tenants *tenant.Service
	// devLifecycle makes the development tenant (devBootstrap).
	devLifecycle *lifecycle.Service
	grpc         *grpcserver.Server
	http         *http.Server
	hub          *revocation.Hub
	events       revocation.Log
	ready        atomic.Bool
	// booted is set once the bootstrap (key check, development tenant) has run against the store.
	booted atomic.Bool
	// devMark names the record that marks the development bootstrap done (devBootstrap); set by
	// the first bootstrap, read by the readiness probe, which runs one at a time.
	devMark string
	// now is the clock of every component.
	now func() time.Time
	// redis is the Redis client, nil on the in-memory store; redisChecked is set once its
	// settings were checked (checkRedis), on the first probe that reached it.
	redis        redis.UniversalClient
	redisChecked atomic.Bool
	// tls holds the listeners' certificates, re-read when their files change; nil in plaintext.
	tls *tlsfiles.Files
}

// New builds the authority from cfg; its secrets must be resolved.
func New(cfg *config.Config, log *slog.Logger) (*App, error) {
	return newApp(cfg, log, nil)
}

// tracingShutdownTimeout bounds the sending of the spans still buffered at shutdown.
const tracingShutdownTimeout = 5 * time.Second

// newApp is New with the processor of the spans when tracing is on: nil sends them to the OTLP
// collector; tests pass an in-memory one.
func newApp(cfg *config.Config, log *slog.Logger, spans sdktrace.SpanProcessor) (*App, error) {
	a := &App{cfg: cfg, log: log, now: time.Now}
	var extAuthz *extauthz.Policy
	if cfg.ExtAuthzPolicy != "" {
		// Before anything is opened: a bad policy stops start-up with every problem named.
		var err error
		if extAuthz, err = extauthz.LoadPolicy(cfg.ExtAuthzPolicy); err != nil {
			return nil, fmt.Errorf("TOKENAUTHORITY_EXTAUTHZ_POLICY: %w", err)
		}
		log.Info("serving Envoy ext_authz (envoy.service.auth.v3.Authorization)", slog.String("policy", cfg.ExtAuthzPolicy),
			slog.Int("routes", len(extAuthz.Routes)))
	}
	if cfg.TLS() {
		files, err := tlsfiles.Load(tlsfiles.Config{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile,
			ClientCAFile: cfg.TLSClientCAFile, RequireClientCert: cfg.TLSClientAuth == config.ClientAuthRequire, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("TOKENAUTHORITY_TLS_CERT_FILE, TOKENAUTHORITY_TLS_KEY_FILE, TOKENAUTHORITY_TLS_CLIENT_CA_FILE: %w", err)
		}
		a.tls = files
		log.Info("serving TLS", slog.String("serial", files.Leaf().SerialNumber.String()), slog.Time("not_after", files.Leaf().NotAfter),
			slog.Bool("client_certificates", cfg.TLSClientCAFile != ""), slog.String("client_auth", cfg.TLSClientAuth))
	} else if cfg.Production() {
		log.Warn("serving plaintext in production (TOKENAUTHORITY_INSECURE_PLAINTEXT=true): a mesh or proxy in front must terminate TLS")
	}
	// Nothing of OpenTelemetry is made, let alone installed on a hot path, unless tracing is on.
	var tracing *telemetry.Tracing
	if cfg.Tracing == config.TracingOTLP {
		var err error
		if tracing, err = newTracing(spans); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), tracingShutdownTimeout)
			defer cancel()
			return tracing.Shutdown(ctx)
		})
		log.Info("tracing RPCs and Redis calls over OTLP")
	}
	// Revocation events are kept while a token they cover can still be valid.
	retention := revocation.Retention(cfg.MaxAccessTTL, token.DefaultLeeway)
	var events revocation.Log
	var client redis.UniversalClient
	if cfg.RedisURL == "" {
		a.store = memory.New(a.now)
		events = memory.NewEvents(a.now, retention, 0)
		log.Info("using the in-memory store (development default): sessions do not survive a restart")
	} else {
		var err error
		client, err = newRedisClient(cfg.RedisURL)
		if err != nil {
			a.close()
			return nil, err
		}
		// go-redis has one process-wide logger.
		redis.SetLogger(redisLogger{log: log})
		// Every call's Redis work, go-redis's retries included, ends within the budget.
		a.store = redisstore.New(client, redisstore.WithTimeout(cfg.StoreTimeout))
		a.redis = client
		events = redisstore.NewEvents(client, a.now, retention, 0)
		a.closers = append(a.closers, client.Close)
	}
	// The one writer of audit events: the domain packages emit them, the RPC's caller is named
	// from the context the gRPC server authenticated.
	auditor := audit.NewWriter(log, grpcserver.CallerAttrs)
	km, err := keys.NewManager(a.store, cfg.KeyEncryptionKey, a.now,
		keys.WithAudit(auditor),
		keys.WithPreviousKEKs(cfg.PreviousKeyEncryptionKeys...),
		keys.WithPrePublish(cfg.KeyPrePublish),
		// A retired key stays published while a token it signed can still be valid.
		keys.WithRetention(cfg.MaxAccessTTL+token.DefaultLeeway+time.Minute),
		// A retired refresh-token key verifies while a refresh token it signed can still be valid.
		keys.WithRefreshRetention(cfg.MaxRefreshTTL+token.DefaultLeeway+time.Minute))
	if err != nil {
		a.close()
		return nil, err
	}
	a.keys = km
	logKEKs(log, cfg)
	a.tenants = tenant.NewService(a.store, cfg.MasterKey.Reveal(), a.now, tenant.WithPreviousMasterKey(cfg.PreviousMasterKey.Reveal()),
		tenant.WithAudit(auditor))
	if !cfg.PreviousMasterKey.IsZero() {
		// Fingerprints, not keys: the audit lines of master calls name the one presented.
		log.Info("accepting the previous master key alongside the current one",
			slog.String("current", tenant.MasterFingerprint(cfg.MasterKey.Reveal())),
			slog.String("previous", tenant.MasterFingerprint(cfg.PreviousMasterKey.Reveal())))
	}
	a.hub = revocation.NewHub(events, 0)
	a.events = events
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := telemetry.NewMetrics(reg, telemetry.Sources{Watches: a.hub.Watches, SigningKeyAges: km.SigningKeyAges,
		SealedRecords: km.SealedRecords})
	if err != nil {
		a.close()
		return nil, err
	}
	var statsHandler stats.Handler // none unless tracing: a handler is called on every RPC
	if tracing != nil {
		statsHandler = tracing.ServerHandler()
	}
	if client != nil {
		client.AddHook(metrics.RedisHook())
		if tracing != nil {
			if err := tracing.InstrumentRedis(client); err != nil {
				a.close()
				return nil, fmt.Errorf("trace Redis calls: %w", err)
			}
		}
	}
	tokens := token.New(token.Config{
		Store:         a.store,
		Keys:          km,
		Now:           a.now,
		AccessTTL:     cfg.AccessTTL,
		RefreshTTL:    cfg.RefreshTTL,
		MaxAccessTTL:  cfg.MaxAccessTTL,
		MaxRefreshTTL: cfg.MaxRefreshTTL,
		RefreshGrace:  cfg.RefreshGrace,
		Audit:         auditor,
		Events:        events,
		Observer:      metrics,
	})
	lc := lifecycle.Config{Tenants: a.tenants, Keys: km, Tokens: tokens}
	// The development bootstrap is no RPC and has its own log line: it writes no audit events.
	a.devLifecycle = lifecycle.New(lc)
	lc.Audit = auditor
	a.grpc, err = grpcserver.New(grpcserver.Config{Tokens: tokens, Keys: km, Tenants: a.tenants, Lifecycle: lifecycle.New(lc),
		Logger: log, Registerer: reg,
		Revocations: a.hub, StatsHandler: statsHandler, WatchObserver: metrics, Now: a.now, StoreTimeout: cfg.StoreTimeout,
		WatchRecheck: cfg.WatchRecheck, MaxWatchesPerTenant: cfg.MaxWatchesPerTenant, MaxPublicStreams: cfg.MaxPublicStreams,
		MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
		AuthenticateReflection: cfg.Production(), ExtAuthz: extAuthz, TLS: a.grpcTLS()})
	if err != nil {
		a.close()
		return nil, err
	}
	a.http = &http.Server{
		Handler: httpserver.New(httpserver.Config{
			Keys: km, Gatherer: reg, Ready: a.ready.Load, Logger: log,
			// Below the pre-publish delay: a cache that honours it has every new key before the key
			// signs.
			JWKSMaxAge: keys.JWKSMaxAge(cfg.KeyPrePublish),
			OAuth:      a.grpc.OAuth,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
	}
	if a.tls != nil {
		a.http.TLSConfig = a.tls.HTTP()
		// Failed handshakes (scanners, plaintext clients, refused client certificates) are the
		// callers' problem, as refused RPCs are: debug level, as the gRPC server logs them.
		a.http.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return a, nil
}

// grpcTLS returns the gRPC listener's TLS configuration, nil in plaintext.
func (a *App) grpcTLS() *tls.Config {
	if a.tls == nil {
		return nil
	}
	return a.tls.GRPC()
}

// tlsPollInterval is how often the TLS files are checked for a change; tests shorten it.
var tlsPollInterval = tlsfiles.DefaultPollInterval

// Run serves until ctx is done, then stops gracefully: in-flight calls finish, bounded by the
// shutdown timeout. It returns an error when a listener fails or the stored keys cannot be opened.
func (a *App) Run(ctx context.Context) error {
	grpcLis, err := net.Listen("tcp", a.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen on TOKENAUTHORITY_GRPC_ADDR: %w", err)
	}
	httpLis, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		_ = grpcLis.Close()
		return fmt.Errorf("listen on TOKENAUTHORITY_HTTP_ADDR: %w", err)
	}
	return a.Serve(ctx, grpcLis, httpLis)
}

// Serve is Run on given listeners.
func (a *App) Serve(ctx context.Context, grpcLis, httpLis net.Listener) error {
	defer a.close()
	// The first readiness check runs before serving, so that a wrong key-encryption key stops
	// start-up instead of serving with unreadable keys.
	if err := a.checkReady(ctx); err != nil {
		return err
	}
	a.log.Info("serving", slog.String("grpc", grpcLis.Addr().String()), slog.String("http", httpLis.Addr().String()),
		slog.String("env", string(a.cfg.Env)))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.grpc.GRPC.Serve(grpcLis) })
	g.Go(func() error {
		// A key withdrawn or published is announced in the tenant's revocation log: re-read its
		// key set at once rather than at the next periodic refresh (other events leave it be).
		for n := range a.events.Notifications(gctx) {
			t, key := revocation.ParseNotice(n)
			if !key {
				continue
			}
			if err := a.keys.RefreshTenant(gctx, t); err != nil && gctx.Err() == nil {
				a.log.Warn("refreshing a key set after a revocation event failed", slog.String("tenant", t), slog.String("error", err.Error()))
			}
		}
		return nil
	})
	g.Go(func() error {
		serve := a.http.Serve
		if a.tls != nil {
			// The certificate is the one the TLS configuration holds now, not a file's.
			serve = func(l net.Listener) error { return a.http.ServeTLS(l, "", "") }
		}
		if err := serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	if a.tls != nil {
		g.Go(func() error {
			a.tls.Run(gctx, tlsPollInterval)
			return nil
		})
	}
	g.Go(func() error { return a.watchStore(gctx) })
	g.Go(func() error { return a.refreshKeys(gctx) })
	g.Go(func() error {
		a.resealKeys(gctx, resealInterval)
		return nil
	})
	g.Go(func() error {
		a.indexAPIKeys(gctx, time.Second)
		return nil
	})
	g.Go(func() error {
		a.hub.Run(gctx)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		a.shutdown()
		return nil
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// shutdown stops both servers, letting in-flight calls finish within the shutdown timeout.
func (a *App) shutdown() {
	a.log.Info("shutting down", slog.Duration("timeout", a.cfg.ShutdownTimeout))
	a.ready.Store(false)
	a.grpc.SetServing(false)
	// Revocation streams never end on their own: end them first, so that their watchers reconnect
	// to another replica and GracefulStop waits only for the unary calls in flight.
	a.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		a.grpc.GRPC.GracefulStop()
		close(done)
	}()
	_ = a.http.Shutdown(ctx)
	select {
	case <-done:
	case <-ctx.Done():
		a.log.Warn("shutdown timeout reached; cancelling the remaining calls")
		a.grpc.GRPC.Stop()
	}
}

// newTracing starts tracing to spans, or to the OTLP collector when spans is nil.
func newTracing(spans sdktrace.SpanProcessor) (*telemetry.Tracing, error) {
	ctx := context.Background()
	if spans == nil {
		exp, err := telemetry.NewOTLPExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("TOKENAUTHORITY_TRACING: %w", err)
		}
		spans = sdktrace.NewBatchSpanProcessor(exp)
	}
	t, err := telemetry.NewTracing(ctx, spans)
	if err != nil {
		_ = spans.Shutdown(ctx)
		return nil, fmt.Errorf("TOKENAUTHORITY_TRACING: %w", err)
	}
	return t, nil
}

func (a *App) close() {
	for _, c := range a.closers {
		_ = c()
	}
}

// watchStore keeps readiness in line with the store, once a second, until ctx is done.
func (a *App) watchStore(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := a.checkReady(ctx); err != nil {
				return err
			}
		}
	}
}

// refreshKeys re-reads the cached key sets once a second, so that a key rotated or withdrawn
// through another replica takes effect here within about a second.
func (a *App) refreshKeys(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := a.keys.Refresh(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("refreshing signing keys failed; keeping the cached ones", slog.String("error", err.Error()))
			}
		}
	}
}

// bootstrapLost reports whether the store has lost the mark of the development bootstrap, as a
// Redis restarted without its data has. It looks at the mark, not at the dev tenant or key: those
// an operator may have deleted, and they must stay deleted. A failed read reports nothing lost:
// the next probe looks again.
func (a *App) bootstrapLost(ctx context.Context) bool {
	if a.cfg.Production() {
		return false
	}
	done, err := a.devBootstrapped(ctx)
	return err == nil && !done
}

// checkReady pings the store, runs the bootstrap once it answers, and updates readiness. Only a
// fatal problem (keys that cannot be opened) is returned.
func (a *App) checkReady(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ok := a.store.Ping(pctx) == nil
	if ok && a.redis != nil && !a.redisChecked.Load() {
		if err := checkRedis(pctx, a.redis, a.cfg.Production(), a.cfg.RedisAllowEviction, a.log); err != nil {
			return err
		}
		a.redisChecked.Store(true)
	}
	// Bootstrap again whenever the store comes back, since it may have come back empty, and
	// whenever the bootstrap's mark is gone: a store restarted empty between two probes never
	// looked unreachable. The development bootstrap itself runs only where the mark is missing.
	if ok && (!a.booted.Load() || !a.ready.Load() || a.bootstrapLost(pctx)) {
		if err := a.bootstrap(pctx); err != nil {
			if errors.Is(err, keys.ErrWrongKEK) {
				return fmt.Errorf("%w: check %s", err, a.cfg.KeyEncryptionKeySources())
			}
			a.log.Warn("bootstrap failed; will retry", slog.String("error", err.Error()))
			ok = false
		} else {
			a.booted.Store(true)
		}
	}
	if ok != a.ready.Load() {
		if ok {
			a.log.Info("token store reachable: serving")
		} else {
			a.log.Warn("token store unreachable: not serving")
		}
	}
	a.ready.Store(ok)
	a.grpc.SetServing(ok)
	return nil
}
