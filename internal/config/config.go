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

// Defaults that do not depend on the environment.
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
	// config does not import the server, so they are repeated here for the usage text.
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

// setting describes one flag and its variable for registration and usage.
type setting struct {
	env     string // environment variable
	arg     string // placeholder for the value in the usage text
	help    string
	devDef  string // default in development, shown in the usage text
	prodDef string // default in production, if it differs
}

// settings lists every flag in the order of the usage text.
var settings = []setting{
	{env: varEnv, arg: "name", help: "deployment environment: development or production; production is never the default", devDef: string(EnvDevelopment)},
	{env: varGRPCAddr, arg: "host:port", help: "listen address of the gRPC server", devDef: "127.0.0.1:50051", prodDef: ":50051"},
	{env: varHTTPAddr, arg: "host:port", help: "listen address of the HTTP server", devDef: "127.0.0.1:8081", prodDef: ":8081"},
	{env: varRedisURL, arg: "url", help: "Redis URL (redis:// or rediss://); empty in development selects the in-memory store; required in production"},
	{env: varRedisURL + fileSuffix, arg: "path", help: "file holding the Redis URL, for a URL with a password"},
	{env: varStoreTimeout, arg: "duration", help: "the most one call may spend on Redis, go-redis's retries included, before it fails Unavailable; from 10ms to 30s", devDef: defaultStoreTimeout.String()},
	{env: varRedisAllowEviction, arg: "bool", help: "true lets production start on a Redis whose maxmemory-policy evicts keys (it could evict revocation marks, cut-offs and signing keys)", devDef: "false"},
	{env: varDataDir, arg: "path", help: "directory that keeps the secrets generated in development", devDef: defaultDataDir},
	{env: varMasterKey, arg: "secret", help: "master key, at least 32 characters; generated in development when unset (prefer -master-key-file)"},
	{env: varMasterKey + fileSuffix, arg: "path", help: "file holding the master key"},
	{env: varMasterKeyPrevious, arg: "secret", help: "the master key being rotated away from, accepted alongside the current one during a rolling change (prefer -master-key-previous-file)"},
	{env: varMasterKeyPrevious + fileSuffix, arg: "path", help: "file holding the previous master key"},
	{env: varKeyEncryptionKey, arg: "base64", help: "key-encryption key, standard base64 of 32 bytes (openssl rand -base64 32); generated in development when unset (prefer -key-encryption-key-file)"},
	{env: varKeyEncryptionKey + fileSuffix, arg: "path", help: "file holding the key-encryption key"},
	{env: varKeyEncryptionKeyPrevious, arg: "base64,...", help: "key-encryption keys being rotated away from, comma-separated: they open stored keys, which are re-sealed under the current key in the background, and never seal"},
	{env: varKeyEncryptionKeyPrevious + fileSuffix, arg: "path", help: "file holding the previous key-encryption keys, one per line"},
	{env: varRefreshGrace, arg: "duration", help: "window in which a retried refresh gets the same answer, from 0s to 1m", devDef: defaultRefreshGrace.String()},
	{env: varAccessTTL, arg: "duration", help: "default access-token lifetime", devDef: defaultAccessTTL.String()},
	{env: varRefreshTTL, arg: "duration", help: "default session lifetime", devDef: defaultRefreshTTL.String()},
	{env: varMaxAccessTTL, arg: "duration", help: "longest access-token lifetime, at least -access-ttl", devDef: defaultMaxAccessTTL.String()},
	{env: varMaxRefreshTTL, arg: "duration", help: "longest session lifetime, at least -refresh-ttl", devDef: defaultMaxRefreshTTL.String()},
	{env: varShutdownTimeout, arg: "duration", help: "time allowed for a graceful shutdown", devDef: defaultShutdownTimeout.String()},
	{env: varExtAuthzPolicy, arg: "path", help: "per-route policy (JSON) of the Envoy ext_authz service (envoy.service.auth.v3.Authorization) on the gRPC port; the service is not served when empty"},
	{env: varKeyPrePublish, arg: "duration", help: "how long a rotated signing key is published before it signs: longer than every consumer caches the JWKS (the JWKS's max-age stays below it), from 0s to 24h", devDef: defaultKeyPrePublish.String()},
	{env: varLogLevel, arg: "level", help: "log level: debug, info, warn or error", devDef: "info"},
	{env: varLogFormat, arg: "format", help: "log format: text or json", devDef: logFormatText, prodDef: logFormatJSON},
	{env: varTracing, arg: "mode", help: "OpenTelemetry tracing of RPCs and Redis calls: off, or otlp (to the collector named by the standard OTEL_EXPORTER_OTLP_* variables)", devDef: TracingOff},
	{env: varWatchRecheck, arg: "duration", help: "how often a WatchRevocations stream re-checks its API key and tenant, from 100ms to 1m", devDef: defaultWatchRecheck.String()},
	{env: varMaxConnectionAge, arg: "duration", help: "age at which a gRPC connection is asked to reconnect, from 1m to 24h", devDef: defaultMaxConnectionAge.String()},
	{env: varMaxConnectionAgeGrace, arg: "duration", help: "time the calls still open on an aged connection may run, from 1s to 1h", devDef: defaultMaxConnectionAgeGrace.String()},
	{env: varMaxPublicStreams, arg: "n", help: "streams without a credential (health watches) open at once on this replica, at most 1000000", devDef: strconv.Itoa(defaultMaxPublicStreams)},
	{env: varMaxWatchesPerTenant, arg: "n", help: "WatchRevocations streams of one tenant open at once on this replica, at most 1000000", devDef: strconv.Itoa(defaultMaxWatchesPerTenant)},
	{env: varTLSCertFile, arg: "path", help: "PEM certificate (a chain is allowed) served by the gRPC and HTTP ports; re-read when the file changes. Required in production unless -insecure-plaintext"},
	{env: varTLSKeyFile, arg: "path", help: "PEM private key of -tls-cert-file; re-read with it"},
	{env: varTLSClientCAFile, arg: "path", help: "PEM bundle of the CAs that client certificates must chain to: the server asks for client certificates (mutual TLS) and verifies those presented; re-read when the file changes"},
	{env: varTLSClientAuth, arg: "policy", help: "optional (a client certificate is verified when presented) or require (refused without one); needs -tls-client-ca-file", devDef: ClientAuthOptional},
	{env: varInsecurePlaintext, arg: "bool", help: "true lets production serve plaintext, when a mesh or proxy in front terminates TLS (a warning is logged at start)", devDef: "false"},
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
	p := &parser{getenv: getenv, values: values, given: make(map[string]bool)}
	fs.Visit(func(f *flag.Flag) { p.given[f.Name] = true })
	if fs.NArg() > 0 {
		p.errs = append(p.errs, fmt.Errorf("unexpected argument %q: every setting is a flag", fs.Arg(0)))
	}

	c := &Config{Env: EnvDevelopment}
	switch in := p.lookup(varEnv); Env(in.value) {
	case "", EnvDevelopment:
	case EnvProduction:
		c.Env = EnvProduction
	default:
		// The remaining settings are checked against the development defaults.
		p.errorf(in, "must be %q or %q, got %q", EnvDevelopment, EnvProduction, in.value)
	}
	prod := c.Production()

	var grpcOK, httpOK bool
	c.GRPCAddr, grpcOK = p.addr(varGRPCAddr, pick(prod, ":50051", "127.0.0.1:50051"))
	c.HTTPAddr, httpOK = p.addr(varHTTPAddr, pick(prod, ":8081", "127.0.0.1:8081"))
	if grpcOK && httpOK && c.GRPCAddr == c.HTTPAddr && !strings.HasSuffix(c.HTTPAddr, ":0") {
		p.errorf(p.lookup(varHTTPAddr), "must differ from %s, both are %q", varGRPCAddr, c.HTTPAddr)
	}
	c.RedisURL = p.redisURL(prod)
	c.DataDir = p.str(varDataDir, defaultDataDir)
	c.ExtAuthzPolicy = p.str(varExtAuthzPolicy, "")

	c.masterKey = p.secret(masterKeyKind, prod)
	c.keyEncryptionKey = p.secret(keyEncryptionKeyKind, prod)
	c.previousKEKs = p.previousKEKs()
	c.previousMaster = p.secret(masterKeyPreviousKind, false)

	var ok bool
	c.RefreshGrace = p.duration(varRefreshGrace, defaultRefreshGrace, func(d time.Duration) error {
		if d < 0 || d > maxRefreshGrace {
			return fmt.Errorf("must be between 0s and %v, got %v", maxRefreshGrace, d)
		}
		return nil
	})
	c.AccessTTL, ok = p.positiveDuration(varAccessTTL, defaultAccessTTL)
	c.MaxAccessTTL = p.maxDuration(varMaxAccessTTL, defaultMaxAccessTTL, varAccessTTL, c.AccessTTL, ok)
	c.RefreshTTL, ok = p.positiveDuration(varRefreshTTL, defaultRefreshTTL)
	c.MaxRefreshTTL = p.maxDuration(varMaxRefreshTTL, defaultMaxRefreshTTL, varRefreshTTL, c.RefreshTTL, ok)
	c.ShutdownTimeout, _ = p.positiveDuration(varShutdownTimeout, defaultShutdownTimeout)
	c.KeyPrePublish = p.duration(varKeyPrePublish, defaultKeyPrePublish, func(d time.Duration) error {
		if d < 0 || d > maxKeyPrePublish {
			return fmt.Errorf("must be between 0s and %v, got %v", maxKeyPrePublish, d)
		}
		return nil
	})

	c.LogLevel = p.logLevel()
	c.LogFormat = p.oneOf(varLogFormat, pick(prod, logFormatJSON, logFormatText), logFormatText, logFormatJSON)
	c.Tracing = p.oneOf(varTracing, TracingOff, TracingOff, TracingOTLP)
	c.RedisAllowEviction = p.oneOf(varRedisAllowEviction, "false", "false", "true") == "true"
	c.StoreTimeout = p.duration(varStoreTimeout, defaultStoreTimeout, func(d time.Duration) error {
		if d < 10*time.Millisecond || d > maxStoreTimeout {
			return fmt.Errorf("must be between 10ms and %v, got %v", maxStoreTimeout, d)
		}
		return nil
	})

	c.WatchRecheck = p.duration(varWatchRecheck, defaultWatchRecheck, between(minWatchRecheck, maxWatchRecheck))
	c.MaxConnectionAge = p.duration(varMaxConnectionAge, defaultMaxConnectionAge, between(minMaxConnectionAge, maxMaxConnectionAge))
	c.MaxConnectionAgeGrace = p.duration(varMaxConnectionAgeGrace, defaultMaxConnectionAgeGrace,
		between(minMaxConnectionAgeGrace, maxMaxConnectionAgeGrace))
	c.MaxPublicStreams = p.count(varMaxPublicStreams, defaultMaxPublicStreams, maxStreamLimit)
	c.MaxWatchesPerTenant = p.count(varMaxWatchesPerTenant, defaultMaxWatchesPerTenant, maxStreamLimit)
	p.transport(c, prod)

	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// transport reads the TLS settings. Production is encrypted unless the operator says that
// something in front terminates TLS.
func (p *parser) transport(c *Config, prod bool) {
	c.TLSCertFile = p.str(varTLSCertFile, "")
	c.TLSKeyFile = p.str(varTLSKeyFile, "")
	c.TLSClientCAFile = p.str(varTLSClientCAFile, "")
	c.TLSClientAuth = p.oneOf(varTLSClientAuth, ClientAuthOptional, ClientAuthOptional, ClientAuthRequire)
	c.InsecurePlaintext = p.oneOf(varInsecurePlaintext, "false", "false", "true") == "true"
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
	if prod && c.TLSCertFile == "" && !c.InsecurePlaintext {
		p.errs = append(p.errs, fmt.Errorf("production serves TLS: set %s and %s, or %s=true when a mesh or proxy in front terminates TLS",
			varTLSCertFile, varTLSKeyFile, varInsecurePlaintext))
	}
}

// TLS reports whether the ports serve TLS.
func (c *Config) TLS() bool {
	return c.TLSCertFile != ""
}

// pick returns a if cond holds, b otherwise.
func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// input is the raw value of one setting and the name to report it under.
type input struct {
	name  string // the variable, or the flag and the variable
	value string
}

// parser gathers the values of the settings and every problem found in them.
type parser struct {
	getenv func(string) string
	values map[string]*string // flag values by variable
	given  map[string]bool    // flags given on the command line, by flag name
	errs   []error
}

// lookup returns the value of the flag of env if it was given, of env otherwise.
func (p *parser) lookup(env string) input {
	return p.lookupFrom(env, p.given[flagName(env)])
}

// lookupFrom returns the value of the flag of env if fromFlag holds, of env otherwise.
func (p *parser) lookupFrom(env string, fromFlag bool) input {
	if fromFlag {
		return input{name: "-" + flagName(env) + " (" + env + ")", value: *p.values[env]}
	}
	return input{name: env, value: p.getenv(env)}
}

// errorf records a problem with in. The message must not contain a secret.
func (p *parser) errorf(in input, format string, args ...any) {
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

// logLevel returns the log level.
func (p *parser) logLevel() slog.Level {
	levels := map[string]slog.Level{
		"debug": slog.LevelDebug,
		"info":  slog.LevelInfo,
		"warn":  slog.LevelWarn,
		"error": slog.LevelError,
	}
	return levels[p.oneOf(varLogLevel, "info", "debug", "info", "warn", "error")]
}

// addr returns the listen address in env, or def if it is empty, and whether it is valid.
func (p *parser) addr(env, def string) (string, bool) {
	in := p.lookup(env)
	if in.value == "" {
		return def, true
	}
	_, port, err := net.SplitHostPort(in.value)
	if err != nil {
		p.errorf(in, "invalid address %q: want host:port", in.value)
		return in.value, false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.errorf(in, "invalid port %q in address %q: want a number from 0 to 65535", port, in.value)
		return in.value, false
	}
	return in.value, true
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

// duration returns the duration in env, or def if it is empty; check, if not nil, validates it.
func (p *parser) duration(env string, def time.Duration, check func(time.Duration) error) time.Duration {
	d, _ := p.checkedDuration(env, def, check)
	return d
}

// checkedDuration is duration that also reports whether the value is valid.
func (p *parser) checkedDuration(env string, def time.Duration, check func(time.Duration) error) (time.Duration, bool) {
	in := p.lookup(env)
	d, suffix := def, " (the default)"
	if in.value != "" {
		var err error
		if d, err = time.ParseDuration(in.value); err != nil {
			p.errorf(in, "invalid duration %q", in.value)
			return def, false
		}
		suffix = ""
	}
	if check != nil {
		// A default can conflict with another setting, as MAX_ACCESS_TTL with ACCESS_TTL.
		if err := check(d); err != nil {
			p.errorf(in, "%v%s", err, suffix)
			return d, false
		}
	}
	return d, true
}

// positiveDuration returns the duration in env, which must be positive, or def if it is empty. It
// reports whether the value is valid.
func (p *parser) positiveDuration(env string, def time.Duration) (time.Duration, bool) {
	return p.checkedDuration(env, def, checkPositive)
}

// maxDuration returns the duration in env, or def if it is empty. It must be positive and, if
// lowerOK, at least lower, the value of lowerEnv.
func (p *parser) maxDuration(env string, def time.Duration, lowerEnv string, lower time.Duration, lowerOK bool) time.Duration {
	return p.duration(env, def, func(d time.Duration) error {
		if err := checkPositive(d); err != nil {
			return err
		}
		if lowerOK && d < lower {
			return fmt.Errorf("must be at least %s (%v), got %v", lowerEnv, lower, d)
		}
		return nil
	})
}

// between returns a check that a duration is from lo to hi.
func between(lo, hi time.Duration) func(time.Duration) error {
	return func(d time.Duration) error {
		if d < lo || d > hi {
			return fmt.Errorf("must be between %v and %v, got %v", lo, hi, d)
		}
		return nil
	}
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
