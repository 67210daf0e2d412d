package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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
	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// syncBuffer collects log output from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	app    *App
	conn   *grpc.ClientConn
	logs   *syncBuffer
	devKey string
	master string
	cancel context.CancelFunc
	done   chan error
}

func testConfig(t testing.TB, redisURL string) *config.Config {
	t.Helper()
	env := map[string]string{
		"TOKENAUTHORITY_DATA_DIR":  t.TempDir(),
		"TOKENAUTHORITY_REDIS_URL": redisURL,
	}
	cfg, err := config.Parse(nil, func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.ResolveSecrets(); err != nil {
		t.Fatal(err)
	}
	// Debug level, so that the checks for secrets in logs see everything that could be logged.
	cfg.LogLevel = slog.LevelDebug
	return cfg
}

func start(t testing.TB, cfg *config.Config) *running {
	t.Helper()
	return startLogging(t, cfg, nil)
}

// startLogging is start with the server's log also written to w (when not nil) instead of only
// to the buffer that the secret checks read.
func startLogging(t testing.TB, cfg *config.Config, w io.Writer) *running {
	t.Helper()
	r, _ := startWith(t, cfg, w, func(log *slog.Logger) (*App, error) { return New(cfg, log) })
	return r
}

// startWith starts the app that build makes from the test's logger (writing to w when not nil,
// else to the buffer that the secret checks read), waits until it serves, and returns it with the
// address of its HTTP server.
func startWith(t testing.TB, cfg *config.Config, w io.Writer, build func(log *slog.Logger) (*App, error)) (*running, string) {
	t.Helper()
	return startWithCreds(t, cfg, w, build, insecure.NewCredentials())
}

// startWithCreds is startWith with the transport credentials of the test's connection.
func startWithCreds(t testing.TB, cfg *config.Config, w io.Writer, build func(log *slog.Logger) (*App, error),
	creds credentials.TransportCredentials) (*running, string) {
	t.Helper()
	logs := &syncBuffer{}
	var out io.Writer = logs
	if w != nil {
		out = w
	}
	a, err := build(slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: cfg.LogLevel})))
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{app: a, logs: logs, cancel: cancel, done: make(chan error, 1), master: cfg.MasterKey.Reveal()}
	go func() { r.done <- a.Serve(ctx, gl, hl) }()
	r.conn, err = grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.conn.Close()
		r.stop(t)
	})
	r.waitServing(t, healthpb.HealthCheckResponse_SERVING)
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, DevAPIKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	r.devKey = strings.TrimSpace(string(raw))
	return r, hl.Addr().String()
}

func (r *running) stop(t testing.TB) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("server did not stop")
	}
	r.done <- nil
}

// waitServing polls the health service until it reports want (bounded; the probe runs each second).
func (r *running) waitServing(t testing.TB, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	hc := healthpb.NewHealthClient(r.conn)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: tokenauthorityv1.TokenService_ServiceDesc.ServiceName})
		if err == nil && resp.GetStatus() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never became %v (last: %v, %v)", want, resp.GetStatus(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func withKey(key string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "x-api-key", key)
}

func TestServiceEndToEndInMemory(t *testing.T) {
	r := start(t, testConfig(t, ""))
	exerciseLifecycle(t, r)
}

func TestServiceEndToEndRedis(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, testConfig(t, srv.URL()))
	exerciseLifecycle(t, r)
}

func exerciseLifecycle(t *testing.T, r *running) {
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	ctx := withKey(r.devKey)
	issued, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Audience: []string{"orders"}, Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: issued.GetAccessToken(), Audience: "orders", RequiredScopes: []string{"read"}})
	if err != nil || !v.GetActive() || v.GetClaims().GetSubject() != "alice" {
		t.Fatalf("verify fresh token: %v %v", v, err)
	}
	refreshed, err := ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: issued.GetRefreshToken()})
	if err != nil {
		t.Fatal(err)
	}
	// A retry inside the grace window gets the same new refresh token.
	again, err := ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: issued.GetRefreshToken()})
	if err != nil || again.GetRefreshToken() != refreshed.GetRefreshToken() {
		t.Fatalf("retry within grace: %v", err)
	}
	list, err := ts.ListSessions(ctx, &tokenauthorityv1.ListSessionsRequest{Subject: "alice"})
	if err != nil || len(list.GetSessions()) != 1 || list.GetSessions()[0].GetGeneration() != 1 {
		t.Fatalf("list sessions: %v %v", list, err)
	}
	if _, err := ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: issued.GetSessionId()}}); err != nil {
		t.Fatal(err)
	}
	v, err = ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: refreshed.GetAccessToken()})
	if err != nil || v.GetActive() || v.GetReason() != tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED {
		t.Fatalf("after revoke: %v %v", v, err)
	}
	keys, err := ts.ListPublicKeys(ctx, &tokenauthorityv1.ListPublicKeysRequest{})
	if err != nil || len(keys.GetKeys()) != 1 || keys.GetKeys()[0].GetKty() != "OKP" {
		t.Fatalf("public keys: %v %v", keys, err)
	}
	assertNoSecretsLogged(t, r, issued.GetAccessToken(), issued.GetRefreshToken(), refreshed.GetRefreshToken())
}

