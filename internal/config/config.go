package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Env is the deployment environment: EnvDevelopment or EnvProduction.
type Env string

// The deployment environments.
const (
	// EnvDevelopment is the default: local addresses, an in-memory store when no Redis URL is
	// given, and secrets generated in the data directory when not given.
	EnvDevelopment Env = "development"
	// EnvProduction listens on every interface, logs JSON, and requires a Redis URL and every
	// secret. It must be chosen explicitly.
	EnvProduction Env = "production"
)

// Log formats.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

// Tracing modes.
const (
	// TracingOff, the default, installs nothing of OpenTelemetry.
	TracingOff = "off"
	// TracingOTLP sends spans of RPCs and Redis calls over OTLP/gRPC, to the collector that the
	// standard OTEL_EXPORTER_OTLP_* variables name (localhost:4317 by default).
	TracingOTLP = "otlp"
)

// envPrefix starts the name of every environment variable; fileSuffix ends the variable naming
// the file that holds a secret.
const (
	envPrefix  = "TOKENAUTHORITY_"
	fileSuffix = "_FILE"
)

// Environment variables. The flag of each is flagName(variable).
const (
	varEnv                = envPrefix + "ENV"
	varGRPCAddr           = envPrefix + "GRPC_ADDR"
	varHTTPAddr           = envPrefix + "HTTP_ADDR"
	varRedisURL           = envPrefix + "REDIS_URL"
	varDataDir            = envPrefix + "DATA_DIR"
	varMasterKey          = envPrefix + "MASTER_KEY"
	varKeyEncryptionKey   = envPrefix + "KEY_ENCRYPTION_KEY"
	varRefreshGrace       = envPrefix + "REFRESH_GRACE"
	varAccessTTL          = envPrefix + "ACCESS_TTL"
	varRefreshTTL         = envPrefix + "REFRESH_TTL"
	varMaxAccessTTL       = envPrefix + "MAX_ACCESS_TTL"
	varMaxRefreshTTL      = envPrefix + "MAX_REFRESH_TTL"
	varShutdownTimeout    = envPrefix + "SHUTDOWN_TIMEOUT"
	varKeyPrePublish      = envPrefix + "KEY_PREPUBLISH"
	varLogLevel           = envPrefix + "LOG_LEVEL"
	varLogFormat          = envPrefix + "LOG_FORMAT"
	varTracing            = envPrefix + "TRACING"
	varRedisAllowEviction = envPrefix + "REDIS_ALLOW_EVICTION"
	varStoreTimeout       = envPrefix + "STORE_TIMEOUT"
	varMasterKeyPrevious  = varMasterKey + "_PREVIOUS"

	varWatchRecheck          = envPrefix + "WATCH_RECHECK"
	varMaxConnectionAge      = envPrefix + "MAX_CONNECTION_AGE"
	varMaxConnectionAgeGrace = envPrefix + "MAX_CONNECTION_AGE_GRACE"
	varMaxPublicStreams      = envPrefix + "MAX_PUBLIC_STREAMS"
	varMaxWatchesPerTenant   = envPrefix + "MAX_WATCHES_PER_TENANT"

	varExtAuthzPolicy    = envPrefix + "EXTAUTHZ_POLICY"
	varTLSCertFile       = envPrefix + "TLS_CERT_FILE"
	varTLSKeyFile        = envPrefix + "TLS_KEY_FILE"
	varTLSClientCAFile   = envPrefix + "TLS_CLIENT_CA_FILE"
	varTLSClientAuth     = envPrefix + "TLS_CLIENT_AUTH"
	varInsecurePlaintext = envPrefix + "INSECURE_PLAINTEXT"
)

// Client certificate policies (TOKENAUTHORITY_TLS_CLIENT_AUTH).
const (
	// ClientAuthOptional asks for a client certificate and verifies one that is presented.
	ClientAuthOptional = "optional"
	// ClientAuthRequire refuses a handshake without a verified client certificate.
	ClientAuthRequire = "require"
)

