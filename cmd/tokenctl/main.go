// Command tokenctl administers a token authority over gRPC: tenants, API keys, principals,
// signing keys, sessions and revocations.
//
// Usage:
//
//	tokenctl [global flags] <command> [flags]
//
// Run "tokenctl help" for the list of commands and "tokenctl help <command>" for one command's
// flags. The API key is taken from -key-file, -key, TOKENCTL_API_KEY or TOKENCTL_API_KEY_FILE and
// sent as x-api-key metadata; tokenctl never prints it.
//
// Exit status: 0 on success, 1 when the call fails (and when verify finds the token inactive),
// 2 on a usage error.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
)

// Exit codes of run.
const (
	exitOK    = 0
	exitRPC   = 1
	exitUsage = 2
	// exitInactive is verify's status for a token that is not active. It is the status of a
	// failed call on purpose: "tokenctl verify ... && use-the-token" must go ahead on neither, and
	// the output tells them apart ("inactive: <reason>" on stdout, a failure on stderr).
	exitInactive = exitRPC
)

// Environment variables read by tokenctl: names, not credentials.
//
//nolint:gosec // G101 matches "API_KEY" in the names.
const (
	envAddr       = "TOKENCTL_ADDR"
	envAPIKey     = "TOKENCTL_API_KEY"
	envAPIKeyFile = "TOKENCTL_API_KEY_FILE"
)

const (
	defaultAddr    = "127.0.0.1:50051"
	defaultTimeout = 10 * time.Second
	apiKeyHeader   = "x-api-key"
	redacted       = "[redacted]"
)

// Output formats accepted by -o.
const (
	formatText = "text"
	formatJSON = "json"
)

func main() {
	// An interrupt cancels the call, which lets watch end cleanly; once it has, signals get their
	// default effect back, so that a second interrupt ends tokenctl whatever it is doing.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// globals holds the flags that come before the command.
type globals struct {
	addr    string
	key     string
	keyFile string
	tls     bool
	timeout time.Duration
	output  string
	// caCert, cert and certKey are the TLS files: the CAs that verify the server, and the client
	// certificate and its key for mutual TLS. Any of them selects TLS.
	caCert, cert, certKey string
}

// usageError reports a command line that cannot be run; run exits with exitUsage.
type usageError struct {
	msg string
}

func (e *usageError) Error() string { return e.msg }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run executes tokenctl with args (without the program name) and returns the process exit code:
// exitOK on success, exitRPC when the call (or writing its result) fails, exitInactive when verify
// finds the token inactive, and exitUsage when the command line is wrong. stdin is read only for a
// secret whose file is "-".
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	var g globals
	fs := newGlobalFlagSet(&g, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, getenv)
			return exitOK
		}
		fmt.Fprintf(stderr, "tokenctl: %v\n\n", err)
		printUsage(stderr, getenv)
		return exitUsage
	}
	if err := g.validate(); err != nil {
		fmt.Fprintf(stderr, "tokenctl: %v\n\n", err)
		printUsage(stderr, getenv)
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, "tokenctl: missing command\n\n")
		printUsage(stderr, getenv)
		return exitUsage
	}
	if rest[0] == "help" {
		return runHelp(rest[1:], stdout, stderr, getenv)
	}
	cmd, cmdArgs, err := lookup(rest)
	if err != nil {
		fmt.Fprintf(stderr, "tokenctl: %v\n\n", err)
		printUsage(stderr, getenv)
		return exitUsage
	}
	return runCommand(ctx, &g, cmd, cmdArgs, stdin, stdout, stderr, getenv)
}