func assertNoSecretsLogged(t *testing.T, r *running, secrets ...string) {
	t.Helper()
	logs := r.logs.String()
	for _, s := range append(secrets, r.devKey, r.master) {
		if s == "" {
			continue
		}
		// Any sizeable piece of a secret counts: a token's payload or signature, an API key's secret
		// half. (An API key's 16-character id is not secret: it is logged on purpose.)
		for _, part := range append(strings.Split(s, "."), s) {
			if len(part) >= 20 && strings.Contains(logs, part) {
				t.Fatalf("a secret appears in the logs")
			}
		}
	}
}

func TestCallerAuthentication(t *testing.T) {
	r := start(t, testConfig(t, ""))
	verifyOnly, _, err := r.app.tenants.CreateAPIKey(context.Background(), DevTenant, "verifier", []tenant.Role{tenant.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	_, verifyKey, err := r.app.tenants.CreateAPIKey(context.Background(), DevTenant, "verifier2", []tenant.Role{tenant.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	_ = verifyOnly
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	issue := &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}
	forged := tenant.NewAPIKeyValue()
	tests := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no key", context.Background(), codes.Unauthenticated},
		{"garbage key", withKey("hunter2"), codes.Unauthenticated},
		{"well-formed unknown key", withKey(forged), codes.Unauthenticated},
		{"dev key tampered", withKey(r.devKey[:len(r.devKey)-2] + "AA"), codes.Unauthenticated},
		{"master key cannot issue", withKey(r.master), codes.PermissionDenied},
		{"verify-only key cannot issue", withKey(verifyKey), codes.PermissionDenied},
		{"dev key issues", withKey(r.devKey), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ts.IssueToken(tt.ctx, issue)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
			}
		})
	}
	// A verify-only key cannot revoke either.
	_, err = ts.RevokeSessions(withKey(verifyKey), &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "alice"}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("verify-only revoke: %v", err)
	}
	// Health is public.
	if _, err := healthpb.NewHealthClient(r.conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	assertNoSecretsLogged(t, r, forged, verifyKey)
}

func TestRequestValidation(t *testing.T) {
	r := start(t, testConfig(t, ""))
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	ctx := withKey(r.devKey)
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"verify empty token", func() error {
			_, err := ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{})
			return err
		}, codes.InvalidArgument},
		{"verify oversized token", func() error {
			_, err := ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: strings.Repeat("a", 8<<10+1)})
			return err
		}, codes.InvalidArgument},
		{"verify garbage is inactive, not an error", func() error {
			v, err := ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: "a.b.c"})
			if err == nil && (v.GetActive() || v.GetReason() != tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED) {
				return status.Error(codes.Unknown, "wrong answer")
			}
			return err
		}, codes.OK},
		{"refresh garbage", func() error {
			_, err := ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: "a.b.c"})
			return err
		}, codes.Unauthenticated},
		{"refresh empty", func() error {
			_, err := ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{})
			return err
		}, codes.InvalidArgument},
		{"issue ttl above bound", func() error {
			_, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "a", AccessTtl: durationpb.New(48 * time.Hour)})
			return err
		}, codes.InvalidArgument},
		{"revoke without target", func() error {
			_, err := ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{})
			return err
		}, codes.InvalidArgument},
		{"revoke unknown jti", func() error {
			_, err := ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: "nope"}})
			return err
		}, codes.OK},
		{"revoke sessions without scope", func() error {
			_, err := ts.RevokeSessions(ctx, &tokenauthorityv1.RevokeSessionsRequest{})
			return err
		}, codes.InvalidArgument},
		{"list sessions bad page token", func() error {
			_, err := ts.ListSessions(ctx, &tokenauthorityv1.ListSessionsRequest{Subject: "a", PageToken: "!!!"})
			return err
		}, codes.InvalidArgument},
		{"list sessions page token of another subject", func() error {
			other := store.Cursor{CreatedMillis: 1, SessionID: store.NewSessionID(DevTenant, "b")}.Encode()
			_, err := ts.ListSessions(ctx, &tokenauthorityv1.ListSessionsRequest{Subject: "a", PageToken: other})
			return err
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.want {
				t.Fatalf("code = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRedisOutageFailsClosedAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, testConfig(t, srv.URL()))
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	ctx := withKey(r.devKey)
	issued, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop(t)
	_, err = ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: issued.GetAccessToken()})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("verify with Redis down: %v, want Unavailable", err)
	}
	_, err = ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("issue with Redis down: %v, want Unavailable", err)
	}
	r.waitServing(t, healthpb.HealthCheckResponse_NOT_SERVING)

	// Redis comes back empty: the service recovers by itself, and the lost session's token is
	// inactive (the store is an allow-list).
	srv.Restart(t)
	r.waitServing(t, healthpb.HealthCheckResponse_SERVING)
	v, err := ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: issued.GetAccessToken()})
	if err != nil || v.GetActive() {
		t.Fatalf("after restart: %v %v, want inactive", v, err)
	}
	if _, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}); err != nil {
		t.Fatalf("issue after recovery: %v", err)
	}
}

func TestWrongKeyEncryptionKeyStopsStartUp(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	start(t, cfg).stop(t)

	bad := make([]byte, 32)
	_, _ = rand.Read(bad)
	cfg.KeyEncryptionKey = bad
	a, err := New(cfg, slog.New(slog.NewTextHandler(&syncBuffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	err = a.Serve(context.Background(), gl, hl)
	if err == nil || !strings.Contains(err.Error(), "TOKENAUTHORITY_KEY_ENCRYPTION_KEY") {
		t.Fatalf("Serve with a wrong KEK: %v", err)
	}
	if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(bad)) {
		t.Fatal("the error shows the key")
	}
}