// Defaults that do not depend on the environment, and bounds, used by the settings table.
const (
	defaultDataDir         = ".data"
	defaultStoreTimeout    = time.Second
	maxStoreTimeout        = 30 * time.Second
	defaultRefreshGrace    = 5 * time.Second
	maxRefreshGrace        = time.Minute
	defaultAccessTTL       = 15 * time.Minute
	defaultRefreshTTL      = 168 * time.Hour
	defaultMaxAccessTTL    = time.Hour
	defaultMaxRefreshTTL   = 720 * time.Hour
	defaultShutdownTimeout = 10 * time.Second
	// defaultKeyPrePublish outlasts the JWKS caches of the usual mesh consumers, which do not
	// refetch on an unknown kid: Envoy's jwt_authn (10 minutes) and istiod (20 minutes), with
	// room for istiod's push to its proxies (docs/operations.md).
	defaultKeyPrePublish = 30 * time.Minute
	maxKeyPrePublish     = 24 * time.Hour

	// The defaults of the server's limits are grpcserver's (grpcserver.DefaultWatchRecheck, ...);
	// config does not import the server, so they are repeated here, once, for the settings table.
	defaultWatchRecheck          = 2 * time.Second
	minWatchRecheck              = 100 * time.Millisecond
	maxWatchRecheck              = time.Minute
	defaultMaxConnectionAge      = 30 * time.Minute
	minMaxConnectionAge          = time.Minute
	maxMaxConnectionAge          = 24 * time.Hour
	defaultMaxConnectionAgeGrace = time.Minute
	minMaxConnectionAgeGrace     = time.Second
	maxMaxConnectionAgeGrace     = time.Hour
	defaultMaxPublicStreams      = 1024
	defaultMaxWatchesPerTenant   = 2048
	maxStreamLimit               = 1_000_000
)

// setting is one flag and its variable: its usage text and, for a setting read on its own, its
// typed default in each environment, its parser and its rules, in read. The defaults shown in the
// usage text are derived from the typed ones, so that each default is written once.
type setting struct {
	env     string // environment variable
	arg     string // placeholder for the value in the usage text
	help    string
	devDef  string // default in development, shown in the usage text
	prodDef string // default in production, if it differs
	// read parses the setting into c, applying its default, its parser and its rules (production
	// ones included: prod reports the environment read so far). It is nil for a setting read with
	// another, as a _FILE form with its value.
	read func(p *parser, c *Config, prod bool)
}

// perEnv is a typed default that may differ in production.
type perEnv[T comparable] struct{ dev, prod T }

// same is a default that does not depend on the environment.
func same[T comparable](v T) perEnv[T] { return perEnv[T]{v, v} }

// in returns the default in the environment.
func (d perEnv[T]) in(prod bool) T {
	if prod {
		return d.prod
	}
	return d.dev
}

// shown returns the usage text's defaults: in development, and in production if it differs.
func (d perEnv[T]) shown(format func(T) string) (dev, prod string) {
	var zero T
	if d.dev != zero {
		dev = format(d.dev)
	}
	if d.prod != d.dev {
		prod = format(d.prod)
	}
	return dev, prod
}

// plain describes a setting without a default of its own, read by read (nil if read with another).
func plain(env, arg, help string, read func(p *parser, c *Config, prod bool)) setting {
	return setting{env: env, arg: arg, help: help, read: read}
}

// text is a string setting.
func text(env, arg, help string, def string, field func(*Config) *string) setting {
	s := setting{env: env, arg: arg, help: help, devDef: def}
	s.read = func(p *parser, c *Config, _ bool) { *field(c) = p.str(env, def) }
	return s
}

// address is a listen address (host:port).
func address(env, help string, def perEnv[string], field func(*Config) *string) setting {
	s := setting{env: env, arg: "host:port", help: help}
	s.devDef, s.prodDef = def.shown(func(v string) string { return v })
	s.read = func(p *parser, c *Config, prod bool) { *field(c) = p.addr(env, def.in(prod)) }
	return s
}

// choice is a string setting that takes one of allowed; set stores it.
func choice(env, arg, help string, def perEnv[string], allowed []string, set func(*Config, string)) setting {
	s := setting{env: env, arg: arg, help: help}
	s.devDef, s.prodDef = def.shown(func(v string) string { return v })
	s.read = func(p *parser, c *Config, prod bool) { set(c, p.oneOf(env, def.in(prod), allowed...)) }
	return s
}

// boolean is a setting of true or false, false by default.
func boolean(env, help string, field func(*Config) *bool) setting {
	s := setting{env: env, arg: "bool", help: help, devDef: "false"}
	s.read = func(p *parser, c *Config, _ bool) { *field(c) = p.oneOf(env, "false", "false", "true") == "true" }
	return s
}

// duration is a duration setting; check, if not nil, validates it (c holds the settings read
// before it).
func duration(env, help string, def time.Duration, check func(p *parser, c *Config, d time.Duration) error,
	field func(*Config) *time.Duration) setting {
	s := setting{env: env, arg: "duration", help: help, devDef: def.String()}
	s.read = func(p *parser, c *Config, _ bool) {
		var bound func(time.Duration) error
		if check != nil {
			bound = func(d time.Duration) error { return check(p, c, d) }
		}
		*field(c) = p.duration(env, def, bound)
	}
	return s
}

