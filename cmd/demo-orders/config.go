package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// Environment variables. Each has the flag its comment names, which wins over it, except the
// API key itself: a flag's value shows in the process list.
const (
	envAddr          = "DEMO_ADDR"           // -addr
	envAuthorityAddr = "TOKENAUTHORITY_ADDR" // -authority-addr
	envCACert        = "DEMO_CACERT"         // -cacert
	envCert          = "DEMO_CERT"           // -cert
	envKey           = "DEMO_KEY"            // -key
	envAPIKey        = "DEMO_API_KEY"        //nolint:gosec // G101: a variable's name; no flag
	envAPIKeyFile    = "DEMO_API_KEY_FILE"   //nolint:gosec // G101: a variable's name; -api-key-file
	envAudience      = "DEMO_AUDIENCE"       // -audience
	envIssuer        = "DEMO_ISSUER"         // -issuer
)

// Defaults: those of `make run`, so that the demo works against it with no settings.
const (
	defaultAddr          = "127.0.0.1:50061"
	defaultAuthorityAddr = "127.0.0.1:50051"
	defaultAPIKeyFile    = ".data/dev-api-key" //nolint:gosec // G101: a file name, not a credential
	defaultAudience      = "orders"
	// defaultIssuer is the issuer of the dev tenant that the authority creates in development.
	defaultIssuer = "urn:tokenauthority:tenant:dev"

	defaultStreamRecheck   = time.Second
	defaultStartTimeout    = 10 * time.Second
	defaultShutdownTimeout = 5 * time.Second
)

// config is the demo's configuration.
type config struct {
	// Addr is where the demo listens.
	Addr string
	// AuthorityAddr is the token authority's gRPC address, reached without TLS unless one of the
	// TLS settings below is given.
	AuthorityAddr string
	// CACert is the PEM bundle that verifies the authority's certificate; setting it (or Cert)
	// makes the demo reach the authority over TLS. Cert and Key are the demo's client
	// certificate, for an authority that asks for one (mutual TLS).
	CACert, Cert, Key string
	// APIKey is an API key of the tenant with role verify. Never log it.
	APIKey string
	// APIKeyFile is where APIKey was read from, when DEMO_API_KEY was not set.
	APIKeyFile string
	// Audience is the demo's own name: tokens must name it in aud.
	Audience string
	// Issuer is the tenant's issuer: tokens must carry it in iss.
	Issuer string

	// StreamRecheck is how often WatchOrders checks its token again.
	StreamRecheck time.Duration
	// StartTimeout bounds fetching the keys and catching up with the revocation stream.
	StartTimeout time.Duration
	// ShutdownTimeout bounds how long in-flight calls may run after the signal.
	ShutdownTimeout time.Duration
	// Logger receives the demo's logs.
	Logger *slog.Logger
}

// parseConfig reads the configuration from args and the environment, and reports every problem
// at once. -h gives flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	envOr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	c := config{
		StreamRecheck:   defaultStreamRecheck,
		StartTimeout:    defaultStartTimeout,
		ShutdownTimeout: defaultShutdownTimeout,
	}
	fs := flag.NewFlagSet("demo-orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", envOr(envAddr, defaultAddr), "listen address ("+envAddr+")")
	fs.StringVar(&c.AuthorityAddr, "authority-addr", envOr(envAuthorityAddr, defaultAuthorityAddr),
		"the token authority's gRPC address, plaintext ("+envAuthorityAddr+")")
	fs.StringVar(&c.CACert, "cacert", envOr(envCACert, ""), "CA bundle (PEM) that verifies the authority: reach it over TLS ("+envCACert+")")
	fs.StringVar(&c.Cert, "cert", envOr(envCert, ""), "client certificate (PEM) for mutual TLS with the authority ("+envCert+")")
	fs.StringVar(&c.Key, "key", envOr(envKey, ""), "the client certificate's private key (PEM) ("+envKey+")")
	fs.StringVar(&c.APIKeyFile, "api-key-file", envOr(envAPIKeyFile, defaultAPIKeyFile),
		"file holding an API key of the tenant with role verify ("+envAPIKeyFile+"); "+envAPIKey+" holds the key itself and wins")
	fs.StringVar(&c.Audience, "audience", envOr(envAudience, defaultAudience), "the audience tokens must name ("+envAudience+")")
	fs.StringVar(&c.Issuer, "issuer", envOr(envIssuer, defaultIssuer), "the tenant's issuer ("+envIssuer+"); the default is the dev tenant's")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: demo-orders [flags]\n\nThe demo orders service, protected by authn in local mode. Flags win over the variables.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	for _, a := range []struct{ name, v string }{{"-addr", c.Addr}, {"-authority-addr", c.AuthorityAddr}} {
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", a.name, a.v))
		}
	}
	if c.Audience == "" || strings.ContainsAny(c.Audience, " \t\r\n") {
		errs = append(errs, fmt.Errorf("-audience: %q must be one non-empty word", c.Audience))
	}
	if c.Issuer == "" {
		errs = append(errs, errors.New("-issuer: must not be empty"))
	}
	if (c.Cert == "") != (c.Key == "") {
		errs = append(errs, errors.New("-cert and -key go together"))
	}
	key, err := resolveAPIKey(getenv(envAPIKey), c.APIKeyFile)
	if err != nil {
		errs = append(errs, err)
	}
	c.APIKey = key
	if getenv(envAPIKey) != "" {
		c.APIKeyFile = ""
	}
	if err := errors.Join(errs...); err != nil {
		return config{}, err
	}
	return c, nil
}

// resolveAPIKey returns value when set, else the content of file. Errors never show the key.
func resolveAPIKey(value, file string) (string, error) {
	if v := strings.TrimSpace(value); v != "" {
		return v, nil
	}
	if file == "" {
		return "", fmt.Errorf("no API key: set %s or %s", envAPIKey, envAPIKeyFile)
	}
	raw, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the file
	if err != nil {
		return "", fmt.Errorf("no API key: set %s, or %s (default %s, which `make run` writes): %w",
			envAPIKey, envAPIKeyFile, defaultAPIKeyFile, err)
	}
	v := strings.TrimSpace(string(raw))
	if v == "" {
		return "", fmt.Errorf("no API key: %s is empty", file)
	}
	return v, nil
}