// runCommand parses the command's flags, then makes its call.
func runCommand(
	ctx context.Context, g *globals, cmd *command, args []string, stdin io.Reader, stdout, stderr io.Writer,
	getenv func(string) string,
) int {
	fs := newCommandFlagSet(cmd)
	prepare := cmd.bind(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandUsage(stdout, cmd, fs)
			return exitOK
		}
		return commandUsageError(stderr, cmd, fs, err)
	}
	if fs.NArg() > 0 {
		return commandUsageError(stderr, cmd, fs,
			usagef("unexpected positional argument(s) (%d): every parameter is a flag", fs.NArg()))
	}
	do, err := prepare()
	if err != nil {
		return commandUsageError(stderr, cmd, fs, err)
	}

	key, err := resolveAPIKey(g, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tokenctl: %v\n", err)
		return exitUsage
	}
	conn, err := dial(g)
	if badFlags := (*usageError)(nil); errors.As(err, &badFlags) {
		// TLS files that cannot be read: the command line is wrong, and nothing was sent.
		fmt.Fprintf(stderr, "tokenctl: %v\n", err)
		return exitUsage
	}
	if err != nil {
		reportError(stderr, err, key)
		return exitRPC
	}
	defer conn.Close()

	if !cmd.stream {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	ctx = metadata.AppendToOutgoingContext(ctx, apiKeyHeader, key)
	c := &clients{
		token: tokenauthorityv1.NewTokenServiceClient(conn),
		admin: tokenauthorityv1.NewAdminServiceClient(conn),
	}
	p := &printer{in: stdin, out: stdout, errOut: stderr, asJSON: g.output == formatJSON}
	err = do(ctx, c, p)
	var usage *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errInactive):
		return exitInactive // verify has printed the answer
	case errors.As(err, &usage):
		// A secret's file that cannot be read: the command line is wrong, and nothing was sent.
		fmt.Fprintf(stderr, "tokenctl %s: %v\n", cmd.name, err)
		return exitUsage
	}
	reportError(stderr, err, key)
	return exitRPC
}

// newGlobalFlagSet defines the global flags on a new FlagSet that reports errors to its caller
// instead of printing them.
func newGlobalFlagSet(g *globals, getenv func(string) string) *flag.FlagSet {
	addr := defaultAddr
	if v := getenv(envAddr); v != "" {
		addr = v
	}
	fs := flag.NewFlagSet("tokenctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&g.addr, "addr", addr, "server `host:port` (env "+envAddr+")")
	// The key's default stays empty so that printing the defaults can never show it.
	fs.StringVar(&g.key, "key", "", "API key sent as x-api-key (env "+envAPIKey+"; prefer -key-file, argv is visible to other users)")
	fs.StringVar(&g.keyFile, "key-file", "", "read the API key from `file`, trimmed (env "+envAPIKeyFile+")")
	fs.BoolVar(&g.tls, "tls", false, "use TLS with the system roots (default plaintext; implied by -cacert, -cert)")
	fs.StringVar(&g.caCert, "cacert", "", "verify the server with the CA certificates in PEM `file` instead of the system roots")
	fs.StringVar(&g.cert, "cert", "", "present the client certificate in PEM `file` (mutual TLS); needs -cert-key")
	// Not -key, as in grpcurl: -key is the API key.
	fs.StringVar(&g.certKey, "cert-key", "", "private key in PEM `file` of -cert")
	fs.DurationVar(&g.timeout, "timeout", defaultTimeout, "deadline of the call (not of watch, which runs until interrupted)")
	fs.StringVar(&g.output, "o", formatText, "output `format`: text or json")
	return fs
}

// validate checks the global flags that the flag package cannot check by itself.
func (g *globals) validate() error {
	switch {
	case g.addr == "":
		return usagef("-addr must not be empty")
	case g.timeout <= 0:
		return usagef("-timeout must be positive, got %s", g.timeout)
	case g.output != formatText && g.output != formatJSON:
		return usagef("-o must be %q or %q, got %q", formatText, formatJSON, g.output)
	case (g.cert == "") != (g.certKey == ""):
		return usagef("-cert and -cert-key go together")
	}
	return nil
}

// resolveAPIKey returns the API key from, in order of precedence, the -key or -key-file flag,
// then the TOKENCTL_API_KEY or TOKENCTL_API_KEY_FILE variable. Its errors never contain the key.
func resolveAPIKey(g *globals, getenv func(string) string) (string, error) {
	switch {
	case g.key != "" && g.keyFile != "":
		return "", usagef("-key and -key-file are mutually exclusive")
	case g.key != "":
		return strings.TrimSpace(g.key), nil
	case g.keyFile != "":
		return readAPIKeyFile(g.keyFile)
	}
	key, keyFile := getenv(envAPIKey), getenv(envAPIKeyFile)
	switch {
	case key != "" && keyFile != "":
		return "", usagef("%s and %s are both set; unset one", envAPIKey, envAPIKeyFile)
	case key != "":
		return strings.TrimSpace(key), nil
	case keyFile != "":
		return readAPIKeyFile(keyFile)
	}
	return "", usagef("no API key: use -key-file, -key, %s or %s", envAPIKey, envAPIKeyFile)
}

// readAPIKeyFile reads an API key from path, trimming surrounding white space.
func readAPIKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the file
	if err != nil {
		return "", fmt.Errorf("read API key file: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("API key file %s is empty", path)
	}
	return key, nil
}

// dial returns a client connection to the server; it connects on the first call.
func dial(g *globals) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if g.tls || g.caCert != "" || g.cert != "" {
		cfg, err := clientTLS(g)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", g.addr, err)
	}
	return conn, nil
}