// count is a whole number from 1 to hi.
func count(env, help string, def, hi int, field func(*Config) *int) setting {
	s := setting{env: env, arg: "n", help: help, devDef: strconv.Itoa(def)}
	s.read = func(p *parser, c *Config, _ bool) { *field(c) = p.count(env, def, hi) }
	return s
}

// between returns a check that a duration is from lo to hi.
func between(lo, hi time.Duration) func(*parser, *Config, time.Duration) error {
	return func(_ *parser, _ *Config, d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("must be between %v and %v, got %v", lo, hi, d)
		}
		return nil
	}
}

// positive checks that a duration is positive.
func positive(_ *parser, _ *Config, d time.Duration) error {
	return checkPositive(d)
}

// atLeast returns a check that a duration is positive and, if the setting lowerEnv was valid, at
// least its value.
func atLeast(lowerEnv string, lower func(*Config) time.Duration) func(*parser, *Config, time.Duration) error {
	return func(p *parser, c *Config, d time.Duration) error {
		if err := checkPositive(d); err != nil {
			return err
		}
		if l := lower(c); !p.bad[lowerEnv] && d < l {
			return fmt.Errorf("must be at least %s (%v), got %v", lowerEnv, l, d)
		}
		return nil
	}
}

// logLevels are the names of the log levels.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// settings lists every flag in the order of the usage text, which is also the order in which
// they are read: a setting's rules may look at those before it.
var settings = []setting{
	{env: varEnv, arg: "name", help: "deployment environment: development or production; production is never the default",
		devDef: string(EnvDevelopment), read: readEnv},
	address(varGRPCAddr, "listen address of the gRPC server", perEnv[string]{"127.0.0.1:50051", ":50051"},
		func(c *Config) *string { return &c.GRPCAddr }),
	address(varHTTPAddr, "listen address of the HTTP server", perEnv[string]{"127.0.0.1:8081", ":8081"},
		func(c *Config) *string { return &c.HTTPAddr }),
	plain(varRedisURL, "url", "Redis URL (redis:// or rediss://); empty in development selects the in-memory store; required in production",
		func(p *parser, c *Config, prod bool) { c.RedisURL = p.redisURL(prod) }),
	plain(varRedisURL+fileSuffix, "path", "file holding the Redis URL, for a URL with a password", nil),
	duration(varStoreTimeout, "the most one call may spend on Redis, go-redis's retries included, before it fails Unavailable; from 10ms to 30s",
		defaultStoreTimeout, between(10*time.Millisecond, maxStoreTimeout), func(c *Config) *time.Duration { return &c.StoreTimeout }),
	boolean(varRedisAllowEviction, "true lets production start on a Redis whose maxmemory-policy evicts keys (it could evict revocation marks, cut-offs and signing keys)",
		func(c *Config) *bool { return &c.RedisAllowEviction }),
	text(varDataDir, "path", "directory that keeps the secrets generated in development", defaultDataDir,
		func(c *Config) *string { return &c.DataDir }),
	plain(varMasterKey, "secret", "master key, at least 32 characters; generated in development when unset (prefer -master-key-file)",
		func(p *parser, c *Config, prod bool) { c.masterKey = p.secret(masterKeyKind, prod) }),
	plain(varMasterKey+fileSuffix, "path", "file holding the master key", nil),
	plain(varMasterKeyPrevious, "secret", "the master key being rotated away from, accepted alongside the current one during a rolling change (prefer -master-key-previous-file)",
		func(p *parser, c *Config, _ bool) { c.previousMaster = p.secret(masterKeyPreviousKind, false) }),
	plain(varMasterKeyPrevious+fileSuffix, "path", "file holding the previous master key", nil),
	plain(varKeyEncryptionKey, "base64", "key-encryption key, standard base64 of 32 bytes (openssl rand -base64 32); generated in development when unset (prefer -key-encryption-key-file)",
		func(p *parser, c *Config, prod bool) { c.keyEncryptionKey = p.secret(keyEncryptionKeyKind, prod) }),
	plain(varKeyEncryptionKey+fileSuffix, "path", "file holding the key-encryption key", nil),
	plain(varKeyEncryptionKeyPrevious, "base64,...", "key-encryption keys being rotated away from, comma-separated: they open stored keys, which are re-sealed under the current key in the background, and never seal",
		func(p *parser, c *Config, _ bool) { c.previousKEKs = p.secret(keyEncryptionKeyPreviousKind, false) }),
	plain(varKeyEncryptionKeyPrevious+fileSuffix, "path", "file holding the previous key-encryption keys, one per line", nil),
	duration(varRefreshGrace, "window in which a retried refresh gets the same answer, from 0s to 1m", defaultRefreshGrace,
		between(0, maxRefreshGrace), func(c *Config) *time.Duration { return &c.RefreshGrace }),
	duration(varAccessTTL, "default access-token lifetime", defaultAccessTTL, positive,
		func(c *Config) *time.Duration { return &c.AccessTTL }),
	duration(varRefreshTTL, "default session lifetime", defaultRefreshTTL, positive,
		func(c *Config) *time.Duration { return &c.RefreshTTL }),
	duration(varMaxAccessTTL, "longest access-token lifetime, at least -access-ttl", defaultMaxAccessTTL,
		atLeast(varAccessTTL, func(c *Config) time.Duration { return c.AccessTTL }), func(c *Config) *time.Duration { return &c.MaxAccessTTL }),
	duration(varMaxRefreshTTL, "longest session lifetime, at least -refresh-ttl", defaultMaxRefreshTTL,
		atLeast(varRefreshTTL, func(c *Config) time.Duration { return c.RefreshTTL }), func(c *Config) *time.Duration { return &c.MaxRefreshTTL }),
	duration(varShutdownTimeout, "time allowed for a graceful shutdown", defaultShutdownTimeout, positive,
		func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	text(varExtAuthzPolicy, "path", "per-route policy (JSON) of the Envoy ext_authz service (envoy.service.auth.v3.Authorization) on the gRPC port; the service is not served when empty", "",
		func(c *Config) *string { return &c.ExtAuthzPolicy }),
	duration(varKeyPrePublish, "how long a rotated signing key is published before it signs: longer than every consumer caches the JWKS (the JWKS's max-age stays below it), from 0s to 24h",
		defaultKeyPrePublish, between(0, maxKeyPrePublish), func(c *Config) *time.Duration { return &c.KeyPrePublish }),
	choice(varLogLevel, "level", "log level: debug, info, warn or error", same("info"), []string{"debug", "info", "warn", "error"},
		func(c *Config, v string) { c.LogLevel = logLevels[v] }),
	choice(varLogFormat, "format", "log format: text or json", perEnv[string]{logFormatText, logFormatJSON}, []string{logFormatText, logFormatJSON},
		func(c *Config, v string) { c.LogFormat = v }),
	choice(varTracing, "mode", "OpenTelemetry tracing of RPCs and Redis calls: off, or otlp (to the collector named by the standard OTEL_EXPORTER_OTLP_* variables)",
		same(TracingOff), []string{TracingOff, TracingOTLP}, func(c *Config, v string) { c.Tracing = v }),
	duration(varWatchRecheck, "how often a WatchRevocations stream re-checks its API key and tenant, from 100ms to 1m", defaultWatchRecheck,
		between(minWatchRecheck, maxWatchRecheck), func(c *Config) *time.Duration { return &c.WatchRecheck }),
	duration(varMaxConnectionAge, "age at which a gRPC connection is asked to reconnect, from 1m to 24h", defaultMaxConnectionAge,
		between(minMaxConnectionAge, maxMaxConnectionAge), func(c *Config) *time.Duration { return &c.MaxConnectionAge }),
	duration(varMaxConnectionAgeGrace, "time the calls still open on an aged connection may run, from 1s to 1h", defaultMaxConnectionAgeGrace,
		between(minMaxConnectionAgeGrace, maxMaxConnectionAgeGrace), func(c *Config) *time.Duration { return &c.MaxConnectionAgeGrace }),
	count(varMaxPublicStreams, "streams without a credential (health watches) open at once on this replica, at most 1000000",
		defaultMaxPublicStreams, maxStreamLimit, func(c *Config) *int { return &c.MaxPublicStreams }),
	count(varMaxWatchesPerTenant, "WatchRevocations streams of one tenant open at once on this replica, at most 1000000",
		defaultMaxWatchesPerTenant, maxStreamLimit, func(c *Config) *int { return &c.MaxWatchesPerTenant }),
	text(varTLSCertFile, "path", "PEM certificate (a chain is allowed) served by the gRPC and HTTP ports; re-read when the file changes. Required in production unless -insecure-plaintext", "",
		func(c *Config) *string { return &c.TLSCertFile }),
	text(varTLSKeyFile, "path", "PEM private key of -tls-cert-file; re-read with it", "",
		func(c *Config) *string { return &c.TLSKeyFile }),
	text(varTLSClientCAFile, "path", "PEM bundle of the CAs that client certificates must chain to: the server asks for client certificates (mutual TLS) and verifies those presented; re-read when the file changes", "",
		func(c *Config) *string { return &c.TLSClientCAFile }),
	choice(varTLSClientAuth, "policy", "optional (a client certificate is verified when presented) or require (refused without one); needs -tls-client-ca-file",
		same(ClientAuthOptional), []string{ClientAuthOptional, ClientAuthRequire}, func(c *Config, v string) { c.TLSClientAuth = v }),
	boolean(varInsecurePlaintext, "true lets production serve plaintext, when a mesh or proxy in front terminates TLS (a warning is logged at start)",
		func(c *Config) *bool { return &c.InsecurePlaintext }),
}

// flagName returns the flag of an environment variable: TOKENAUTHORITY_GRPC_ADDR -> grpc-addr.
func flagName(env string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, envPrefix), "_", "-"))
}

