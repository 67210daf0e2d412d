package authn

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Defaults of the options.
const (
	// DefaultLeeway is the authority's own leeway (30s), so that an interceptor and VerifyToken
	// agree on a token whose times are a few seconds off.
	DefaultLeeway             = accesstoken.DefaultLeeway
	DefaultKeyRefreshInterval = 5 * time.Second
	DefaultStalenessBound     = 10 * time.Second
	DefaultCacheSize          = 4096
	DefaultCacheTTL           = 5 * time.Second
	DefaultCallTimeout        = 5 * time.Second
	DefaultReconnectDelay     = 100 * time.Millisecond
	DefaultMaxReconnectDelay  = 5 * time.Second
)

// Option configures NewLocal, NewRemote and NewStatic. Each option says which of them it
// applies to; the others ignore it.
type Option interface{ applyVerifier(*config) }

// SourceOption configures NewTokenSource.
type SourceOption interface{ applySource(*sourceConfig) }

// SharedOption configures both verifiers and token sources.
type SharedOption interface {
	Option
	SourceOption
}

type verifierOption func(*config)

func (o verifierOption) applyVerifier(c *config) { o(c) }

type sharedOption struct {
	verifier func(*config)
	source   func(*sourceConfig)
}

func (o sharedOption) applyVerifier(c *config)     { o.verifier(c) }
func (o sharedOption) applySource(c *sourceConfig) { o.source(c) }

// config is the verifiers' configuration.
type config struct {
	audience    string
	anyAudience bool
	issuer      string
	now         func() time.Time
	logger      *slog.Logger
	callTimeout time.Duration

	leeway     time.Duration
	keyRefresh time.Duration
	staleness  time.Duration
	backoffMin time.Duration
	backoffMax time.Duration

	cacheSize   int
	cacheTTL    time.Duration
	inactiveTTL time.Duration
	watch       bool

	// forwardedClientCert takes the client certificate from x-forwarded-client-cert.
	forwardedClientCert bool
}

func newConfig(opts []Option) *config {
	c := &config{
		now:         time.Now,
		logger:      slog.New(slog.DiscardHandler),
		callTimeout: DefaultCallTimeout,
		leeway:      DefaultLeeway,
		keyRefresh:  DefaultKeyRefreshInterval,
		staleness:   DefaultStalenessBound,
		backoffMin:  DefaultReconnectDelay,
		backoffMax:  DefaultMaxReconnectDelay,
		cacheSize:   DefaultCacheSize,
		cacheTTL:    DefaultCacheTTL,
	}
	for _, o := range opts {
		if o != nil {
			o.applyVerifier(c)
		}
	}
	return c
}

// mode names the constructor being configured, for validation.
type mode int

const (
	modeLocal mode = iota
	modeRemote
	modeStatic
)