// clientTLS returns the TLS configuration the flags describe.
func clientTLS(g *globals) (*tls.Config, error) {
	cfg, err := tlsfiles.ClientConfig(g.caCert, g.cert, g.certKey)
	if err != nil {
		return nil, usagef("-cacert, -cert, -cert-key: %v", err)
	}
	return cfg, nil
}

// reportError prints a failed call as "tokenctl: <code>: <message>", with any occurrence of the
// API key replaced, in case a server echoes it.
func reportError(w io.Writer, err error, key string) {
	msg := err.Error()
	if s, ok := status.FromError(err); ok {
		msg = fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	if key != "" {
		msg = strings.ReplaceAll(msg, key, redacted)
	}
	fmt.Fprintf(w, "tokenctl: %s\n", msg)
}

// commandUsageError prints err and the command's usage, and returns exitUsage.
func commandUsageError(w io.Writer, cmd *command, fs *flag.FlagSet, err error) int {
	fmt.Fprintf(w, "tokenctl %s: %v\n\n", cmd.name, err)
	printCommandUsage(w, cmd, fs)
	return exitUsage
}

// runHelp prints the general usage, or one command's usage when args name it.
func runHelp(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		printUsage(stdout, getenv)
		return exitOK
	}
	cmd, rest, err := lookup(args)
	if err == nil && len(rest) > 0 {
		err = usagef("help takes a command name only")
	}
	if err != nil {
		fmt.Fprintf(stderr, "tokenctl help: %v\n\n", err)
		printUsage(stderr, getenv)
		return exitUsage
	}
	fs := newCommandFlagSet(cmd)
	cmd.bind(fs)
	printCommandUsage(stdout, cmd, fs)
	return exitOK
}

// printUsage prints the general usage: every command with one line each, and the global flags.
func printUsage(w io.Writer, getenv func(string) string) {
	fmt.Fprint(w, "Usage: tokenctl [global flags] <command> [flags]\n\n")
	fmt.Fprint(w, "tokenctl administers a token authority over gRPC.\n\n")
	fmt.Fprint(w, "Commands:\n")
	width := len("help [command]")
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-*s  %s\n", width, "help [command]", "Print this usage, or the usage of one command.")
	fmt.Fprint(w, "\nGlobal flags (before the command):\n")
	var g globals
	fs := newGlobalFlagSet(&g, getenv)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\nExit status: 0 on success, 1 when the call fails or verify finds the token inactive,\n"+
		"2 on a usage error.\n")
	fmt.Fprint(w, "Run 'tokenctl help <command>' for the flags of a command.\n")
}

// printCommandUsage prints one command's synopsis, summary and flags.
func printCommandUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	line := strings.TrimSpace("tokenctl [global flags] " + cmd.name + " " + cmd.synopsis)
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", line, cmd.summary)
	if cmd.details != "" {
		fmt.Fprintf(w, "%s\n", cmd.details)
	}
	fmt.Fprint(w, "\nFlags:\n")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}