// Config is the validated configuration of the authority. Build it with Parse, then call
// ResolveSecrets to fill MasterKey and KeyEncryptionKey.
//
// Config redacts its secrets and the password of the Redis URL when printed with fmt, marshaled to
// JSON, or logged with log/slog; those methods have value receivers so that a Config value is
// covered as well as a pointer.
type Config struct {
	Env Env

	// GRPCAddr and HTTPAddr are listen addresses (host:port).
	GRPCAddr, HTTPAddr string
	// RedisURL is a go-redis URL; empty selects the in-memory store (development only). It may
	// hold a password: never log it as is.
	RedisURL string
	// DataDir keeps the secrets generated in development.
	DataDir string

	// RefreshGrace is the window in which a retried refresh gets the same answer.
	RefreshGrace time.Duration
	// AccessTTL and RefreshTTL are the default lifetimes of an access token and of a session;
	// MaxAccessTTL and MaxRefreshTTL bound what a request may ask for.
	AccessTTL, RefreshTTL, MaxAccessTTL, MaxRefreshTTL time.Duration
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration
	// KeyPrePublish is how long a rotated signing key is in the JWKS before it signs; the JWKS's
	// cache lifetime stays below it (keys.JWKSMaxAge).
	KeyPrePublish time.Duration

	LogLevel slog.Level
	// LogFormat is "text" or "json".
	LogFormat string
	// Tracing is TracingOff or TracingOTLP.
	Tracing string
	// RedisAllowEviction lets production start on a Redis whose maxmemory-policy evicts keys.
	RedisAllowEviction bool
	// StoreTimeout bounds the Redis work of one call, retries included.
	StoreTimeout time.Duration

	// WatchRecheck is how often a WatchRevocations stream re-checks its credential.
	WatchRecheck time.Duration
	// MaxConnectionAge and MaxConnectionAgeGrace end every gRPC connection after that age, its
	// open calls given the grace.
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// MaxPublicStreams bounds the streams without a credential open at once;
	// MaxWatchesPerTenant the WatchRevocations streams of one tenant.
	MaxPublicStreams, MaxWatchesPerTenant int

	// ExtAuthzPolicy is the path of the per-route policy of the ext_authz service; the service
	// is not served when it is empty.
	ExtAuthzPolicy string
	// TLSCertFile and TLSKeyFile, when set, make both ports serve TLS; empty serves plaintext.
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile, when set, makes the ports ask for client certificates and verify them
	// against its bundle; TLSClientAuth (ClientAuthOptional or ClientAuthRequire) says whether
	// one is mandatory.
	TLSClientCAFile, TLSClientAuth string
	// InsecurePlaintext lets production serve plaintext behind a mesh or proxy that terminates TLS.
	InsecurePlaintext bool

	// MasterKey is resolved by ResolveSecrets.
	MasterKey Secret
	// KeyEncryptionKey is 32 bytes, resolved by ResolveSecrets. It is not a Secret because it is
	// used as a key; never print it.
	KeyEncryptionKey []byte
	// PreviousKeyEncryptionKeys are 32 bytes each, resolved by ResolveSecrets: keys that open
	// stored signing keys but never seal them, during a rotation of the key-encryption key.
	PreviousKeyEncryptionKeys [][]byte
	// PreviousMasterKey, set by ResolveSecrets when configured, is accepted like MasterKey during a
	// rolling change of the master credential.
	PreviousMasterKey Secret

	// masterKey, keyEncryptionKey and previousKEKs remember where Parse found each secret.
	masterKey, keyEncryptionKey, previousKEKs secretSource
	previousMaster                            secretSource
}

