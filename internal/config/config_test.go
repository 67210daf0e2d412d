package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Valid secrets for tests. Each is long and unusual enough that finding it in a message is a leak.
var (
	testMasterKey        = "test-master-key-0123456789-abcdefghij-XYZ"
	testKeyEncryptionKey = base64.StdEncoding.EncodeToString([]byte("kek-0123456789abcdefghijklmnopqr"))
	testRedisURL         = "redis://app:s3cr3t-redis-password@redis.internal:6379/0"
)

// fakeEnv returns a getenv that looks variables up in m.
func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// production returns a minimal valid production environment plus extra.
func production(extra map[string]string) map[string]string {
	m := map[string]string{
		varEnv:               "production",
		varRedisURL:          testRedisURL,
		varMasterKey:         testMasterKey,
		varKeyEncryptionKey:  testKeyEncryptionKey,
		varInsecurePlaintext: "true",
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// joined returns the errors joined in err.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// view is the comparable part of a Config.
type view struct {
	Env                                                                               Env
	GRPCAddr, HTTPAddr, RedisURL, DataDir                                             string
	RefreshGrace, AccessTTL, RefreshTTL, MaxAccessTTL, MaxRefreshTTL, ShutdownTimeout time.Duration
	LogLevel                                                                          slog.Level
	LogFormat                                                                         string
}

func viewOf(c *Config) view {
	return view{
		Env: c.Env, GRPCAddr: c.GRPCAddr, HTTPAddr: c.HTTPAddr, RedisURL: c.RedisURL, DataDir: c.DataDir,
		RefreshGrace: c.RefreshGrace, AccessTTL: c.AccessTTL, RefreshTTL: c.RefreshTTL,
		MaxAccessTTL: c.MaxAccessTTL, MaxRefreshTTL: c.MaxRefreshTTL, ShutdownTimeout: c.ShutdownTimeout,
		LogLevel: c.LogLevel, LogFormat: c.LogFormat,
	}
}

func TestParseDefaults(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want view
	}{
		{
			name: "development",
			env:  map[string]string{},
			want: view{
				Env: EnvDevelopment, GRPCAddr: "127.0.0.1:50051", HTTPAddr: "127.0.0.1:8081", DataDir: ".data",
				RefreshGrace: 5 * time.Second, AccessTTL: 15 * time.Minute, RefreshTTL: 168 * time.Hour,
				MaxAccessTTL: time.Hour, MaxRefreshTTL: 720 * time.Hour, ShutdownTimeout: 10 * time.Second,
				LogLevel: slog.LevelInfo, LogFormat: "text",
			},
		},
		{
			name: "explicit development",
			env:  map[string]string{varEnv: "development"},
			want: view{
				Env: EnvDevelopment, GRPCAddr: "127.0.0.1:50051", HTTPAddr: "127.0.0.1:8081", DataDir: ".data",
				RefreshGrace: 5 * time.Second, AccessTTL: 15 * time.Minute, RefreshTTL: 168 * time.Hour,
				MaxAccessTTL: time.Hour, MaxRefreshTTL: 720 * time.Hour, ShutdownTimeout: 10 * time.Second,
				LogLevel: slog.LevelInfo, LogFormat: "text",
			},
		},
		{
			name: "production",
			env:  production(nil),
			want: view{
				Env: EnvProduction, GRPCAddr: ":50051", HTTPAddr: ":8081", RedisURL: testRedisURL, DataDir: ".data",
				RefreshGrace: 5 * time.Second, AccessTTL: 15 * time.Minute, RefreshTTL: 168 * time.Hour,
				MaxAccessTTL: time.Hour, MaxRefreshTTL: 720 * time.Hour, ShutdownTimeout: 10 * time.Second,
				LogLevel: slog.LevelInfo, LogFormat: "json",
			},
		},
		{
			name: "production by flag",
			env:  production(map[string]string{varEnv: ""}),
			args: []string{"-env", "production"},
			want: view{
				Env: EnvProduction, GRPCAddr: ":50051", HTTPAddr: ":8081", RedisURL: testRedisURL, DataDir: ".data",
				RefreshGrace: 5 * time.Second, AccessTTL: 15 * time.Minute, RefreshTTL: 168 * time.Hour,
				MaxAccessTTL: time.Hour, MaxRefreshTTL: 720 * time.Hour, ShutdownTimeout: 10 * time.Second,
				LogLevel: slog.LevelInfo, LogFormat: "json",
			},
		},
		{
			name: "every setting",
			env: map[string]string{
				varGRPCAddr: "0.0.0.0:9000", varHTTPAddr: "[::1]:9001", varRedisURL: "rediss://redis:6380",
				varDataDir: "/var/lib/ta", varRefreshGrace: "0s", varAccessTTL: "5m", varRefreshTTL: "24h",
				varMaxAccessTTL: "5m", varMaxRefreshTTL: "48h", varShutdownTimeout: "30s",
				varLogLevel: "debug", varLogFormat: "json",
			},
			want: view{
				Env: EnvDevelopment, GRPCAddr: "0.0.0.0:9000", HTTPAddr: "[::1]:9001", RedisURL: "rediss://redis:6380",
				DataDir: "/var/lib/ta", RefreshGrace: 0, AccessTTL: 5 * time.Minute, RefreshTTL: 24 * time.Hour,
				MaxAccessTTL: 5 * time.Minute, MaxRefreshTTL: 48 * time.Hour, ShutdownTimeout: 30 * time.Second,
				LogLevel: slog.LevelDebug, LogFormat: "json",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := viewOf(c); got != tt.want {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
			if c.Production() != (tt.want.Env == EnvProduction) {
				t.Errorf("Production() = %v", c.Production())
			}
		})
	}
}

// TestParseServerLimits checks the defaults of the server's limits and that each can be set.
func TestParseServerLimits(t *testing.T) {
	type limits struct {
		recheck, age, grace      time.Duration
		publicStreams, perTenant int
	}
	of := func(c *Config) limits {
		return limits{c.WatchRecheck, c.MaxConnectionAge, c.MaxConnectionAgeGrace, c.MaxPublicStreams, c.MaxWatchesPerTenant}
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want limits
	}{
		{name: "defaults", want: limits{2 * time.Second, 30 * time.Minute, time.Minute, 1024, 2048}},
		{name: "production defaults", env: production(nil), want: limits{2 * time.Second, 30 * time.Minute, time.Minute, 1024, 2048}},
		{name: "set", env: map[string]string{varWatchRecheck: "500ms", varMaxConnectionAge: "2h", varMaxConnectionAgeGrace: "10s",
			varMaxPublicStreams: "10", varMaxWatchesPerTenant: "20"}, want: limits{500 * time.Millisecond, 2 * time.Hour, 10 * time.Second, 10, 20}},
		{name: "flags", args: []string{"-watch-recheck", "1s", "-max-public-streams", "7"}, want: limits{time.Second, 30 * time.Minute, time.Minute, 7, 2048}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := of(c); got != tt.want {
				t.Errorf("limits = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseNilArguments(t *testing.T) {
	c, err := Parse(nil, nil, nil)
	if err != nil {
		t.Fatalf("Parse(nil, nil, nil): %v", err)
	}
	if c.Env != EnvDevelopment || c.GRPCAddr != "127.0.0.1:50051" {
		t.Errorf("Parse(nil, nil, nil) = %v, want development defaults", c)
	}
}

func TestParseFlagOverridesEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		got  func(*Config) any
		want any
	}{
		{
			name: "variable alone",
			env:  map[string]string{varGRPCAddr: "127.0.0.1:1"},
			got:  func(c *Config) any { return c.GRPCAddr },
			want: "127.0.0.1:1",
		},
		{
			name: "address",
			env:  map[string]string{varGRPCAddr: "127.0.0.1:1"},
			args: []string{"-grpc-addr", "127.0.0.1:2"},
			got:  func(c *Config) any { return c.GRPCAddr },
			want: "127.0.0.1:2",
		},
		{
			name: "duration with equals sign",
			env:  map[string]string{varAccessTTL: "1m"},
			args: []string{"-access-ttl=2m"},
			got:  func(c *Config) any { return c.AccessTTL },
			want: 2 * time.Minute,
		},
		{
			name: "log level",
			env:  map[string]string{varLogLevel: "error"},
			args: []string{"--log-level", "warn"},
			got:  func(c *Config) any { return c.LogLevel },
			want: slog.LevelWarn,
		},
		{
			name: "environment",
			env:  production(map[string]string{varEnv: "development"}),
			args: []string{"-env", "production"},
			got:  func(c *Config) any { return c.GRPCAddr },
			want: ":50051",
		},
		{
			name: "empty flag replaces the variable",
			env:  map[string]string{varRedisURL: "redis://localhost:6379"},
			args: []string{"-redis-url="},
			got:  func(c *Config) any { return c.RedisURL },
			want: "",
		},
		{
			name: "empty flag selects the default",
			env:  map[string]string{varDataDir: "/elsewhere"},
			args: []string{"-data-dir="},
			got:  func(c *Config) any { return c.DataDir },
			want: ".data",
		},
		{
			name: "secret flag replaces the file variable",
			env:  map[string]string{varMasterKey + fileSuffix: "/run/secrets/master-key"},
			args: []string{"-master-key", testMasterKey},
			got:  func(c *Config) any { return c.masterKey.value.Reveal() + "|" + c.masterKey.path },
			want: testMasterKey + "|",
		},
		{
			name: "secret file flag replaces the value variable",
			env:  map[string]string{varKeyEncryptionKey: "not base64 and not checked"},
			args: []string{"-key-encryption-key-file", "/run/secrets/kek"},
			got:  func(c *Config) any { return c.keyEncryptionKey.value.Reveal() + "|" + c.keyEncryptionKey.path },
			want: "|/run/secrets/kek",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := tt.got(c); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // substrings of the only error
		leak string   // must not appear in the error
	}{
		{name: "environment", env: map[string]string{varEnv: "prod"}, want: []string{varEnv + `: must be "development" or "production", got "prod"`}},
		{name: "environment case", env: map[string]string{varEnv: "Production"}, want: []string{varEnv + ":"}},
		{name: "address without port", env: map[string]string{varGRPCAddr: "localhost"}, want: []string{varGRPCAddr + `: invalid address "localhost"`}},
		{name: "port out of range", env: map[string]string{varGRPCAddr: "localhost:65536"}, want: []string{varGRPCAddr + `: invalid port "65536"`}},
		{name: "named port", env: map[string]string{varHTTPAddr: ":http"}, want: []string{varHTTPAddr + `: invalid port "http"`}},
		{name: "same addresses", env: map[string]string{varGRPCAddr: ":9000", varHTTPAddr: ":9000"}, want: []string{varHTTPAddr + ": must differ from " + varGRPCAddr}},
		{name: "redis scheme", env: map[string]string{varRedisURL: "http://user:pw-in-url@host"}, want: []string{varRedisURL + ": scheme must be redis:// or rediss://"}, leak: "pw-in-url"},
		{name: "redis without scheme", env: map[string]string{varRedisURL: "user:pw-in-url@host:6379"}, want: []string{varRedisURL + ": scheme"}, leak: "pw-in-url"},
		{name: "redis unparsable", env: map[string]string{varRedisURL: "redis://user:pw-in-url@host:6379/%zz"}, want: []string{varRedisURL + ": not a valid URL"}, leak: "pw-in-url"},
		{name: "redis URL and its file", env: map[string]string{varRedisURL: "redis://a:6379", varRedisURL + fileSuffix: "/run/secrets/redis-url"},
			want: []string{varRedisURL + " and " + varRedisURL + fileSuffix + " are both set"}},
		{name: "redis URL file missing", env: map[string]string{varRedisURL + fileSuffix: "/nonexistent/redis-url"},
			want: []string{varRedisURL + fileSuffix + ": cannot read the file"}},
		{name: "redis missing in production", env: production(map[string]string{varRedisURL: ""}), want: []string{varRedisURL + " (or " + varRedisURL + fileSuffix + ") must be set in production"}},
		{name: "redis empty flag in production", env: production(nil), args: []string{"-redis-url="}, want: []string{varRedisURL + " (or " + varRedisURL + fileSuffix + ") must be set in production"}},
		{name: "master key too short", env: map[string]string{varMasterKey: "short-master-key-value"}, want: []string{varMasterKey + ": must be at least 32 characters"}, leak: "short-master-key-value"},
		{name: "master key flag too short", args: []string{"-master-key", "short-master-key-value"}, want: []string{"-master-key (" + varMasterKey + "): must be at least 32 characters"}, leak: "short-master-key-value"},
		{name: "key-encryption key not base64", env: map[string]string{varKeyEncryptionKey: "not-base64-kek-value!"}, want: []string{varKeyEncryptionKey + ": must be standard base64"}, leak: "not-base64-kek-value!"},
		{name: "key-encryption key too short", env: map[string]string{varKeyEncryptionKey: "c2hvcnQta2VrLXZhbHVl"}, want: []string{varKeyEncryptionKey + ": must decode to exactly 32 bytes, got 15"}, leak: "c2hvcnQta2VrLXZhbHVl"},
		{name: "key-encryption key URL encoding", env: map[string]string{varKeyEncryptionKey: base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))}, want: []string{varKeyEncryptionKey + ": must be standard base64"}},
		{
			name: "master key and file",
			env:  map[string]string{varMasterKey: testMasterKey, varMasterKey + fileSuffix: "/run/secrets/mk"},
			want: []string{varMasterKey + " and " + varMasterKey + fileSuffix + " are both set"},
			leak: testMasterKey,
		},
		{
			name: "key-encryption key and file flags",
			args: []string{"-key-encryption-key", testKeyEncryptionKey, "-key-encryption-key-file", "/run/secrets/kek"},
			want: []string{"-key-encryption-key (" + varKeyEncryptionKey + ") and -key-encryption-key-file (" + varKeyEncryptionKey + fileSuffix + ") are both set"},
			leak: testKeyEncryptionKey,
		},
		{name: "master key missing in production", env: production(map[string]string{varMasterKey: ""}), want: []string{varMasterKey + " (or " + varMasterKey + fileSuffix + ") must be set in production"}},
		{name: "key-encryption key missing in production", env: production(map[string]string{varKeyEncryptionKey: ""}), want: []string{varKeyEncryptionKey + " (or " + varKeyEncryptionKey + fileSuffix + ") must be set in production"}},
		{name: "grace not a duration", env: map[string]string{varRefreshGrace: "soon"}, want: []string{varRefreshGrace + `: invalid duration "soon"`}},
		{name: "grace negative", env: map[string]string{varRefreshGrace: "-1s"}, want: []string{varRefreshGrace + ": must be between 0s and 1m0s, got -1s"}},
		{name: "grace too long", env: map[string]string{varRefreshGrace: "61s"}, want: []string{varRefreshGrace + ": must be between 0s and 1m0s, got 1m1s"}},
		{name: "pre-publish negative", env: map[string]string{varKeyPrePublish: "-1m"}, want: []string{varKeyPrePublish + ": must be between 0s and 24h0m0s, got -1m0s"}},
		{name: "pre-publish too long", env: map[string]string{varKeyPrePublish: "25h"}, want: []string{varKeyPrePublish + ": must be between 0s and 24h0m0s, got 25h0m0s"}},
		{name: "access ttl not a duration", env: map[string]string{varAccessTTL: "abc"}, want: []string{varAccessTTL + `: invalid duration "abc"`}},
		{name: "access ttl zero", env: map[string]string{varAccessTTL: "0"}, want: []string{varAccessTTL + ": must be positive, got 0s"}},
		{name: "access ttl flag", args: []string{"-access-ttl", "abc"}, want: []string{"-access-ttl (" + varAccessTTL + `): invalid duration "abc"`}},
		{name: "access ttl above maximum", env: map[string]string{varAccessTTL: "2h"}, want: []string{varMaxAccessTTL + ": must be at least " + varAccessTTL + " (2h0m0s), got 1h0m0s (the default)"}},
		{name: "refresh ttl negative", env: map[string]string{varRefreshTTL: "-5m"}, want: []string{varRefreshTTL + ": must be positive, got -5m0s"}},
		{name: "max access ttl below access ttl", env: map[string]string{varMaxAccessTTL: "10m"}, want: []string{varMaxAccessTTL + ": must be at least " + varAccessTTL}},
		{name: "max access ttl zero", env: map[string]string{varMaxAccessTTL: "0s"}, want: []string{varMaxAccessTTL + ": must be positive"}},
		{name: "max refresh ttl below refresh ttl", env: map[string]string{varMaxRefreshTTL: "100h"}, want: []string{varMaxRefreshTTL + ": must be at least " + varRefreshTTL + " (168h0m0s), got 100h0m0s"}},
		{name: "max refresh ttl not a duration", env: map[string]string{varMaxRefreshTTL: "1month"}, want: []string{varMaxRefreshTTL + `: invalid duration "1month"`}},
		{name: "shutdown timeout zero", env: map[string]string{varShutdownTimeout: "0s"}, want: []string{varShutdownTimeout + ": must be positive"}},
		{name: "log level", env: map[string]string{varLogLevel: "verbose"}, want: []string{varLogLevel + `: must be one of debug, info, warn, error, got "verbose"`}},
		{name: "log level case", env: map[string]string{varLogLevel: "INFO"}, want: []string{varLogLevel + ":"}},
		{name: "log format", env: map[string]string{varLogFormat: "xml"}, want: []string{varLogFormat + `: must be one of text, json, got "xml"`}},
		{name: "positional argument", args: []string{"serve"}, want: []string{`unexpected argument "serve"`}},
		{name: "master key too long", env: map[string]string{varMasterKey: strings.Repeat("m", 1025)}, want: []string{varMasterKey + ": must be at most 1024 bytes"}, leak: strings.Repeat("m", 40)},
		{name: "watch recheck too short", env: map[string]string{varWatchRecheck: "10ms"}, want: []string{varWatchRecheck + ": must be between 100ms and 1m0s, got 10ms"}},
		{name: "watch recheck too long", env: map[string]string{varWatchRecheck: "2m"}, want: []string{varWatchRecheck + ": must be between 100ms and 1m0s, got 2m0s"}},
		{name: "connection age zero", env: map[string]string{varMaxConnectionAge: "0s"}, want: []string{varMaxConnectionAge + ": must be between 1m0s and 24h0m0s, got 0s"}},
		{name: "connection age grace too long", env: map[string]string{varMaxConnectionAgeGrace: "2h"}, want: []string{varMaxConnectionAgeGrace + ": must be between 1s and 1h0m0s, got 2h0m0s"}},
		{name: "public streams zero", env: map[string]string{varMaxPublicStreams: "0"}, want: []string{varMaxPublicStreams + `: must be a whole number from 1 to 1000000, got "0"`}},
		{name: "watches per tenant not a number", env: map[string]string{varMaxWatchesPerTenant: "many"}, want: []string{varMaxWatchesPerTenant + `: must be a whole number from 1 to 1000000, got "many"`}},
		{name: "tls cert without key", env: map[string]string{varTLSCertFile: "/tls/tls.crt"}, want: []string{varTLSKeyFile + ": must be set with " + varTLSCertFile}},
		{name: "tls key without cert", env: map[string]string{varTLSKeyFile: "/tls/tls.key"}, want: []string{varTLSCertFile + ": must be set with " + varTLSKeyFile}},
		{name: "client CA without TLS", env: map[string]string{varTLSClientCAFile: "/tls/ca.crt"}, want: []string{varTLSClientCAFile + ": needs " + varTLSCertFile}},
		{name: "client auth without CA", env: map[string]string{varTLSCertFile: "/c", varTLSKeyFile: "/k", varTLSClientAuth: "require"},
			want: []string{varTLSClientAuth + ": needs " + varTLSClientCAFile}},
		{name: "client auth unknown", env: map[string]string{varTLSCertFile: "/c", varTLSKeyFile: "/k", varTLSClientCAFile: "/ca", varTLSClientAuth: "always"},
			want: []string{varTLSClientAuth + `: must be one of optional, require, got "always"`}},
		{name: "plaintext and TLS", env: map[string]string{varTLSCertFile: "/c", varTLSKeyFile: "/k", varInsecurePlaintext: "true"},
			want: []string{varInsecurePlaintext + ": cannot be true with " + varTLSCertFile + " set"}},
		{name: "plaintext not a bool", env: map[string]string{varInsecurePlaintext: "yes"}, want: []string{varInsecurePlaintext + `: must be one of false, true, got "yes"`}},
		// The refusal names both ways out.
		{name: "production without TLS", env: production(map[string]string{varInsecurePlaintext: ""}),
			want: []string{"production serves TLS", varTLSCertFile, varTLSKeyFile, varInsecurePlaintext + "=true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if err == nil {
				t.Fatalf("Parse = %v, want an error", c)
			}
			if c != nil {
				t.Errorf("Parse returned a config with the error %v", err)
			}
			if errs := joined(err); len(errs) != 1 {
				t.Errorf("Parse reported %d errors, want 1: %v", len(errs), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.leak != "" && strings.Contains(err.Error(), tt.leak) {
				t.Errorf("error %q leaks %q", err, tt.leak)
			}
		})
	}
}

// TestParseTransport: what the TLS settings turn into.
func TestParseTransport(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{name: "development default is plaintext", env: nil, want: Config{TLSClientAuth: ClientAuthOptional}},
		{name: "TLS", env: map[string]string{varTLSCertFile: "/c", varTLSKeyFile: "/k"},
			want: Config{TLSCertFile: "/c", TLSKeyFile: "/k", TLSClientAuth: ClientAuthOptional}},
		{name: "mutual TLS required", env: map[string]string{varTLSCertFile: "/c", varTLSKeyFile: "/k", varTLSClientCAFile: "/ca", varTLSClientAuth: "require"},
			want: Config{TLSCertFile: "/c", TLSKeyFile: "/k", TLSClientCAFile: "/ca", TLSClientAuth: ClientAuthRequire}},
		{name: "production over TLS", env: production(map[string]string{varInsecurePlaintext: "", varTLSCertFile: "/c", varTLSKeyFile: "/k"}),
			want: Config{TLSCertFile: "/c", TLSKeyFile: "/k", TLSClientAuth: ClientAuthOptional}},
		{name: "production behind a mesh", env: production(nil), want: Config{TLSClientAuth: ClientAuthOptional, InsecurePlaintext: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(nil, fakeEnv(tt.env), nil)
			if err != nil {
				t.Fatal(err)
			}
			got := Config{TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile, TLSClientCAFile: c.TLSClientCAFile,
				TLSClientAuth: c.TLSClientAuth, InsecurePlaintext: c.InsecurePlaintext}
			if got.String() != tt.want.String() || got.TLS() != (tt.want.TLSCertFile != "") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseReportsEveryError(t *testing.T) {
	env := map[string]string{
		varEnv:             "staging",
		varGRPCAddr:        "nope",
		varRedisURL:        "memcached://cache",
		varMasterKey:       "short",
		varRefreshGrace:    "2m",
		varAccessTTL:       "abc",
		varMaxRefreshTTL:   "1h",
		varShutdownTimeout: "-1s",
		varLogLevel:        "trace",
		varLogFormat:       "yaml",
	}
	_, err := Parse([]string{"-http-addr", "x", "extra"}, fakeEnv(env), nil)
	errs := joined(err)
	if len(errs) != 12 {
		t.Errorf("Parse reported %d errors, want 12:\n%v", len(errs), err)
	}
	for _, name := range []string{
		varEnv, varGRPCAddr, varHTTPAddr, varRedisURL, varMasterKey, varRefreshGrace, varAccessTTL,
		varMaxRefreshTTL, varShutdownTimeout, varLogLevel, varLogFormat, "extra",
	} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

func TestParseProductionNothingSet(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{name: "variable", env: map[string]string{varEnv: "production"}},
		{name: "flag", args: []string{"-env=production"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if errs := joined(err); len(errs) != 4 {
				t.Errorf("Parse reported %d errors, want 4:\n%v", len(errs), err)
			}
			for _, want := range []string{
				"TOKENAUTHORITY_MASTER_KEY (or TOKENAUTHORITY_MASTER_KEY_FILE) must be set in production",
				"TOKENAUTHORITY_KEY_ENCRYPTION_KEY (or TOKENAUTHORITY_KEY_ENCRYPTION_KEY_FILE) must be set in production",
				"TOKENAUTHORITY_REDIS_URL (or TOKENAUTHORITY_REDIS_URL_FILE) must be set in production",
				"production serves TLS: set TOKENAUTHORITY_TLS_CERT_FILE and TOKENAUTHORITY_TLS_KEY_FILE, or TOKENAUTHORITY_INSECURE_PLAINTEXT=true",
			} {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestParseProductionWithFiles(t *testing.T) {
	env := production(map[string]string{
		varMasterKey:                     "",
		varKeyEncryptionKey:              "",
		varMasterKey + fileSuffix:        "/run/secrets/mk",
		varKeyEncryptionKey + fileSuffix: "/run/secrets/kek",
	})
	c, err := Parse(nil, fakeEnv(env), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.masterKey.path != "/run/secrets/mk" || c.keyEncryptionKey.path != "/run/secrets/kek" {
		t.Errorf("secret files = %q, %q", c.masterKey.path, c.keyEncryptionKey.path)
	}
}

func TestParseHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var out bytes.Buffer
			c, err := Parse([]string{"-grpc-addr", ":1", arg}, fakeEnv(nil), &out)
			if !errors.Is(err, flag.ErrHelp) || c != nil {
				t.Fatalf("Parse = %v, %v; want nil, flag.ErrHelp", c, err)
			}
			for _, s := range settings {
				if !strings.Contains(out.String(), "-"+flagName(s.env)+" ") || !strings.Contains(out.String(), s.env) {
					t.Errorf("usage does not describe -%s and %s:\n%s", flagName(s.env), s.env, out.String())
				}
			}
		})
	}
}

func TestParseMalformedCommandLine(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown flag", args: []string{"-verbose"}, want: "-verbose"},
		{name: "missing value", args: []string{"-access-ttl"}, want: "-access-ttl"},
		{name: "missing secret value", args: []string{"-grpc-addr", ":1", "-master-key"}, want: "-master-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Parse(tt.args, fakeEnv(nil), &out)
			if err == nil || errors.Is(err, flag.ErrHelp) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error = %v, want one naming %s", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("Parse wrote %q to usage", out.String())
			}
		})
	}
}

func TestFlagName(t *testing.T) {
	for env, want := range map[string]string{
		varGRPCAddr:                      "grpc-addr",
		varKeyEncryptionKey + fileSuffix: "key-encryption-key-file",
		varMaxRefreshTTL:                 "max-refresh-ttl",
	} {
		if got := flagName(env); got != want {
			t.Errorf("flagName(%s) = %q, want %q", env, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("production", ":1", "redis://h", "15m", "1h", testMasterKey, testKeyEncryptionKey, "info", "")
	f.Add("development", "", "", "", "", "", "", "", "-access-ttl 1m")
	f.Add("x", "[::1", "redis://u:p@%zz", "-1s", "1ns", "short", "====", "DEBUG", "-h")
	f.Add("", "host:99999", "rediss://", "9223372036854775807ns", "2562047h", "", "AAAA", "warn", "-master-key")
	f.Fuzz(func(t *testing.T, env, addr, redisURL, accessTTL, maxAccessTTL, masterKey, kek, logLevel, argLine string) {
		vars := map[string]string{
			varEnv:              env,
			varGRPCAddr:         addr,
			varRedisURL:         redisURL,
			varAccessTTL:        accessTTL,
			varMaxAccessTTL:     maxAccessTTL,
			varMasterKey:        masterKey,
			varKeyEncryptionKey: kek,
			varLogLevel:         logLevel,
		}
		c, err := Parse(strings.Fields(argLine), fakeEnv(vars), nil)
		if err != nil {
			if c != nil {
				t.Errorf("Parse returned a config with the error %v", err)
			}
			return
		}
		if c.Env != EnvDevelopment && c.Env != EnvProduction {
			t.Errorf("Env = %q", c.Env)
		}
		if c.AccessTTL <= 0 || c.MaxAccessTTL < c.AccessTTL || c.RefreshGrace < 0 || c.RefreshGrace > time.Minute {
			t.Errorf("invalid durations accepted: %v", c)
		}
		if c.Production() && (c.RedisURL == "" || c.masterKey == (secretSource{}) || c.keyEncryptionKey == (secretSource{})) {
			t.Errorf("incomplete production configuration accepted: %v", c)
		}
	})
}

func TestRedisURLFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redis-url")
	const url = "redis://:s3cret-password@redis:6379/0"
	if err := os.WriteFile(path, []byte(url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{varRedisURL + fileSuffix: path}
	cfg, err := Parse(nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RedisURL != url {
		t.Errorf("RedisURL = %q, want the file's content without the newline", cfg.RedisURL)
	}
	if strings.Contains(fmt.Sprint(cfg), "s3cret-password") {
		t.Error("the printed configuration shows the password of the URL read from the file")
	}
}

// TestRedisURLFileOpenToOthersInProduction: the URL may hold the Redis password, so production
// refuses a file that others can read, naming the file and its mode; development accepts it.
func TestRedisURLFileOpenToOthersInProduction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redis-url")
	const url = "redis://:s3cret-password@redis:6379/0"
	if err := os.WriteFile(path, []byte(url), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	env := production(map[string]string{varRedisURL: "", varRedisURL + fileSuffix: path})
	_, err := Parse(nil, func(k string) string { return env[k] }, nil)
	if err == nil || !strings.Contains(err.Error(), varRedisURL+fileSuffix) || !strings.Contains(err.Error(), "permissions 0644") {
		t.Fatalf("production with a redis URL file of mode 0644: %v, want a refusal naming the file and mode", err)
	}
	if strings.Contains(err.Error(), "s3cret-password") {
		t.Fatal("the error shows the password")
	}
	dev := map[string]string{varRedisURL + fileSuffix: path}
	if _, err := Parse(nil, func(k string) string { return dev[k] }, nil); err != nil {
		t.Fatalf("development: %v", err)
	}
}

// TestRedisURLFileReadLikeASecret: the Redis URL's file goes through the reader of the secrets'
// files, with its bound on the size and its messages, which name the setting and the file and
// never the content.
func TestRedisURLFileReadLikeASecret(t *testing.T) {
	dir := t.TempDir()
	const password = "s3cret-password"
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{name: "empty", path: write("empty", " \n"), want: []string{varRedisURL + fileSuffix + ": the file", "is empty"}},
		{name: "too large", path: write("large", "redis://:"+password+"@redis:6379/0"+strings.Repeat(" ", maxSecretFileSize)),
			want: []string{varRedisURL + fileSuffix + ":", "is larger than"}},
		{name: "directory", path: dir, want: []string{varRedisURL + fileSuffix + ": cannot read the file", "is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(nil, fakeEnv(map[string]string{varRedisURL + fileSuffix: tt.path}), nil)
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Error("the error shows the password")
			}
		})
	}
}

// TestUsageDefaultsAreTheParsedDefaults: giving a setting the default that the usage text shows
// for an environment changes nothing, in development and in production, so the usage text cannot
// drift from what Parse applies.
func TestUsageDefaultsAreTheParsedDefaults(t *testing.T) {
	// needs holds what a setting is only allowed with, given alike to both sides.
	needs := map[string]map[string]string{
		varTLSClientAuth: {varTLSCertFile: "cert.pem", varTLSKeyFile: "key.pem", varTLSClientCAFile: "ca.pem", varInsecurePlaintext: ""},
	}
	for _, base := range []struct {
		name string
		env  map[string]string
		prod bool
	}{
		{name: "development", env: map[string]string{}},
		{name: "production", env: production(nil), prod: true},
	} {
		for _, s := range settings {
			def := s.devDef
			if base.prod && s.prodDef != "" {
				def = s.prodDef
			}
			if _, given := base.env[s.env]; given || def == "" {
				continue
			}
			t.Run(base.name+"/"+s.env, func(t *testing.T) {
				env := map[string]string{}
				for k, v := range base.env {
					env[k] = v
				}
				for k, v := range needs[s.env] {
					env[k] = v
				}
				want, err := Parse(nil, fakeEnv(env), nil)
				if err != nil {
					t.Fatal(err)
				}
				env[s.env] = def
				got, err := Parse(nil, fakeEnv(env), nil)
				if err != nil {
					t.Fatalf("%s=%q (the default shown): %v", s.env, def, err)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s=%q (the default shown) gives\n%v\nwant\n%v", s.env, def, got, want)
				}
			})
		}
	}
}
