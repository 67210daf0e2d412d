package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn/authntest"
	ordersv1 "github.com/tokenauthority/tokenauthority/gen/demo/orders/v1"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

const testAPIKey = "tak_demo-orders-test-key" //nolint:gosec // G101: a test value

func TestParseConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(testAPIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missingFile := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config   // compared when wantErr is empty
		wantErr []string // every one must be in the error
		isErr   error    // when set, errors.Is must hold
	}{
		{
			name: "defaults, key from a file",
			env:  map[string]string{envAPIKeyFile: keyFile},
			want: config{Addr: defaultAddr, AuthorityAddr: defaultAuthorityAddr, APIKey: testAPIKey, APIKeyFile: keyFile,
				Audience: defaultAudience, Issuer: defaultIssuer},
		},
		{
			name: "environment",
			env: map[string]string{envAddr: "127.0.0.1:1", envAuthorityAddr: "127.0.0.1:2", envAPIKeyFile: keyFile,
				envAudience: "shop", envIssuer: "https://acme.example"},
			want: config{Addr: "127.0.0.1:1", AuthorityAddr: "127.0.0.1:2", APIKey: testAPIKey, APIKeyFile: keyFile,
				Audience: "shop", Issuer: "https://acme.example"},
		},
		{
			name: "flags win over the environment",
			args: []string{"-addr", "127.0.0.1:3", "-authority-addr", "127.0.0.1:4", "-api-key-file", keyFile,
				"-audience", "billing", "-issuer", "urn:x"},
			env: map[string]string{envAddr: "127.0.0.1:1", envAuthorityAddr: "127.0.0.1:2", envAPIKeyFile: missingFile,
				envAudience: "shop", envIssuer: "https://acme.example"},
			want: config{Addr: "127.0.0.1:3", AuthorityAddr: "127.0.0.1:4", APIKey: testAPIKey, APIKeyFile: keyFile,
				Audience: "billing", Issuer: "urn:x"},
		},
		{
			name: "DEMO_API_KEY wins over the file",
			env:  map[string]string{envAPIKey: "tak_from-the-variable", envAPIKeyFile: missingFile},
			want: config{Addr: defaultAddr, AuthorityAddr: defaultAuthorityAddr, APIKey: "tak_from-the-variable",
				Audience: defaultAudience, Issuer: defaultIssuer},
		},
		{
			name:    "missing key file",
			env:     map[string]string{envAPIKeyFile: missingFile},
			wantErr: []string{"no API key", envAPIKey, envAPIKeyFile, "make run"},
		},
		{
			name:    "empty key file",
			env:     map[string]string{envAPIKeyFile: emptyFile},
			wantErr: []string{"no API key", "is empty"},
		},
		{
			name: "every problem at once",
			args: []string{"-addr", "nowhere", "-authority-addr", "", "-audience", "two words", "-issuer", "", "extra"},
			env:  map[string]string{envAPIKeyFile: missingFile},
			wantErr: []string{`unexpected arguments: ["extra"]`, `-addr: "nowhere" is not host:port`,
				`-authority-addr: "" is not host:port`, `-audience: "two words"`, "-issuer: must not be empty", "no API key"},
		},
		{
			name:  "help",
			args:  []string{"-h"},
			isErr: flag.ErrHelp,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.isErr != nil || len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one")
				}
				if tt.isErr != nil && !errors.Is(err, tt.isErr) {
					t.Errorf("error %v, want %v", err, tt.isErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if strings.Contains(err.Error(), testAPIKey) {
					t.Errorf("error shows the API key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.StreamRecheck, tt.want.StartTimeout, tt.want.ShutdownTimeout = defaultStreamRecheck, defaultStartTimeout, defaultShutdownTimeout
			if got != tt.want {
				t.Errorf("config\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// fakeAuthority serves the two RPCs a local verifier uses: ListPublicKeys and WatchRevocations.
// Revocations pushed into events reach the watcher; a marker follows every event and is sent
// every 50 ms besides, as the authority's heartbeat.
type fakeAuthority struct {
	tokenauthorityv1.UnimplementedTokenServiceServer
	keys   []*tokenauthorityv1.JsonWebKey
	events chan *tokenauthorityv1.WatchRevocationsResponse
}

func (f *fakeAuthority) checkKey(ctx context.Context) error {
	if v := metadata.ValueFromIncomingContext(ctx, "x-api-key"); len(v) != 1 || v[0] != testAPIKey {
		return status.Error(codes.Unauthenticated, "invalid API key")
	}
	return nil
}

func (f *fakeAuthority) ListPublicKeys(ctx context.Context, _ *tokenauthorityv1.ListPublicKeysRequest) (*tokenauthorityv1.ListPublicKeysResponse, error) {
	if err := f.checkKey(ctx); err != nil {
		return nil, err
	}
	return &tokenauthorityv1.ListPublicKeysResponse{Keys: f.keys}, nil
}

func (f *fakeAuthority) WatchRevocations(_ *tokenauthorityv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[tokenauthorityv1.WatchRevocationsResponse]) error {
	if err := f.checkKey(stream.Context()); err != nil {
		return err
	}
	seq := 1
	marker := func() error {
		return stream.Send(&tokenauthorityv1.WatchRevocationsResponse{Cursor: strconv.Itoa(seq)})
	}
	if err := marker(); err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case ev := <-f.events:
			seq++
			ev.Cursor = strconv.Itoa(seq)
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-tick.C:
		}
		if err := marker(); err != nil {
			return err
		}
	}
}

// startFakeAuthority serves f on a loopback port and returns its address.
func startFakeAuthority(t *testing.T, f *fakeAuthority) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	tokenauthorityv1.RegisterTokenServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRun runs the demo as main does, against a fake authority: a token works until the authority
// pushes its revocation, then both new calls and a stream opened before are refused; cancelling
// the context stops the demo gracefully although a stream is still open.
func TestRun(t *testing.T) {
	t.Parallel()
	iss := authntest.NewIssuer(authntest.WithIssuer(defaultIssuer), authntest.WithAudience(defaultAudience))
	authority := &fakeAuthority{keys: []*tokenauthorityv1.JsonWebKey{iss.JWK()}, events: make(chan *tokenauthorityv1.WatchRevocationsResponse)}
	authorityAddr := startFakeAuthority(t, authority)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := config{
		Addr: lis.Addr().String(), AuthorityAddr: authorityAddr, APIKey: testAPIKey,
		Audience: defaultAudience, Issuer: defaultIssuer,
		StreamRecheck: 20 * time.Millisecond, StartTimeout: 5 * time.Second, ShutdownTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, lis) }()

	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	orders := ordersv1.NewOrderServiceClient(conn)
	callCtx, callCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer callCancel()

	health, err := healthpb.NewHealthClient(conn).Check(callCtx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v; want SERVING", health, err)
	}

	const jti = "session-1.token-1"
	token := iss.Token(authntest.Subject("alice"), authntest.Scopes(scopeRead, scopeWrite), authntest.JTI(jti))
	aliceCtx := metadata.AppendToOutgoingContext(callCtx, "authorization", "Bearer "+token)
	created, err := orders.CreateOrder(aliceCtx, &ordersv1.CreateOrderRequest{Item: "coffee", Quantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	get := &ordersv1.GetOrderRequest{OrderId: created.GetOrder().GetOrderId()}
	if _, err := orders.GetOrder(aliceCtx, get); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.GetOrder(callCtx, get); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v, want Unauthenticated", err)
	}
	aliceStream, err := orders.WatchOrders(aliceCtx, &ordersv1.WatchOrdersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aliceStream.Recv(); err != nil {
		t.Fatal(err)
	}

	// The authority pushes the revocation; the demo refuses the token from then on.
	revokedAt := time.Now()
	authority.events <- &tokenauthorityv1.WatchRevocationsResponse{
		Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: jti,
		ExpireTime: timestamppb.New(time.Now().Add(authntest.DefaultTTL)),
	}
	for {
		_, err := orders.GetOrder(aliceCtx, get)
		if status.Code(err) == codes.Unauthenticated {
			t.Logf("revocation pushed -> token refused in %v", time.Since(revokedAt).Round(time.Millisecond))
			break
		}
		if err != nil {
			t.Fatalf("after the revocation: %v, want OK then Unauthenticated", err)
		}
		if time.Since(revokedAt) > time.Second {
			t.Fatal("the revoked token is still accepted after a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := aliceStream.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the stream opened before the revocation: %v, want Unauthenticated", err)
	}

	// Another subject's open stream does not hold up the shutdown.
	bobCtx := metadata.AppendToOutgoingContext(callCtx, "authorization", "Bearer "+iss.Token(authntest.Subject("bob"), authntest.Scopes(scopeRead)))
	bobStream, err := orders.WatchOrders(bobCtx, &ordersv1.WatchOrdersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := orders.GetOrder(bobCtx, get); status.Code(err) != codes.NotFound {
		t.Fatalf("bob reading alice's order: %v, want NotFound", err) // also makes sure bob's stream is open
	}
	stoppedAt := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(cfg.ShutdownTimeout):
		t.Fatal("run did not return within the shutdown timeout")
	}
	if d := time.Since(stoppedAt); d > 2*time.Second {
		t.Errorf("shutdown took %v: the open stream held it up", d)
	}
	if _, err := bobStream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("bob's stream at shutdown: %v, want Unavailable", err)
	}

	out := logs.String()
	for _, secret := range []string{testAPIKey, token} {
		if strings.Contains(out, secret) {
			t.Errorf("the logs show a secret:\n%s", out)
		}
	}
	for _, want := range []string{"verifying tokens locally", "order created", "token revoked", "shutting down"} {
		if !strings.Contains(out, want) {
			t.Errorf("the logs lack %q:\n%s", want, out)
		}
	}
}

// TestRunStartFailures: the demo refuses to serve when it cannot verify tokens, and says why.
func TestRunStartFailures(t *testing.T) {
	t.Parallel()
	iss := authntest.NewIssuer()
	withKeys := startFakeAuthority(t, &fakeAuthority{keys: []*tokenauthorityv1.JsonWebKey{iss.JWK()}})
	noKeys := startFakeAuthority(t, &fakeAuthority{})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := closed.Addr().String()
	_ = closed.Close()

	tests := []struct {
		name      string
		authority string
		apiKey    string
		wantErr   string
	}{
		{"authority unreachable", unreachable, testAPIKey, "start the local verifier"},
		{"API key refused", withKeys, "tak_wrong", "invalid API key"},
		{"no key usable locally (an HS256 tenant)", noKeys, testAPIKey, "no usable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg := config{
				Addr: lis.Addr().String(), AuthorityAddr: tt.authority, APIKey: tt.apiKey,
				Audience: defaultAudience, Issuer: defaultIssuer,
				StreamRecheck: time.Second, StartTimeout: time.Second, ShutdownTimeout: time.Second,
				Logger: slog.New(slog.DiscardHandler),
			}
			err = run(context.Background(), cfg, lis)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run: %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), tt.apiKey) {
				t.Errorf("the error shows the API key: %v", err)
			}
		})
	}
}

// TestRunOverMutualTLS: with -cacert, -cert and -key the demo reaches an authority that requires a
// client certificate, verifies its server certificate, and serves; without them it cannot start.
func TestRunOverMutualTLS(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "demo-ca")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	certFile, keyFile := ca.Client(t, "demo-orders").Write(t, dir)

	iss := authntest.NewIssuer(authntest.WithIssuer(defaultIssuer), authntest.WithAudience(defaultAudience))
	authority := &fakeAuthority{keys: []*tokenauthorityv1.JsonWebKey{iss.JWK()}, events: make(chan *tokenauthorityv1.WatchRevocationsResponse)}
	server := ca.Server(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{server.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})))
	tokenauthorityv1.RegisterTokenServiceServer(srv, authority)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	start := func(c config) (string, chan error, context.CancelFunc) {
		demoLis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.Addr, c.AuthorityAddr, c.APIKey = demoLis.Addr().String(), lis.Addr().String(), testAPIKey
		c.Audience, c.Issuer = defaultAudience, defaultIssuer
		c.StreamRecheck, c.StartTimeout, c.ShutdownTimeout = time.Second, 2*time.Second, time.Second
		c.Logger = slog.New(slog.DiscardHandler)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, c, demoLis) }()
		return c.Addr, done, cancel
	}

	addr, done, cancel := start(config{CACert: caFile, Cert: certFile, Key: keyFile})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, callCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer callCancel()
	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("over mutual TLS: %v, %v; want SERVING", health, err)
	}
	cancel()
	<-done

	// Plaintext, or TLS without the client certificate: the authority refuses the demo.
	for name, c := range map[string]config{"plaintext": {}, "no client certificate": {CACert: caFile}} {
		_, done, cancel := start(c)
		if err := <-done; err == nil {
			t.Errorf("%s: the demo started against an authority that requires a client certificate", name)
		}
		cancel()
	}
}