// Production reports whether c is the production configuration.
func (c *Config) Production() bool {
	return c.Env == EnvProduction
}

// Parse reads flags from args (without the program name) and environment variables through getenv
// (nil means an empty environment), applies defaults, and validates everything in one pass. It
// returns every problem at once, joined with errors.Join, each naming the variable. In production
// a missing Redis URL or secret is an error naming what to set. Secret files are not read here but
// by ResolveSecrets.
//
// -h or -help writes the usage text to usage and returns flag.ErrHelp. A malformed command line
// (an unknown flag, a flag without its value) returns the error of package flag alone, without
// writing to usage.
func Parse(args []string, getenv func(string) string, usage io.Writer) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	if usage == nil {
		usage = io.Discard
	}

	fs := flag.NewFlagSet("tokenauthority", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := make(map[string]*string, len(settings))
	for _, s := range settings {
		values[s.env] = fs.String(flagName(s.env), "", s.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(usage)
			return nil, flag.ErrHelp
		}
		return nil, err
	}
	p := &parser{getenv: getenv, values: values, given: make(map[string]bool), bad: make(map[string]bool)}
	fs.Visit(func(f *flag.Flag) { p.given[f.Name] = true })
	if fs.NArg() > 0 {
		p.errs = append(p.errs, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0)))
	}

	c := &Config{Env: EnvDevelopment}
	for _, s := range settings {
		if s.read != nil {
			s.read(p, c, c.Production())
		}
	}
	p.crossChecks(c)

	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// readEnv reads the environment, which the settings after it are read in.