// validate reports every problem of c for m at once.
func (c *config) validate(m mode) error {
	var errs []error
	if c.audience == "" && !c.anyAudience {
		errs = append(errs, errors.New("no audience: pass WithAudience (or WithAnyAudience to accept tokens for any service of the tenant)"))
	}
	if m == modeStatic && c.issuer == "" {
		errs = append(errs, errors.New("no issuer: NewStatic needs WithIssuer (the tenant's issuer)"))
	}
	if c.now == nil {
		errs = append(errs, errors.New("WithClock: nil clock"))
	}
	if c.logger == nil {
		errs = append(errs, errors.New("WithLogger: nil logger"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{
		{"WithLeeway", c.leeway, 0},
		{"WithKeyRefreshInterval", c.keyRefresh, 0},
		{"WithStalenessBound", c.staleness, time.Millisecond},
		{"WithCallTimeout", c.callTimeout, time.Millisecond},
		{"WithCacheTTL", c.cacheTTL, 0},
		{"WithInactiveCacheTTL", c.inactiveTTL, 0},
		{"WithReconnectBackoff (min)", c.backoffMin, time.Millisecond},
	} {
		if d.v < d.min {
			errs = append(errs, fmt.Errorf("%s: %v is below %v", d.name, d.v, d.min))
		}
	}
	if c.backoffMax < c.backoffMin {
		errs = append(errs, fmt.Errorf("WithReconnectBackoff: max %v is below min %v", c.backoffMax, c.backoffMin))
	}
	if c.cacheSize < 0 {
		errs = append(errs, fmt.Errorf("WithCacheSize: %d is negative", c.cacheSize))
	}
	return errors.Join(errs...)
}

// WithAudience makes the verifier accept only tokens whose aud contains audience (the service's
// own name); others fail with ErrWrongAudience (PermissionDenied). Of WithAudience and
// WithAnyAudience, the last given wins. All verifiers.
func WithAudience(audience string) Option {
	return verifierOption(func(c *config) { c.audience, c.anyAudience = audience, false })
}

// WithAnyAudience makes the verifier accept tokens for any audience of the tenant. A verifier
// needs either it or WithAudience, so that accepting any audience is a decision. All verifiers.
func WithAnyAudience() Option {
	return verifierOption(func(c *config) { c.audience, c.anyAudience = "", true })
}

// WithIssuer sets the tenant's issuer, which a token's iss must equal. NewLocal takes the one the
// authority names with the keys when it is not set. Required by
// NewStatic; NewRemote checks it too when set.
func WithIssuer(issuer string) Option {
	return verifierOption(func(c *config) { c.issuer = issuer })
}

// WithLeeway sets the clock skew tolerated on exp, nbf and iat (default DefaultLeeway). Local and
// static verifiers.
func WithLeeway(d time.Duration) Option {
	return verifierOption(func(c *config) { c.leeway = d })
}

// WithKeyRefreshInterval sets how often, at most, a token with an unknown kid makes the local
// verifier fetch the keys again (default DefaultKeyRefreshInterval). NewLocal.
func WithKeyRefreshInterval(d time.Duration) Option {
	return verifierOption(func(c *config) { c.keyRefresh = d })
}

// WithStalenessBound sets how long the revocation stream may stay silent before the local verifier
// fails closed (default DefaultStalenessBound). The authority sends a heartbeat every second, so a
// few seconds suffice. It also bounds, in NewRemote with WithRevocationWatch, how long the cache
// is trusted without news. NewLocal, NewRemote.
func WithStalenessBound(d time.Duration) Option {
	return verifierOption(func(c *config) { c.staleness = d })
}

// WithReconnectBackoff sets the bounds of the jittered exponential backoff between attempts to
// reopen the revocation stream (defaults DefaultReconnectDelay, DefaultMaxReconnectDelay). NewLocal,
// NewRemote.
func WithReconnectBackoff(minimum, maximum time.Duration) Option {
	return verifierOption(func(c *config) { c.backoffMin, c.backoffMax = minimum, maximum })
}

// WithCacheSize sets how many answers the remote verifier caches, and how many verified tokens the
// local and static verifiers remember (default DefaultCacheSize); 0 disables the cache. A local
// verifier checks a token's signature, header and claims once, then, while the token is presented
// again, only what can change: the clock, revocations and cut-offs, its key's presence, the
// audience. Each entry holds the token and its claims (about 1 KiB for a typical token).
func WithCacheSize(n int) Option {
	return verifierOption(func(c *config) { c.cacheSize = n })
}

// WithCacheTTL sets how long the remote verifier caches an active answer (default
// DefaultCacheTTL); an entry never outlives its token's exp either. NewRemote.
func WithCacheTTL(d time.Duration) Option {
	return verifierOption(func(c *config) { c.cacheTTL = d })
}

// WithInactiveCacheTTL sets how long the remote verifier caches an inactive answer (default 0:
// not at all). A short one spares the authority a client that retries a bad token. NewRemote.
func WithInactiveCacheTTL(d time.Duration) Option {
	return verifierOption(func(c *config) { c.inactiveTTL = d })
}

// WithRevocationWatch makes the remote verifier watch the revocation stream and evict the cached
// answers each event covers; while the stream is not live the cache is bypassed. NewRemote.
func WithRevocationWatch() Option {
	return verifierOption(func(c *config) { c.watch = true })
}

// WithClock sets the clock (default time.Now), for tests. It drives token times, cache expiry and
// the staleness bound; backoff and the stream's idle timeout use real time. All.
func WithClock(now func() time.Time) SharedOption {
	return sharedOption{
		verifier: func(c *config) { c.now = now },
		source:   func(c *sourceConfig) { c.now = now },
	}
}

// WithLogger sets where reconnects, unusable keys and refresh failures are logged (default:
// nowhere). All.
func WithLogger(l *slog.Logger) SharedOption {
	return sharedOption{
		verifier: func(c *config) { c.logger = l },
		source:   func(c *sourceConfig) { c.logger = l },
	}
}

// WithCallTimeout bounds each unary call to the authority (default DefaultCallTimeout). All.
func WithCallTimeout(d time.Duration) SharedOption {
	return sharedOption{
		verifier: func(c *config) { c.callTimeout = d },
		source:   func(c *sourceConfig) { c.callTimeout = d },
	}
}