func readEnv(p *parser, c *Config, _ bool) {
	switch in := p.lookup(varEnv); Env(in.value) {
	case "", EnvDevelopment:
	case EnvProduction:
		c.Env = EnvProduction
	default:
		// The remaining settings are checked against the development defaults.
		p.errorf(in, "must be %q or %q, got %q", EnvDevelopment, EnvProduction, in.value)
	}
}

// crossChecks applies the rules that tie settings together. Production is encrypted unless the
// operator says that something in front terminates TLS.
func (p *parser) crossChecks(c *Config) {
	if !p.bad[varGRPCAddr] && !p.bad[varHTTPAddr] && c.GRPCAddr == c.HTTPAddr && !strings.HasSuffix(c.HTTPAddr, ":0") {
		p.errorf(p.lookup(varHTTPAddr), "must differ from %s, both are %q", varGRPCAddr, c.HTTPAddr)
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		p.errorf(p.lookup(varTLSKeyFile), "must be set with %s", varTLSCertFile)
	case c.TLSCertFile == "" && c.TLSKeyFile != "":
		p.errorf(p.lookup(varTLSCertFile), "must be set with %s", varTLSKeyFile)
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		p.errorf(p.lookup(varTLSClientCAFile), "needs %s and %s: client certificates are asked for in a TLS handshake", varTLSCertFile, varTLSKeyFile)
	}
	if in := p.lookup(varTLSClientAuth); in.value != "" && c.TLSClientCAFile == "" {
		p.errorf(in, "needs %s, the CAs that client certificates are verified against", varTLSClientCAFile)
	}
	if c.InsecurePlaintext && c.TLSCertFile != "" {
		p.errorf(p.lookup(varInsecurePlaintext), "cannot be true with %s set: choose TLS or plaintext", varTLSCertFile)
	}
	if c.Production() && c.TLSCertFile == "" && !c.InsecurePlaintext {
		p.errs = append(p.errs, fmt.Errorf("production serves TLS: set %s and %s, or %s=true when a mesh or proxy in front terminates TLS",
			varTLSCertFile, varTLSKeyFile, varInsecurePlaintext))
	}
}

// TLS reports whether the ports serve TLS.
func (c *Config) TLS() bool {
	return c.TLSCertFile != ""
}

// input is the raw value of one setting and the name to report it under.
type input struct {
	env   string // the variable
	name  string // the variable, or the flag and the variable
	value string
}

// parser gathers the values of the settings and every problem found in them.
type parser struct {
	getenv func(string) string
	values map[string]*string // flag values by variable
	given  map[string]bool    // flags given on the command line, by flag name
	bad    map[string]bool    // variables whose value was refused
	errs   []error
}

// lookup returns the value of the flag of env if it was given, of env otherwise.
func (p *parser) lookup(env string) input {
	return p.lookupFrom(env, p.given[flagName(env)])
}

// lookupFrom returns the value of the flag of env if fromFlag holds, of env otherwise.
func (p *parser) lookupFrom(env string, fromFlag bool) input {
	if fromFlag {
		return input{env: env, name: "-" + flagName(env) + " (" + env + ")", value: *p.values[env]}
	}
	return input{env: env, name: env, value: p.getenv(env)}
}

// errorf records a problem with in. The message must not contain a secret.
func (p *parser) errorf(in input, format string, args ...any) {
	p.bad[in.env] = true
	p.errs = append(p.errs, fmt.Errorf("%s: %s", in.name, fmt.Sprintf(format, args...)))
}

// str returns the value of env, or def if it is empty.
func (p *parser) str(env, def string) string {
	if in := p.lookup(env); in.value != "" {
		return in.value
	}
	return def
}

// oneOf returns the value of env, or def if it is empty; the value must be one of allowed.
func (p *parser) oneOf(env, def string, allowed ...string) string {
	in := p.lookup(env)
	if in.value == "" {
		return def
	}
	for _, a := range allowed {
		if in.value == a {
			return a
		}
	}
	p.errorf(in, "must be one of %s, got %q", strings.Join(allowed, ", "), in.value)
	return def
}

// addr returns the listen address in env, or def if it is empty.
func (p *parser) addr(env, def string) string {
	in := p.lookup(env)
	if in.value == "" {
		return def
	}
	_, port, err := net.SplitHostPort(in.value)
	if err != nil {
		p.errorf(in, "invalid address %q: want host:port", in.value)
		return in.value
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.errorf(in, "invalid port %q in address %q: want a number from 0 to 65535", port, in.value)
	}
	return in.value
}

// redisURL returns the Redis URL, checking only what is needed to report mistakes early: that it
// parses and names a Redis scheme. Messages never contain the URL, which may hold a password.
func (p *parser) redisURL(prod bool) string {
	in, file, ok := p.valueOrFile(varRedisURL)
	if !ok {
		return ""
	}
	if file.value != "" {
		// The URL may hold the Redis password: its file is read like a secret's.
		v, err := readValueFile(file.name, file.value, prod)
		if err != nil {
			p.errs = append(p.errs, err)
			return ""
		}
		in = input{name: file.name, value: v}
	}
	if in.value == "" {
		if prod {
			p.errs = append(p.errs, errors.New(varRedisURL+" (or "+varRedisURL+fileSuffix+") must be set in production"))
		}
		return ""
	}
	u, err := url.Parse(in.value)
	switch {
	case err != nil:
		p.errorf(in, "not a valid URL (value not shown: it may contain a password)")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		p.errorf(in, "scheme must be redis:// or rediss:// (value not shown: it may contain a password)")
	}
	return in.value
}

// duration returns the duration in env, or def if it is empty; check, if not nil, validates it,
// the default included. A refused value is recorded in p.bad.
func (p *parser) duration(env string, def time.Duration, check func(time.Duration) error) time.Duration {
	in := p.lookup(env)
	d, suffix := def, " (the default)"
	if in.value != "" {
		var err error
		if d, err = time.ParseDuration(in.value); err != nil {
			p.errorf(in, "invalid duration %q", in.value)
			return def
		}
		suffix = ""
	}
	if check != nil {
		// A default can conflict with another setting, as MAX_ACCESS_TTL with ACCESS_TTL.
		if err := check(d); err != nil {
			p.errorf(in, "%v%s", err, suffix)
			return d
		}
	}
	return d
}

// count returns the whole number in env, from 1 to hi, or def if it is empty.
func (p *parser) count(env string, def, hi int) int {
	in := p.lookup(env)
	if in.value == "" {
		return def
	}
	n, err := strconv.Atoi(in.value)
	if err != nil || n < 1 || n > hi {
		p.errorf(in, "must be a whole number from 1 to %d, got %q", hi, in.value)
		return def
	}
	return n
}

// checkPositive reports a duration that is not positive.
func checkPositive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %v", d)
	}
	return nil
}

// valueOrFile returns the inputs of a setting given as a value (env) or as the path of a file
// holding it (env+fileSuffix): the Redis URL and every secret. The flags, if either is given,
// replace the variables; within one of them, giving both is an error, recorded here, and ok is
// false.
func (p *parser) valueOrFile(env string) (val, file input, ok bool) {
	fileEnv := env + fileSuffix
	fromFlags := p.given[flagName(env)] || p.given[flagName(fileEnv)]
	val, file = p.lookupFrom(env, fromFlags), p.lookupFrom(fileEnv, fromFlags)
	if val.value != "" && file.value != "" {
		p.errs = append(p.errs, fmt.Errorf("%s and %s are both set: set only one", val.name, file.name))
		return val, file, false
	}
	return val, file, true
}

// readValueFile returns the content of the file at path, which holds the value of the setting
// reported as name (the Redis URL or a secret). In production it refuses a file that others may
// read. Errors name the setting and the path, never the content.
func readValueFile(name, path string, prod bool) (string, error) {
	if prod {
		if err := checkSecretFileMode(path); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
	}
	v, err := readSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// secret returns where the secret of kind k is given; in production it must be.
func (p *parser) secret(k *secretKind, prod bool) secretSource {
	val, file, ok := p.valueOrFile(k.env)
	src := secretSource{valueName: val.name, pathName: file.name}
	switch {
	case !ok:
	case val.value != "":
		if err := k.check(val.value); err != nil {
			p.errorf(val, "%v", err)
		}
		src.value = NewSecret(val.value)
	case file.value != "":
		src.path = file.value
	case prod:
		p.errs = append(p.errs, fmt.Errorf("%s (or %s) must be set in production", k.env, k.env+fileSuffix))
	}
	return src
}

// writeUsage writes the usage text to w.
func writeUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString("Usage: tokenauthority [flags]\n\n")
	b.WriteString("Every flag can also be set with the environment variable shown below it; the flag wins.\n")
	b.WriteString("Secrets are better given as files (-master-key-file, TOKENAUTHORITY_MASTER_KEY_FILE)\n")
	b.WriteString("than as values, which other users of the machine may see.\n\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "  -%s %s\n    \t%s\n    \t%s", flagName(s.env), s.arg, s.help, s.env)
		switch {
		case s.prodDef != "":
			fmt.Fprintf(&b, " (default %s in development, %s in production)", s.devDef, s.prodDef)
		case s.devDef != "":
			fmt.Fprintf(&b, " (default %s)", s.devDef)
		}
		b.WriteString("\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// attrs returns the configuration with its secrets redacted, for printing and logging.
func (c Config) attrs() []slog.Attr {
	return []slog.Attr{
		slog.String("env", string(c.Env)),
		slog.String("grpc_addr", c.GRPCAddr),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("redis_url", redactURL(c.RedisURL)),
		slog.String("data_dir", c.DataDir),
		slog.Duration("refresh_grace", c.RefreshGrace),
		slog.Duration("access_ttl", c.AccessTTL),
		slog.Duration("refresh_ttl", c.RefreshTTL),
		slog.Duration("max_access_ttl", c.MaxAccessTTL),
		slog.Duration("max_refresh_ttl", c.MaxRefreshTTL),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Duration("key_prepublish", c.KeyPrePublish),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
		slog.String("tracing", c.Tracing),
		slog.Bool("redis_allow_eviction", c.RedisAllowEviction),
		slog.Duration("store_timeout", c.StoreTimeout),
		slog.Duration("watch_recheck", c.WatchRecheck),
		slog.Duration("max_connection_age", c.MaxConnectionAge),
		slog.Duration("max_connection_age_grace", c.MaxConnectionAgeGrace),
		slog.Int("max_public_streams", c.MaxPublicStreams),
		slog.Int("max_watches_per_tenant", c.MaxWatchesPerTenant),
		slog.String("tls_cert_file", c.TLSCertFile),
		slog.String("tls_key_file", c.TLSKeyFile),
		slog.String("tls_client_ca_file", c.TLSClientCAFile),
		slog.String("tls_client_auth", c.TLSClientAuth),
		slog.Bool("insecure_plaintext", c.InsecurePlaintext),
		slog.String("master_key", redacted),
		slog.String("key_encryption_key", redacted),
		slog.Int("previous_key_encryption_keys", len(c.PreviousKeyEncryptionKeys)),
		slog.Bool("previous_master_key", !c.PreviousMasterKey.IsZero()),
	}
}

// redactURL returns u with its password replaced, or a placeholder if u does not parse.
func redactURL(u string) string {
	if u == "" {
		return ""
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return "[INVALID URL]"
	}
	return parsed.Redacted()
}

// String returns the configuration with its secrets redacted.
func (c Config) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, a := range c.attrs() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Key)
		b.WriteByte(':')
		b.WriteString(a.Value.String())
	}
	b.WriteByte('}')
	return b.String()
}

// Format writes String for every verb, so that no verb (%#v included) shows a secret.
func (c Config) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, c.String())
}

// LogValue implements slog.LogValuer: a group of the settings with the secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(c.attrs()...)
}

// MarshalJSON returns a JSON object of the settings with the secrets redacted.
func (c Config) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, a := range c.attrs() {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(a.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(a.Value.String())
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
