package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// testKey is the caller's API key in every test: distinctive, so that finding it in any output
// proves a leak.
const testKey = "tak_TEST-caller-key-7f3a9c1e5b2d-must-never-be-printed"

// Values returned once by the fake server; printing them is the purpose of their commands.
const (
	newAdminKey        = "tak_new-admin-key-value"
	newAPIKeySecret    = "tak_new-api-key-value"
	newPrincipalSecret = "ps_new-principal-secret"
	cannedAccessToken  = "eyJ.canned-access-token.sig"
	cannedRefreshToken = "eyJ.canned-refresh-token.sig"
)

// Secrets that tokenctl sends but must never print: in testdata/ for the -*-file flags.
const (
	testPrincipalSecret = "tap_test-principal-secret-from-file"
	testRefreshToken    = "eyJ.test-refresh-token-from-file.sig"
)

var (
	t0 = timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	t1 = timestamppb.New(time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC))

	cannedTenant = &tokenauthorityv1.Tenant{
		TenantId:      "acme",
		Issuer:        "https://auth.acme.test",
		Algorithm:     tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256,
		MaxAccessTtl:  durationpb.New(30 * time.Minute),
		AllowedScopes: []string{"read", "write"},
		CreateTime:    t0,
	}
	cannedAPIKey = &tokenauthorityv1.ApiKey{
		KeyId:      "key123",
		TenantId:   "acme",
		Name:       "ci",
		Roles:      []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY},
		CreateTime: t0,
	}
	cannedPrincipal = &tokenauthorityv1.Principal{
		Identifier:  "svc-billing",
		TenantId:    "acme",
		DisplayName: "Billing service",
		Scopes:      []string{"invoices:read"},
		CreateTime:  t0,
	}
	cannedSession = &tokenauthorityv1.Session{
		SessionId:  "sid-1",
		Subject:    "alice",
		CreateTime: t0,
		ExpireTime: t1,
		Generation: 7,
		Metadata:   &tokenauthorityv1.SessionMetadata{Device: "laptop", UserAgent: "curl/8.0"},
	}
	cannedClaims = &tokenauthorityv1.TokenClaims{
		Issuer:     "https://auth.acme.test",
		Subject:    "alice",
		Audience:   []string{"api"},
		ExpireTime: t1,
		Jti:        "jti-1",
		SessionId:  "sid-1",
		Scopes:     []string{"read", "write"},
	}
	// tLeave is when a retired signing key leaves.
	tLeave = timestamppb.New(time.Date(2026, 3, 31, 13, 1, 0, 0, time.UTC))
	// tMilli is a cut-off, which has millisecond precision.
	tMilli = timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 123_000_000, time.UTC))
	// cannedEvents are what the fake WatchRevocations streams by default: one event of each kind,
	// then the caught-up marker and a heartbeat marker with the same cursor.
	cannedEvents = []*tokenauthorityv1.WatchRevocationsResponse{
		{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-1", ExpireTime: t1, Cursor: "100-0"},
		{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, SessionId: "sid-1", ExpireTime: t1, Cursor: "101-0"},
		{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF, Subject: "alice smith", CutoffTime: tMilli, ExpireTime: t1, Cursor: "102-0"},
		{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TENANT_CUTOFF, CutoffTime: tMilli, ExpireTime: t1, Cursor: "103-0"},
		{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN, Kid: "kid-1", ExpireTime: t1, Cursor: "104-0"},
		{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED, Kid: "kid-2", Cursor: "105-0"},
		{Cursor: "105-0"},
		{Cursor: "105-0"},
	}
)

// recorder is the state shared by the fake services of one test server: the requests and the
// x-api-key values they received, an error to answer with, responses that replace the canned
// ones, and what WatchRevocations streams.
type recorder struct {
	mu        sync.Mutex
	calls     int
	requests  map[string]proto.Message
	keys      []string
	err       error
	overrides map[string]proto.Message
	// events replace cannedEvents when set; watchEnd, when set, ends the stream after them
	// (errEndStream: without an error), where the real server would wait for the client to leave.
	events   []*tokenauthorityv1.WatchRevocationsResponse
	watchEnd error
}

func (r *recorder) record(ctx context.Context, method string, req proto.Message) (proto.Message, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.requests[method] = proto.Clone(req)
	r.keys = append(r.keys, md.Get("x-api-key")...)
	return r.overrides[method], r.err
}

// fail makes every later call answer with err.
func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

// override makes later calls of method answer with resp instead of the canned response.
func (r *recorder) override(method string, resp proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overrides[method] = resp
}

// script sets what later WatchRevocations calls stream, and how they end.
func (r *recorder) script(events []*tokenauthorityv1.WatchRevocationsResponse, end error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events, r.watchEnd = events, end
}

func (r *recorder) watchScript() ([]*tokenauthorityv1.WatchRevocationsResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.events == nil {
		return cannedEvents, r.watchEnd
	}
	return r.events, r.watchEnd
}

func (r *recorder) snapshot() (calls int, requests map[string]proto.Message, keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, r.requests, slices.Clone(r.keys)
}

// respond records a call and returns the override, the recorder's error or the canned response.
func respond[T proto.Message](ctx context.Context, r *recorder, method string, req proto.Message, canned T) (T, error) {
	override, err := r.record(ctx, method, req)
	if err != nil {
		var zero T
		return zero, err
	}
	if override != nil {
		return proto.Clone(override).(T), nil
	}
	return proto.Clone(canned).(T), nil
}

type fakeTokenService struct {
	tokenauthorityv1.UnimplementedTokenServiceServer
	rec *recorder
}

func (f *fakeTokenService) IssueToken(ctx context.Context, req *tokenauthorityv1.IssueTokenRequest) (*tokenauthorityv1.IssueTokenResponse, error) {
	return respond(ctx, f.rec, "IssueToken", req, &tokenauthorityv1.IssueTokenResponse{
		AccessToken: cannedAccessToken, RefreshToken: cannedRefreshToken, TokenType: "Bearer",
		AccessExpiresAt: t0, RefreshExpiresAt: t1, SessionId: "sid-1",
	})
}

func (f *fakeTokenService) RefreshToken(ctx context.Context, req *tokenauthorityv1.RefreshTokenRequest) (*tokenauthorityv1.RefreshTokenResponse, error) {
	return respond(ctx, f.rec, "RefreshToken", req, &tokenauthorityv1.RefreshTokenResponse{
		AccessToken: cannedAccessToken, RefreshToken: cannedRefreshToken, TokenType: "Bearer",
		AccessExpiresAt: t0, RefreshExpiresAt: t1, SessionId: "sid-1",
	})
}

// errEndStream makes the fake WatchRevocations end its stream without an error.
var errEndStream = errors.New("end the stream")

// WatchRevocations sends the recorder's events, then ends as its script says or, like the real
// server, waits for the client to leave.
func (f *fakeTokenService) WatchRevocations(req *tokenauthorityv1.WatchRevocationsRequest, stream tokenauthorityv1.TokenService_WatchRevocationsServer) error {
	ctx := stream.Context()
	if _, err := f.rec.record(ctx, "WatchRevocations", req); err != nil {
		return err
	}
	events, end := f.rec.watchScript()
	for _, ev := range events {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	switch {
	case errors.Is(end, errEndStream):
		return nil
	case end != nil:
		return end
	}
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

func (f *fakeTokenService) VerifyToken(ctx context.Context, req *tokenauthorityv1.VerifyTokenRequest) (*tokenauthorityv1.VerifyTokenResponse, error) {
	return respond(ctx, f.rec, "VerifyToken", req, &tokenauthorityv1.VerifyTokenResponse{Active: true, Claims: cannedClaims})
}

func (f *fakeTokenService) ExchangeToken(ctx context.Context, req *tokenauthorityv1.ExchangeTokenRequest) (*tokenauthorityv1.ExchangeTokenResponse, error) {
	return respond(ctx, f.rec, "ExchangeToken", req, &tokenauthorityv1.ExchangeTokenResponse{
		AccessToken: cannedAccessToken, AccessExpiresAt: t0, TokenType: "Bearer"})
}

func (f *fakeTokenService) RevokeToken(ctx context.Context, req *tokenauthorityv1.RevokeTokenRequest) (*tokenauthorityv1.RevokeTokenResponse, error) {
	return respond(ctx, f.rec, "RevokeToken", req, &tokenauthorityv1.RevokeTokenResponse{})
}

func (f *fakeTokenService) RevokeSessions(ctx context.Context, req *tokenauthorityv1.RevokeSessionsRequest) (*tokenauthorityv1.RevokeSessionsResponse, error) {
	return respond(ctx, f.rec, "RevokeSessions", req, &tokenauthorityv1.RevokeSessionsResponse{CutoffTime: t0})
}

func (f *fakeTokenService) ListSessions(ctx context.Context, req *tokenauthorityv1.ListSessionsRequest) (*tokenauthorityv1.ListSessionsResponse, error) {
	return respond(ctx, f.rec, "ListSessions", req, &tokenauthorityv1.ListSessionsResponse{
		Sessions:      []*tokenauthorityv1.Session{cannedSession},
		NextPageToken: "cursor-2",
	})
}

func (f *fakeTokenService) ListPublicKeys(ctx context.Context, req *tokenauthorityv1.ListPublicKeysRequest) (*tokenauthorityv1.ListPublicKeysResponse, error) {
	return respond(ctx, f.rec, "ListPublicKeys", req, &tokenauthorityv1.ListPublicKeysResponse{Keys: []*tokenauthorityv1.JsonWebKey{
		{Kty: "OKP", Kid: "kid-1", Use: "sig", Alg: "EdDSA", Crv: "Ed25519", X: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
	}})
}

type fakeAdminService struct {
	tokenauthorityv1.UnimplementedAdminServiceServer
	rec *recorder
}

func (f *fakeAdminService) CreateTenant(ctx context.Context, req *tokenauthorityv1.CreateTenantRequest) (*tokenauthorityv1.CreateTenantResponse, error) {
	return respond(ctx, f.rec, "CreateTenant", req, &tokenauthorityv1.CreateTenantResponse{Tenant: cannedTenant, AdminApiKey: newAdminKey})
}

func (f *fakeAdminService) GetTenant(ctx context.Context, req *tokenauthorityv1.GetTenantRequest) (*tokenauthorityv1.GetTenantResponse, error) {
	return respond(ctx, f.rec, "GetTenant", req, &tokenauthorityv1.GetTenantResponse{Tenant: cannedTenant})
}

func (f *fakeAdminService) ListTenants(ctx context.Context, req *tokenauthorityv1.ListTenantsRequest) (*tokenauthorityv1.ListTenantsResponse, error) {
	return respond(ctx, f.rec, "ListTenants", req, &tokenauthorityv1.ListTenantsResponse{
		Tenants:       []*tokenauthorityv1.Tenant{cannedTenant},
		NextPageToken: "acme",
	})
}

func (f *fakeAdminService) DeleteTenant(ctx context.Context, req *tokenauthorityv1.DeleteTenantRequest) (*tokenauthorityv1.DeleteTenantResponse, error) {
	return respond(ctx, f.rec, "DeleteTenant", req, &tokenauthorityv1.DeleteTenantResponse{})
}

func (f *fakeAdminService) CreateApiKey(ctx context.Context, req *tokenauthorityv1.CreateApiKeyRequest) (*tokenauthorityv1.CreateApiKeyResponse, error) {
	return respond(ctx, f.rec, "CreateApiKey", req, &tokenauthorityv1.CreateApiKeyResponse{ApiKey: cannedAPIKey, Secret: newAPIKeySecret})
}

func (f *fakeAdminService) ListApiKeys(ctx context.Context, req *tokenauthorityv1.ListApiKeysRequest) (*tokenauthorityv1.ListApiKeysResponse, error) {
	return respond(ctx, f.rec, "ListApiKeys", req, &tokenauthorityv1.ListApiKeysResponse{ApiKeys: []*tokenauthorityv1.ApiKey{cannedAPIKey}})
}

func (f *fakeAdminService) RotateApiKey(ctx context.Context, req *tokenauthorityv1.RotateApiKeyRequest) (*tokenauthorityv1.RotateApiKeyResponse, error) {
	rotated := proto.Clone(cannedAPIKey).(*tokenauthorityv1.ApiKey)
	rotated.PreviousValueExpireTime = t1
	return respond(ctx, f.rec, "RotateApiKey", req, &tokenauthorityv1.RotateApiKeyResponse{ApiKey: rotated, Secret: newAPIKeySecret})
}

func (f *fakeAdminService) DeleteApiKey(ctx context.Context, req *tokenauthorityv1.DeleteApiKeyRequest) (*tokenauthorityv1.DeleteApiKeyResponse, error) {
	return respond(ctx, f.rec, "DeleteApiKey", req, &tokenauthorityv1.DeleteApiKeyResponse{})
}

func (f *fakeAdminService) CreatePrincipal(ctx context.Context, req *tokenauthorityv1.CreatePrincipalRequest) (*tokenauthorityv1.CreatePrincipalResponse, error) {
	return respond(ctx, f.rec, "CreatePrincipal", req, &tokenauthorityv1.CreatePrincipalResponse{Principal: cannedPrincipal})
}

func (f *fakeAdminService) SetPrincipalSecret(ctx context.Context, req *tokenauthorityv1.SetPrincipalSecretRequest) (*tokenauthorityv1.SetPrincipalSecretResponse, error) {
	return respond(ctx, f.rec, "SetPrincipalSecret", req, &tokenauthorityv1.SetPrincipalSecretResponse{Secret: newPrincipalSecret})
}

func (f *fakeAdminService) DeletePrincipal(ctx context.Context, req *tokenauthorityv1.DeletePrincipalRequest) (*tokenauthorityv1.DeletePrincipalResponse, error) {
	return respond(ctx, f.rec, "DeletePrincipal", req, &tokenauthorityv1.DeletePrincipalResponse{})
}

func (f *fakeAdminService) RotateSigningKey(ctx context.Context, req *tokenauthorityv1.RotateSigningKeyRequest) (*tokenauthorityv1.RotateSigningKeyResponse, error) {
	return respond(ctx, f.rec, "RotateSigningKey", req, &tokenauthorityv1.RotateSigningKeyResponse{Key: &tokenauthorityv1.SigningKey{
		Kid:          "kid-2",
		Algorithm:    tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_RS256,
		PublishTime:  t0,
		ActivateTime: t1,
	}})
}

func (f *fakeAdminService) WithdrawSigningKey(ctx context.Context, req *tokenauthorityv1.WithdrawSigningKeyRequest) (*tokenauthorityv1.WithdrawSigningKeyResponse, error) {
	return respond(ctx, f.rec, "WithdrawSigningKey", req, &tokenauthorityv1.WithdrawSigningKeyResponse{})
}

func (f *fakeAdminService) ListPrincipals(ctx context.Context, req *tokenauthorityv1.ListPrincipalsRequest) (*tokenauthorityv1.ListPrincipalsResponse, error) {
	withSecret := proto.Clone(cannedPrincipal).(*tokenauthorityv1.Principal)
	withSecret.Identifier, withSecret.HasSecret = "svc-orders", true
	return respond(ctx, f.rec, "ListPrincipals", req, &tokenauthorityv1.ListPrincipalsResponse{
		Principals:    []*tokenauthorityv1.Principal{cannedPrincipal, withSecret},
		NextPageToken: "cHJpbmNpcGFscy92MS9hY21lL3N2Yy1vcmRlcnM",
	})
}

func (f *fakeAdminService) ListSigningKeys(ctx context.Context, req *tokenauthorityv1.ListSigningKeysRequest) (*tokenauthorityv1.ListSigningKeysResponse, error) {
	return respond(ctx, f.rec, "ListSigningKeys", req, &tokenauthorityv1.ListSigningKeysResponse{Keys: []*tokenauthorityv1.SigningKey{
		{Kid: "kid-1", Algorithm: tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA, State: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE,
			CreateTime: t0, PublishTime: t0, ActivateTime: t0, RetireTime: t1, ExpireTime: tLeave},
		{Kid: "kid-2", Algorithm: tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256, State: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_PUBLISHED,
			CreateTime: t0, PublishTime: t0, ActivateTime: t1},
		{Kid: "kid-0", Algorithm: tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA, State: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_WITHDRAWN,
			CreateTime: t0, PublishTime: t0, ActivateTime: t0, WithdrawTime: tMilli},
	}})
}

func (f *fakeAdminService) RotateRefreshKey(ctx context.Context, req *tokenauthorityv1.RotateRefreshKeyRequest) (*tokenauthorityv1.RotateRefreshKeyResponse, error) {
	return respond(ctx, f.rec, "RotateRefreshKey", req, &tokenauthorityv1.RotateRefreshKeyResponse{
		Current:     &tokenauthorityv1.RefreshKey{Kid: "rt-0sD4bqXhXr2kMSAu", CreateTime: t0},
		Retired:     []*tokenauthorityv1.RefreshKey{{Kid: "rt", RetireTime: t0, DeleteTime: t1}},
		DroppedKids: []string{"rt-Yq0vZl6cJm1Qb9Xe"},
	})
}

// serve starts an in-process gRPC server with the given services and returns its address.
func serve(t *testing.T, register func(s *grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// startFake starts a server with the fake services and returns their recorder and its address.
func startFake(t *testing.T) (*recorder, string) {
	t.Helper()
	rec := &recorder{requests: map[string]proto.Message{}, overrides: map[string]proto.Message{}}
	addr := serve(t, func(s *grpc.Server) {
		tokenauthorityv1.RegisterTokenServiceServer(s, &fakeTokenService{rec: rec})
		tokenauthorityv1.RegisterAdminServiceServer(s, &fakeAdminService{rec: rec})
	})
	return rec, addr
}

// outputs collects the stdout and stderr of every run of every test; TestMain checks them all
// for the API key once the tests are done.
var outputs struct {
	mu  sync.Mutex
	all []string
}

// runMainEnv makes the test binary run tokenctl's main instead of the tests, so that a test can
// run tokenctl as a process and send it signals.
const runMainEnv = "TOKENCTL_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
	}
	code := m.Run()
	if leaked() {
		code = 1
	}
	os.Exit(code)
}

// leaked reports whether any output of any test run contains the API key.
func leaked() bool {
	outputs.mu.Lock()
	defer outputs.mu.Unlock()
	found := false
	for _, out := range outputs.all {
		if strings.Contains(out, testKey) {
			fmt.Fprintf(os.Stderr, "an output of tokenctl contains the API key:\n%s\n", out)
			found = true
		}
	}
	return found
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs tokenctl with args and env as its environment, and an empty standard input. It
// fails the test when the output contains testKey.
func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	return runCLIWithInput(t, env, strings.NewReader(""), args...)
}

// runCLIWithInput is runCLI with stdin as the standard input.
func runCLIWithInput(t *testing.T, env map[string]string, stdin io.Reader, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	getenv := func(name string) string { return env[name] }
	code := run(t.Context(), args, stdin, &stdout, &stderr, getenv)
	r := result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	if strings.Contains(r.stdout, testKey) || strings.Contains(r.stderr, testKey) {
		t.Errorf("tokenctl %q printed the API key:\nstdout:\n%s\nstderr:\n%s", args, r.stdout, r.stderr)
	}
	outputs.mu.Lock()
	outputs.all = append(outputs.all, r.stdout, r.stderr)
	outputs.mu.Unlock()
	return r
}

// withServer returns the global flags that point at addr and present testKey.
func withServer(addr string, args ...string) []string {
	return append([]string{"-addr", addr, "-key", testKey}, args...)
}

// requestCase runs one command against the fake server.
type requestCase struct {
	name string
	args []string
	// method is the RPC the command must call, and want the request it must send.
	method string
	want   proto.Message
	// wantOut lists strings the text output must contain.
	wantOut []string
}

var requestCases = []requestCase{
	{
		name: "issue for a subject with every flag",
		args: []string{"issue", "-subject", "alice", "-audience", "api,web", "-scopes", "read", "-access-ttl", "5m",
			"-refresh-ttl", "24h", "-claims", `{"plan":"pro","tier":2,"beta":true}`, "-device", "laptop",
			"-user-agent", "curl/8.0", "-ip", "192.0.2.1"},
		method: "IssueToken",
		want: &tokenauthorityv1.IssueTokenRequest{
			Subject:     "alice",
			Audience:    []string{"api", "web"},
			Scopes:      []string{"read"},
			AccessTtl:   durationpb.New(5 * time.Minute),
			RefreshTtl:  durationpb.New(24 * time.Hour),
			ExtraClaims: mustStruct(map[string]any{"plan": "pro", "tier": 2, "beta": true}),
			Metadata:    &tokenauthorityv1.SessionMetadata{Device: "laptop", UserAgent: "curl/8.0", Ip: "192.0.2.1"},
		},
		wantOut: []string{"Access token:", cannedAccessToken, "Refresh token:", cannedRefreshToken,
			"Refresh expires:", "2026-03-31T12:00:00Z", "Session:", "sid-1"},
	},
	{
		name:   "issue for a subject leaves defaults to the server",
		args:   []string{"issue", "-subject", "alice"},
		method: "IssueToken",
		want:   &tokenauthorityv1.IssueTokenRequest{Subject: "alice"},
	},
	{
		name:   "issue for a principal with its secret from a file",
		args:   []string{"issue", "-principal", "svc-billing", "-secret-file", "testdata/principal-secret", "-scopes", "read"},
		method: "IssueToken",
		want: &tokenauthorityv1.IssueTokenRequest{
			Scopes:    []string{"read"},
			Principal: &tokenauthorityv1.PrincipalCredentials{Identifier: "svc-billing", Secret: testPrincipalSecret},
		},
		wantOut: []string{cannedAccessToken, cannedRefreshToken},
	},
	{
		name:    "refresh with the token from a file",
		args:    []string{"refresh", "-refresh-token-file", "testdata/refresh-token"},
		method:  "RefreshToken",
		want:    &tokenauthorityv1.RefreshTokenRequest{RefreshToken: testRefreshToken},
		wantOut: []string{"Access token:", cannedAccessToken, "Refresh token:", cannedRefreshToken, "Session:", "sid-1"},
	},
	{
		name:   "refresh with the token from a flag",
		args:   []string{"refresh", "-refresh-token", " " + testRefreshToken + "\n"},
		method: "RefreshToken",
		want:   &tokenauthorityv1.RefreshTokenRequest{RefreshToken: testRefreshToken},
	},
	{
		name:    "watch replays from a cursor until caught up",
		args:    []string{"watch", "-cursor", "0", "-until-caught-up"},
		method:  "WatchRevocations",
		want:    &tokenauthorityv1.WatchRevocationsRequest{Cursor: "0"},
		wantOut: []string{"token jti=jti-1 ", "key-published kid=kid-2 cursor=105-0\ncaught-up cursor=105-0\n"},
	},
	{
		name: "tenant create with every flag",
		args: []string{"tenant", "create", "-id", "acme", "-issuer", "https://auth.acme.test", "-alg", "es256",
			"-max-access-ttl", "30m", "-max-refresh-ttl", "240h", "-audience", "api, web", "-scopes", "read,write",
			"-issue-rate", "5", "-refresh-rate", "0.5", "-refresh-burst", "3", "-revoke-rate", "2", "-revoke-burst", "7"},
		method: "CreateTenant",
		want: &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
			TenantId:         "acme",
			Issuer:           "https://auth.acme.test",
			Algorithm:        tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256,
			MaxAccessTtl:     durationpb.New(30 * time.Minute),
			MaxRefreshTtl:    durationpb.New(240 * time.Hour),
			AllowedAudiences: []string{"api", "web"},
			AllowedScopes:    []string{"read", "write"},
			IssueRateLimit:   &tokenauthorityv1.RateLimit{PerSecond: 5, Burst: 10},
			RefreshRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 0.5, Burst: 3},
			RevokeRateLimit:  &tokenauthorityv1.RateLimit{PerSecond: 2, Burst: 7},
		}},
		wantOut: []string{"Tenant:", "acme", "ES256", "30m0s", "Admin API key:", newAdminKey, warnKey},
	},
	{
		name:   "tenant create leaves defaults to the server",
		args:   []string{"tenant", "create", "-id", "acme", "-issuer", "https://auth.acme.test"},
		method: "CreateTenant",
		want: &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
			TenantId: "acme",
			Issuer:   "https://auth.acme.test",
		}},
		wantOut: []string{newAdminKey, warnKey},
	},
	{
		name:    "tenant get",
		args:    []string{"tenant", "get", "-id", "acme"},
		method:  "GetTenant",
		want:    &tokenauthorityv1.GetTenantRequest{TenantId: "acme"},
		wantOut: []string{"Issuer:", "https://auth.acme.test", "Allowed scopes:", "read,write", "2026-03-01T12:00:00Z"},
	},
	{
		name:    "tenant list",
		args:    []string{"tenant", "list", "-page-size", "10", "-page-token", "abc"},
		method:  "ListTenants",
		want:    &tokenauthorityv1.ListTenantsRequest{PageSize: 10, PageToken: "abc"},
		wantOut: []string{"TENANT", "ISSUER", "acme", `-page-token "acme"`},
	},
	{
		name:    "tenant delete",
		args:    []string{"tenant", "delete", "-id", "acme", "-yes"},
		method:  "DeleteTenant",
		want:    &tokenauthorityv1.DeleteTenantRequest{TenantId: "acme"},
		wantOut: []string{"deleted tenant acme"},
	},
	{
		name:   "apikey create maps roles case-insensitively",
		args:   []string{"apikey", "create", "-name", "ci", "-roles", "Issue,VERIFY,role_admin,issue", "-tenant", "acme"},
		method: "CreateApiKey",
		want: &tokenauthorityv1.CreateApiKeyRequest{TenantId: "acme", Name: "ci", Roles: []tokenauthorityv1.Role{
			tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY, tokenauthorityv1.Role_ROLE_ADMIN,
		}},
		wantOut: []string{"key123", "issue,verify", newAPIKeySecret, warnKey},
	},
	{
		name:   "apikey create with repeated -roles",
		args:   []string{"apikey", "create", "-name", "ci", "-roles", "revoke", "-roles", "verify"},
		method: "CreateApiKey",
		want: &tokenauthorityv1.CreateApiKeyRequest{Name: "ci", Roles: []tokenauthorityv1.Role{
			tokenauthorityv1.Role_ROLE_REVOKE, tokenauthorityv1.Role_ROLE_VERIFY,
		}},
	},
	{
		name:    "apikey list",
		args:    []string{"apikey", "list", "-tenant", "acme"},
		method:  "ListApiKeys",
		want:    &tokenauthorityv1.ListApiKeysRequest{TenantId: "acme"},
		wantOut: []string{"KEY ID", "ROLES", "key123", "issue,verify"},
	},
	{
		name:   "apikey list of the caller's tenant",
		args:   []string{"apikey", "list"},
		method: "ListApiKeys",
		want:   &tokenauthorityv1.ListApiKeysRequest{},
	},
	{
		name:    "apikey rotate with the default overlap",
		args:    []string{"apikey", "rotate", "-id", "key123"},
		method:  "RotateApiKey",
		want:    &tokenauthorityv1.RotateApiKeyRequest{KeyId: "key123", Overlap: durationpb.New(24 * time.Hour)},
		wantOut: []string{"Previous value expires:", "2026-03-31T12:00:00Z", newAPIKeySecret, warnKey},
	},
	{
		name:   "apikey rotate without overlap",
		args:   []string{"apikey", "rotate", "-id", "key123", "-overlap", "0s"},
		method: "RotateApiKey",
		want:   &tokenauthorityv1.RotateApiKeyRequest{KeyId: "key123", Overlap: durationpb.New(0)},
	},
	{
		name:    "apikey delete",
		args:    []string{"apikey", "delete", "-id", "key123"},
		method:  "DeleteApiKey",
		want:    &tokenauthorityv1.DeleteApiKeyRequest{KeyId: "key123"},
		wantOut: []string{"deleted API key key123"},
	},
	{
		name: "principal create",
		args: []string{"principal", "create", "-id", "svc-billing", "-display-name", "Billing service",
			"-scopes", "invoices:read,invoices:write", "-audience", "api"},
		method: "CreatePrincipal",
		want: &tokenauthorityv1.CreatePrincipalRequest{Principal: &tokenauthorityv1.Principal{
			Identifier:  "svc-billing",
			DisplayName: "Billing service",
			Scopes:      []string{"invoices:read", "invoices:write"},
			Audience:    []string{"api"},
		}},
		wantOut: []string{"Principal:", "svc-billing", "Billing service", "Has secret:"},
	},
	{
		name:    "principal set-secret",
		args:    []string{"principal", "set-secret", "-id", "svc-billing"},
		method:  "SetPrincipalSecret",
		want:    &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: "svc-billing"},
		wantOut: []string{newPrincipalSecret, warnSecret},
	},
	{
		name:    "principal delete",
		args:    []string{"principal", "delete", "-id", "svc-billing"},
		method:  "DeletePrincipal",
		want:    &tokenauthorityv1.DeletePrincipalRequest{Identifier: "svc-billing"},
		wantOut: []string{"deleted principal svc-billing"},
	},
	{
		name:   "principal list",
		args:   []string{"principal", "list", "-tenant", "acme", "-page-size", "2", "-page-token", "abc"},
		method: "ListPrincipals",
		want:   &tokenauthorityv1.ListPrincipalsRequest{TenantId: "acme", PageSize: 2, PageToken: "abc"},
		wantOut: []string{"PRINCIPAL", "DISPLAY NAME", "SECRET", "svc-billing", "Billing service", "invoices:read",
			"svc-orders", "set", `-page-token "cHJpbmNpcGFscy92MS9hY21lL3N2Yy1vcmRlcnM"`},
	},
	{
		name:   "principal list of the caller's tenant",
		args:   []string{"principal", "list"},
		method: "ListPrincipals",
		want:   &tokenauthorityv1.ListPrincipalsRequest{},
	},
	{
		name:   "signing-key rotate",
		args:   []string{"signing-key", "rotate", "-tenant", "acme", "-alg", "RS256"},
		method: "RotateSigningKey",
		want: &tokenauthorityv1.RotateSigningKeyRequest{
			TenantId:  "acme",
			Algorithm: tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_RS256,
		},
		wantOut: []string{"kid-2", "RS256", "Activates:", "2026-03-31T12:00:00Z"},
	},
	{
		name:   "signing-key rotate with the tenant's algorithm",
		args:   []string{"signing-key", "rotate"},
		method: "RotateSigningKey",
		want:   &tokenauthorityv1.RotateSigningKeyRequest{},
	},
	{
		name:    "signing-key withdraw",
		args:    []string{"signing-key", "withdraw", "-kid", "kid-1", "-tenant", "acme", "-yes"},
		method:  "WithdrawSigningKey",
		want:    &tokenauthorityv1.WithdrawSigningKeyRequest{TenantId: "acme", Kid: "kid-1"},
		wantOut: []string{"withdrew signing key kid-1"},
	},
	{
		name:   "signing-key list",
		args:   []string{"signing-key", "list", "-tenant", "acme"},
		method: "ListSigningKeys",
		want:   &tokenauthorityv1.ListSigningKeysRequest{TenantId: "acme"},
		wantOut: []string{"KEY ID", "STATE", "ACTIVATES", "RETIRES", "LEAVES", "WITHDRAWN",
			"kid-1   EdDSA      active", "2026-03-31T13:01:00Z", "kid-2   ES256      published", "kid-0   EdDSA      withdrawn",
			"2026-03-01T12:00:00Z"},
	},
	{
		name:   "signing-key list of the caller's tenant",
		args:   []string{"signing-key", "list"},
		method: "ListSigningKeys",
		want:   &tokenauthorityv1.ListSigningKeysRequest{},
	},
	{
		name:   "refresh-key rotate",
		args:   []string{"refresh-key", "rotate"},
		method: "RotateRefreshKey",
		want:   &tokenauthorityv1.RotateRefreshKeyRequest{},
		wantOut: []string{"Current key:", "rt-0sD4bqXhXr2kMSAu", "Retired key:", "rt (verifies until 2026-03-31T12:00:00Z)",
			"Dropped keys:", "rt-Yq0vZl6cJm1Qb9Xe"},
	},
	{
		name:   "refresh-key rotate in an emergency, if still current",
		args:   []string{"refresh-key", "rotate", "-tenant", "acme", "-emergency", "-yes", "-if-current", "rt-0sD4bqXhXr2kMSAu"},
		method: "RotateRefreshKey",
		want:   &tokenauthorityv1.RotateRefreshKeyRequest{TenantId: "acme", Emergency: true, IfCurrentKid: "rt-0sD4bqXhXr2kMSAu"},
	},
	{
		name:    "keys",
		args:    []string{"keys"},
		method:  "ListPublicKeys",
		want:    &tokenauthorityv1.ListPublicKeysRequest{},
		wantOut: []string{`"keys"`, `"kid-1"`, `"OKP"`},
	},
	{
		name:    "revoke by token",
		args:    []string{"revoke", "-token", "eyJ.access.token"},
		method:  "RevokeToken",
		want:    &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: "eyJ.access.token"}},
		wantOut: []string{"revoked the token"},
	},
	{
		name:    "revoke by jti",
		args:    []string{"revoke", "-jti", "jti-1"},
		method:  "RevokeToken",
		want:    &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: "jti-1"}},
		wantOut: []string{"revoked token jti jti-1"},
	},
	{
		name:    "revoke by session",
		args:    []string{"revoke", "-session", "sid-1"},
		method:  "RevokeToken",
		want:    &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: "sid-1"}},
		wantOut: []string{"revoked session sid-1"},
	},
	{
		name:    "revoke-sessions of a subject",
		args:    []string{"revoke-sessions", "-subject", "alice"},
		method:  "RevokeSessions",
		want:    &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "alice"}},
		wantOut: []string{"every session of subject alice issued before 2026-03-01T12:00:00Z"},
	},
	{
		name:    "revoke-sessions of the tenant",
		args:    []string{"revoke-sessions", "-all-in-tenant", "-yes"},
		method:  "RevokeSessions",
		want:    &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}},
		wantOut: []string{"every session of the tenant"},
	},
	{
		name:    "sessions",
		args:    []string{"sessions", "-subject", "alice", "-page-size", "5", "-page-token", "cursor-1"},
		method:  "ListSessions",
		want:    &tokenauthorityv1.ListSessionsRequest{Subject: "alice", PageSize: 5, PageToken: "cursor-1"},
		wantOut: []string{"SESSION", "CREATED", "EXPIRES", "GENERATION", "DEVICE/UA", "sid-1", "laptop / curl/8.0", `-page-token "cursor-2"`},
	},
	{
		name:   "verify",
		args:   []string{"verify", "-token", "eyJ.access.token", "-audience", "api", "-scopes", "read,write"},
		method: "VerifyToken",
		want: &tokenauthorityv1.VerifyTokenRequest{
			Token:          "eyJ.access.token",
			Audience:       "api",
			RequiredScopes: []string{"read", "write"},
		},
		wantOut: []string{"active", "Subject:", "alice", "Scopes:", "read,write", "Expires:", "2026-03-31T12:00:00Z"},
	},
}

// mustStruct converts m, as a JSON object would be.
func mustStruct(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func TestCommandsBuildRequests(t *testing.T) {
	t.Parallel()
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			r := runCLI(t, nil, withServer(addr, tc.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			calls, requests, _ := rec.snapshot()
			if calls != 1 {
				t.Errorf("server received %d calls, want 1", calls)
			}
			if got := requests[tc.method]; !proto.Equal(got, tc.want) {
				t.Errorf("%s request:\n got %v\nwant %v", tc.method, got, tc.want)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
		})
	}
}

// TestEveryCommandIsCovered keeps requestCases in step with the command table.
func TestEveryCommandIsCovered(t *testing.T) {
	t.Parallel()
	for _, c := range commands {
		covered := slices.ContainsFunc(requestCases, func(tc requestCase) bool {
			line := strings.Join(tc.args, " ")
			return line == c.name || strings.HasPrefix(line, c.name+" ")
		})
		if !covered {
			t.Errorf("command %q has no request case", c.name)
		}
	}
}

// TestVerifyExitStatus checks that verify succeeds only for an active token, so that
// "tokenctl verify ... && use-the-token" stops at a revoked one, and that the output tells an
// inactive token (stdout) from a failed call (stderr).
func TestVerifyExitStatus(t *testing.T) {
	t.Parallel()
	inactive := func(r tokenauthorityv1.InactiveReason) *tokenauthorityv1.VerifyTokenResponse {
		return &tokenauthorityv1.VerifyTokenResponse{Reason: r}
	}
	tests := []struct {
		name       string
		answer     *tokenauthorityv1.VerifyTokenResponse
		serverErr  error
		json       bool
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "active", wantCode: exitOK, wantStdout: "active\nSubject:"},
		{name: "active, json", json: true, wantCode: exitOK, wantStdout: `"active": true`},
		{name: "wrong audience", answer: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_AUDIENCE),
			wantCode: exitInactive, wantStdout: "inactive: wrong audience\n"},
		{name: "revoked", answer: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_REVOKED),
			wantCode: exitInactive, wantStdout: "inactive: revoked\n"},
		{name: "session ended", answer: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED),
			wantCode: exitInactive, wantStdout: "inactive: session ended\n"},
		{name: "cut off, json", answer: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF), json: true,
			wantCode: exitInactive, wantStdout: `"reason": "INACTIVE_REASON_CUT_OFF"`},
		{name: "no reason given", answer: &tokenauthorityv1.VerifyTokenResponse{},
			wantCode: exitInactive, wantStdout: "inactive: unspecified\n"},
		{name: "call fails", serverErr: status.Error(codes.Unavailable, "store unavailable"),
			wantCode: exitRPC, wantStderr: "tokenctl: Unavailable: store unavailable\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			if tc.answer != nil {
				rec.override("VerifyToken", tc.answer)
			}
			rec.fail(tc.serverErr)
			args := []string{"verify", "-token", "eyJ.access.token"}
			if tc.json {
				args = append([]string{"-o", "json"}, args...)
			}
			r := runCLI(t, nil, withServer(addr, args...)...)
			if r.code != tc.wantCode {
				t.Errorf("exit code %d, want %d", r.code, tc.wantCode)
			}
			// protojson may put one or two spaces after a colon.
			stdout := strings.ReplaceAll(r.stdout, ":  ", ": ")
			if !strings.Contains(stdout, tc.wantStdout) || (tc.wantStdout == "") != (r.stdout == "") {
				t.Errorf("stdout = %q, want %q", r.stdout, tc.wantStdout)
			}
			if r.stderr != tc.wantStderr {
				t.Errorf("stderr = %q, want %q", r.stderr, tc.wantStderr)
			}
		})
	}
}

func TestAPIKeySources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("  "+testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other")
	if err := os.WriteFile(otherFile, []byte("tak_other-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		flags []string
		env   map[string]string
	}{
		{name: "-key", flags: []string{"-key", testKey}},
		{name: "TOKENCTL_API_KEY", env: map[string]string{envAPIKey: testKey}},
		{name: "-key-file", flags: []string{"-key-file", keyFile}},
		{name: "TOKENCTL_API_KEY_FILE", env: map[string]string{envAPIKeyFile: keyFile}},
		{name: "-key beats the environment", flags: []string{"-key", testKey}, env: map[string]string{envAPIKey: "tak_other-key"}},
		{name: "-key-file beats the environment", flags: []string{"-key-file", keyFile}, env: map[string]string{envAPIKeyFile: otherFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			args := append([]string{"-addr", addr}, tc.flags...)
			args = append(args, "tenant", "get", "-id", "acme")
			r := runCLI(t, tc.env, args...)
			if r.code != exitOK {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			_, _, keys := rec.snapshot()
			if !slices.Equal(keys, []string{testKey}) {
				t.Errorf("server received x-api-key %q, want exactly the test key", keys)
			}
		})
	}
}

func TestAddrFromEnvironment(t *testing.T) {
	t.Parallel()
	rec, addr := startFake(t)
	r := runCLI(t, map[string]string{envAddr: addr, envAPIKey: testKey}, "keys")
	if r.code != exitOK {
		t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
	}
	if calls, _, _ := rec.snapshot(); calls != 1 {
		t.Errorf("server at TOKENCTL_ADDR received %d calls, want 1", calls)
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		path       []string
		want       any
		wantStderr string
	}{
		{
			name: "tenant get",
			args: []string{"-o", "json", "tenant", "get", "-id", "acme"},
			path: []string{"tenant", "tenantId"},
			want: "acme",
		},
		{
			name: "enum names",
			args: []string{"-o", "json", "tenant", "get", "-id", "acme"},
			path: []string{"tenant", "algorithm"},
			want: "SIGNING_ALGORITHM_ES256",
		},
		{
			name:       "secret warning goes to stderr",
			args:       []string{"-o", "json", "apikey", "create", "-name", "ci", "-roles", "issue"},
			path:       []string{"secret"},
			want:       newAPIKeySecret,
			wantStderr: warnKey,
		},
		{
			name: "sessions",
			args: []string{"-o", "json", "sessions", "-subject", "alice"},
			path: []string{"nextPageToken"},
			want: "cursor-2",
		},
		{
			name: "verify",
			args: []string{"-o", "json", "verify", "-token", "eyJ.access.token"},
			path: []string{"claims", "subject"},
			want: "alice",
		},
		{
			name:       "tenant create",
			args:       []string{"-o", "json", "tenant", "create", "-id", "acme", "-issuer", "https://auth.acme.test"},
			path:       []string{"adminApiKey"},
			want:       newAdminKey,
			wantStderr: warnKey,
		},
		{
			name: "durations",
			args: []string{"-o", "json", "tenant", "get", "-id", "acme"},
			path: []string{"tenant", "maxAccessTtl"},
			want: "1800s",
		},
		{
			name: "apikey rotate",
			args: []string{"-o", "json", "apikey", "rotate", "-id", "key123"},
			path: []string{"apiKey", "previousValueExpireTime"},
			want: "2026-03-31T12:00:00Z",
		},
		{
			name: "apikey list",
			args: []string{"-o", "json", "apikey", "list"},
			path: []string{"apiKeys"},
			want: []any{map[string]any{"keyId": "key123", "tenantId": "acme", "name": "ci",
				"roles": []any{"ROLE_ISSUE", "ROLE_VERIFY"}, "createTime": "2026-03-01T12:00:00Z"}},
		},
		{
			name: "sessions, with 64-bit integers as strings",
			args: []string{"-o", "json", "sessions", "-subject", "alice"},
			path: []string{"sessions"},
			want: []any{map[string]any{"sessionId": "sid-1", "subject": "alice", "createTime": "2026-03-01T12:00:00Z",
				"expireTime": "2026-03-31T12:00:00Z", "generation": "7",
				"metadata": map[string]any{"userAgent": "curl/8.0", "device": "laptop"}}},
		},
		{
			name: "verify claims",
			args: []string{"-o", "json", "verify", "-token", "eyJ.access.token"},
			path: []string{"claims", "sessionId"},
			want: "sid-1",
		},
		{
			name: "revoke-sessions",
			args: []string{"-o", "json", "revoke-sessions", "-subject", "alice"},
			path: []string{"cutoffTime"},
			want: "2026-03-01T12:00:00Z",
		},
		{
			name: "signing-key rotate",
			args: []string{"-o", "json", "signing-key", "rotate"},
			path: []string{"key", "activateTime"},
			want: "2026-03-31T12:00:00Z",
		},
		{
			name: "signing-key list",
			args: []string{"-o", "json", "signing-key", "list"},
			path: []string{"keys"},
			want: []any{
				map[string]any{"kid": "kid-1", "algorithm": "SIGNING_ALGORITHM_EDDSA", "state": "SIGNING_KEY_STATE_ACTIVE",
					"createTime": "2026-03-01T12:00:00Z", "publishTime": "2026-03-01T12:00:00Z", "activateTime": "2026-03-01T12:00:00Z",
					"retireTime": "2026-03-31T12:00:00Z", "expireTime": "2026-03-31T13:01:00Z"},
				map[string]any{"kid": "kid-2", "algorithm": "SIGNING_ALGORITHM_ES256", "state": "SIGNING_KEY_STATE_PUBLISHED",
					"createTime": "2026-03-01T12:00:00Z", "publishTime": "2026-03-01T12:00:00Z", "activateTime": "2026-03-31T12:00:00Z"},
				map[string]any{"kid": "kid-0", "algorithm": "SIGNING_ALGORITHM_EDDSA", "state": "SIGNING_KEY_STATE_WITHDRAWN",
					"createTime": "2026-03-01T12:00:00Z", "publishTime": "2026-03-01T12:00:00Z", "activateTime": "2026-03-01T12:00:00Z",
					"withdrawTime": "2026-03-01T12:00:00.123Z"},
			},
		},
		{
			name: "principal list",
			args: []string{"-o", "json", "principal", "list"},
			path: []string{"nextPageToken"},
			want: "cHJpbmNpcGFscy92MS9hY21lL3N2Yy1vcmRlcnM",
		},
		{
			name: "refresh-key rotate",
			args: []string{"-o", "json", "refresh-key", "rotate"},
			path: []string{"current", "kid"},
			want: "rt-0sD4bqXhXr2kMSAu",
		},
		{
			name: "issue",
			args: []string{"-o", "json", "issue", "-subject", "alice"},
			want: map[string]any{"accessToken": cannedAccessToken, "refreshToken": cannedRefreshToken, "tokenType": "Bearer",
				"accessExpiresAt": "2026-03-01T12:00:00Z", "refreshExpiresAt": "2026-03-31T12:00:00Z", "sessionId": "sid-1"},
		},
		{
			name: "refresh",
			args: []string{"-o", "json", "refresh", "-refresh-token-file", "testdata/refresh-token"},
			want: map[string]any{"accessToken": cannedAccessToken, "refreshToken": cannedRefreshToken, "tokenType": "Bearer",
				"accessExpiresAt": "2026-03-01T12:00:00Z", "refreshExpiresAt": "2026-03-31T12:00:00Z", "sessionId": "sid-1"},
		},
		{
			name: "keys is JSON without -o",
			args: []string{"keys"},
			path: []string{"keys"},
			want: []any{map[string]any{"kty": "OKP", "kid": "kid-1", "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},
		},
		{
			name: "empty response",
			args: []string{"-o", "json", "tenant", "delete", "-id", "acme", "-yes"},
			want: map[string]any{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, addr := startFake(t)
			r := runCLI(t, nil, withServer(addr, tc.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			var got any
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not one JSON value: %v\n%s", err, r.stdout)
			}
			for _, k := range tc.path {
				obj, ok := got.(map[string]any)
				if !ok {
					t.Fatalf("no object at %q in:\n%s", k, r.stdout)
				}
				got = obj[k]
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tc.want)
			if !bytes.Equal(gotJSON, wantJSON) {
				t.Errorf("%s = %s, want %s", strings.Join(tc.path, "."), gotJSON, wantJSON)
			}
			if !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, r.stderr)
			}
		})
	}
}

var usageCases = []struct {
	name    string
	args    []string
	wantErr string
}{
	{name: "no command", args: nil, wantErr: "missing command"},
	{name: "unknown command", args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
	{name: "unknown subcommand", args: []string{"tenant", "frobnicate"}, wantErr: `unknown subcommand "frobnicate"`},
	{name: "missing subcommand", args: []string{"apikey"}, wantErr: "missing subcommand (one of: create, list, rotate, delete)"},
	{name: "missing required flag", args: []string{"tenant", "get"}, wantErr: "-id is required"},
	{name: "missing issuer", args: []string{"tenant", "create", "-id", "acme"}, wantErr: "-issuer is required"},
	{name: "unknown algorithm", args: []string{"tenant", "create", "-id", "acme", "-issuer", "x", "-alg", "none"}, wantErr: `unknown algorithm "none" (valid: EdDSA, ES256, RS256, HS256)`},
	{name: "negative ttl", args: []string{"tenant", "create", "-id", "acme", "-issuer", "x", "-max-access-ttl", "-1h"}, wantErr: "-max-access-ttl must not be negative"},
	{name: "delete without -yes", args: []string{"tenant", "delete", "-id", "acme"}, wantErr: "without -yes"},
	{name: "negative page size", args: []string{"tenant", "list", "-page-size", "-1"}, wantErr: "-page-size must be between"},
	{name: "missing roles", args: []string{"apikey", "create", "-name", "ci"}, wantErr: "-roles is required"},
	{name: "unknown role", args: []string{"apikey", "create", "-name", "ci", "-roles", "issue,superuser"}, wantErr: `unknown role "superuser" (valid: issue, verify, revoke, admin, exchange)`},
	{name: "negative overlap", args: []string{"apikey", "rotate", "-id", "k", "-overlap", "-1s"}, wantErr: "-overlap must not be negative"},
	{name: "withdraw without -yes", args: []string{"signing-key", "withdraw", "-kid", "kid-1"}, wantErr: "without -yes"},
	{name: "emergency rotation without -yes", args: []string{"refresh-key", "rotate", "-emergency"}, wantErr: "refusing an emergency rotation without -yes"},
	{name: "negative principal page size", args: []string{"principal", "list", "-page-size", "-2"}, wantErr: "-page-size must be between"},
	{name: "two revoke targets", args: []string{"revoke", "-jti", "a", "-session", "b"}, wantErr: "exactly one of -token, -jti or -session is required, got 2"},
	{name: "no revoke target", args: []string{"revoke"}, wantErr: "exactly one of -token, -jti or -session is required, got 0"},
	{name: "revoke-sessions without scope", args: []string{"revoke-sessions"}, wantErr: "one of -subject or -all-in-tenant is required"},
	{name: "revoke-sessions with both scopes", args: []string{"revoke-sessions", "-subject", "a", "-all-in-tenant", "-yes"}, wantErr: "mutually exclusive"},
	{name: "all-in-tenant without -yes", args: []string{"revoke-sessions", "-all-in-tenant"}, wantErr: "without -yes"},
	{name: "sessions without subject", args: []string{"sessions"}, wantErr: "-subject is required"},
	{name: "verify without token", args: []string{"verify"}, wantErr: "-token is required"},
	{name: "issue for nobody", args: []string{"issue", "-scopes", "read"}, wantErr: "exactly one of -subject or -principal is required"},
	{name: "issue for a subject and a principal", args: []string{"issue", "-subject", "a", "-principal", "p", "-secret-file", "-"}, wantErr: "exactly one of -subject or -principal is required"},
	{name: "issue for a principal without its secret", args: []string{"issue", "-principal", "p"}, wantErr: "-principal needs the principal's secret"},
	{name: "issue for a subject with a secret", args: []string{"issue", "-subject", "a", "-secret", testPrincipalSecret}, wantErr: "go with -principal"},
	{name: "issue with both secret flags", args: []string{"issue", "-principal", "p", "-secret", testPrincipalSecret, "-secret-file", "-"}, wantErr: "-secret and -secret-file are mutually exclusive"},
	{name: "issue with broken claims", args: []string{"issue", "-subject", "a", "-claims", `{"plan":`}, wantErr: "-claims must be a JSON object"},
	{name: "issue with claims not an object", args: []string{"issue", "-subject", "a", "-claims", `["plan"]`}, wantErr: "-claims must be a JSON object"},
	{name: "issue with a negative ttl", args: []string{"issue", "-subject", "a", "-refresh-ttl", "-1h"}, wantErr: "-refresh-ttl must not be negative"},
	{name: "refresh without a token", args: []string{"refresh"}, wantErr: "one of -refresh-token-file FILE (- for the standard input) or -refresh-token is required"},
	{name: "refresh with both token flags", args: []string{"refresh", "-refresh-token", testRefreshToken, "-refresh-token-file", "-"}, wantErr: "-refresh-token and -refresh-token-file are mutually exclusive"},
	{name: "watch for a negative time", args: []string{"watch", "-for", "-1s"}, wantErr: "-for must not be negative"},
	{name: "undefined flag", args: []string{"tenant", "get", "-id", "acme", "-bogus"}, wantErr: "flag provided but not defined: -bogus"},
	{name: "positional argument", args: []string{"tenant", "get", "acme"}, wantErr: "unexpected positional argument"},
	{name: "bad output format", args: []string{"-o", "yaml", "keys"}, wantErr: `-o must be "text" or "json", got "yaml"`},
	{name: "bad timeout", args: []string{"-timeout", "0s", "keys"}, wantErr: "-timeout must be positive"},
	{name: "help for an unknown command", args: []string{"help", "frobnicate"}, wantErr: `unknown command "frobnicate"`},
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range usageCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			r := runCLI(t, nil, withServer(addr, tc.args...)...)
			if r.code != exitUsage {
				t.Errorf("exit code %d, want %d", r.code, exitUsage)
			}
			if !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, r.stderr)
			}
			if !strings.Contains(r.stderr, "Usage: tokenctl") {
				t.Errorf("stderr lacks the usage:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr, testPrincipalSecret) || strings.Contains(r.stderr, testRefreshToken) {
				t.Errorf("stderr contains a secret given on the command line:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want empty", r.stdout)
			}
			if calls, _, _ := rec.snapshot(); calls != 0 {
				t.Errorf("server received %d calls, want none", calls)
			}
		})
	}
}

func TestAPIKeyConfigurationErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte(testKey), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   []string
		env     map[string]string
		wantErr string
	}{
		{name: "no key", wantErr: "no API key"},
		{name: "both flags", flags: []string{"-key", testKey, "-key-file", keyFile}, wantErr: "-key and -key-file are mutually exclusive"},
		{name: "both variables", env: map[string]string{envAPIKey: testKey, envAPIKeyFile: keyFile}, wantErr: "are both set"},
		{name: "missing file", flags: []string{"-key-file", filepath.Join(dir, "absent")}, wantErr: "read API key file"},
		{name: "empty file", flags: []string{"-key-file", emptyFile}, wantErr: "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			args := append([]string{"-addr", addr}, tc.flags...)
			args = append(args, "keys")
			r := runCLI(t, tc.env, args...)
			if r.code != exitUsage {
				t.Errorf("exit code %d, want %d", r.code, exitUsage)
			}
			if !strings.Contains(r.stderr, tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, r.stderr)
			}
			if calls, _, _ := rec.snapshot(); calls != 0 {
				t.Errorf("server received %d calls, want none", calls)
			}
		})
	}
}

func TestRPCErrors(t *testing.T) {
	t.Parallel()
	// unimplemented serves the generated Unimplemented servers, as the real server does for the
	// AdminService RPCs that are not written yet.
	unimplemented := serve(t, func(s *grpc.Server) {
		tokenauthorityv1.RegisterAdminServiceServer(s, tokenauthorityv1.UnimplementedAdminServiceServer{})
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name      string
		serverErr error
		addr      string
		args      []string
		want      string
	}{
		{
			name:      "not found",
			serverErr: status.Error(codes.NotFound, `tenant "nope" not found`),
			args:      []string{"tenant", "get", "-id", "nope"},
			want:      "tokenctl: NotFound: tenant \"nope\" not found\n",
		},
		{
			name: "unimplemented",
			addr: unimplemented,
			args: []string{"tenant", "create", "-id", "acme", "-issuer", "https://auth.acme.test"},
			want: "tokenctl: Unimplemented: method CreateTenant not implemented\n",
		},
		{
			name:      "server echoing the key is redacted",
			serverErr: status.Error(codes.PermissionDenied, "key "+testKey+" lacks role admin"),
			args:      []string{"apikey", "list"},
			want:      "tokenctl: PermissionDenied: key [redacted] lacks role admin\n",
		},
		{
			name: "unreachable server",
			addr: closedAddr,
			args: []string{"keys"},
			want: "tokenctl: Unavailable: ",
		},
		{
			name: "deadline",
			args: []string{"-timeout", "1ns", "keys"},
			want: "tokenctl: DeadlineExceeded: ",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			rec.fail(tc.serverErr)
			if tc.addr != "" {
				addr = tc.addr
			}
			r := runCLI(t, nil, withServer(addr, tc.args...)...)
			if r.code != exitRPC {
				t.Errorf("exit code %d, want %d; stderr:\n%s", r.code, exitRPC, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want prefix %q", r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want empty", r.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"-help"}, {"-key", testKey, "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nil, args...)
			if r.code != exitOK {
				t.Errorf("exit code %d, want 0", r.code)
			}
			for _, c := range commands {
				if !strings.Contains(r.stdout, "\n  "+c.name+" ") {
					t.Errorf("usage lacks command %q:\n%s", c.name, r.stdout)
				}
			}
			for _, f := range []string{"-addr", "-key", "-key-file", "-tls", "-timeout", "-o"} {
				if !strings.Contains(r.stdout, "  "+f+" ") && !strings.Contains(r.stdout, "  "+f+"\n") {
					t.Errorf("usage lacks global flag %s:\n%s", f, r.stdout)
				}
			}
		})
	}
	for _, c := range commands {
		for _, args := range [][]string{
			append([]string{"help"}, strings.Fields(c.name)...),
			append(strings.Fields(c.name), "-h"),
		} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				r := runCLI(t, nil, args...)
				if r.code != exitOK {
					t.Errorf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
				}
				if want := "Usage: tokenctl [global flags] " + c.name; !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			})
		}
	}
}

// TestAPIKeyNeverPrinted runs every command and usage error, and a call failure whose message
// echoes the key, with the key from each source, and checks that no output contains it. runCLI
// checks each run of every test as well, and TestMain all of them together.
func TestAPIKeyNeverPrinted(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sources := []struct {
		flags []string
		env   map[string]string
	}{
		{flags: []string{"-key", testKey}},
		{flags: []string{"-key-file", keyFile}},
		{env: map[string]string{envAPIKey: testKey}},
		{env: map[string]string{envAPIKeyFile: keyFile}},
	}
	var all []string
	for _, src := range sources {
		rec, addr := startFake(t)
		var argSets [][]string
		for _, tc := range requestCases {
			argSets = append(argSets, tc.args)
		}
		for _, tc := range usageCases {
			argSets = append(argSets, tc.args)
		}
		argSets = append(argSets, []string{"help"}, []string{"-o", "json", "tenant", "create", "-id", "a", "-issuer", "b"})
		for _, args := range argSets {
			full := append(append([]string{"-addr", addr}, src.flags...), args...)
			r := runCLI(t, src.env, full...)
			all = append(all, r.stdout, r.stderr)
		}
		rec.fail(status.Error(codes.Unauthenticated, "invalid x-api-key "+testKey))
		full := append(append([]string{"-addr", addr}, src.flags...), "keys")
		r := runCLI(t, src.env, full...)
		all = append(all, r.stdout, r.stderr)
	}
	if want := len(sources) * 2 * (len(requestCases) + len(usageCases) + 3); len(all) != want {
		t.Errorf("checked %d outputs, want %d", len(all), want)
	}
	for _, out := range all {
		if strings.Contains(out, testKey) {
			t.Fatalf("an output contains the API key:\n%s", out)
		}
	}
}

// grpcurlFieldName is how grpcurl names JSON fields: protojson's lowerCamelCase json_name, which
// never has an underscore.
var grpcurlFieldName = regexp.MustCompile(`^[a-z][A-Za-z0-9]*$`)

// TestJSONFieldNamesAreGrpcurls runs every command of requestCases with -o json and checks every
// field name of its output, so that a recipe that picks fields out of grpcurl's output works on
// tokenctl's too.
func TestJSONFieldNamesAreGrpcurls(t *testing.T) {
	t.Parallel()
	for _, tc := range requestCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, addr := startFake(t)
			r := runCLI(t, nil, withServer(addr, append([]string{"-o", "json"}, tc.args...)...)...)
			if r.code != exitOK {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			// A stream prints one object per line, every other command one object.
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			n := 0
			for ; ; n++ {
				var v any
				err := dec.Decode(&v)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
				}
				for _, name := range fieldNames(v) {
					if !grpcurlFieldName.MatchString(name) {
						t.Errorf("field %q is not named as grpcurl names it (lowerCamelCase):\n%s", name, r.stdout)
					}
				}
			}
			if n == 0 {
				t.Fatal("no JSON output")
			}
		})
	}
}

// fieldNames returns the names of every object field in v, at any depth, except inside the
// google.protobuf.Struct fields, whose names are the caller's claims.
func fieldNames(v any) []string {
	var names []string
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			names = append(names, k)
			if k != "extra" && k != "extraClaims" {
				names = append(names, fieldNames(sub)...)
			}
		}
	case []any:
		for _, sub := range v {
			names = append(names, fieldNames(sub)...)
		}
	}
	return names
}
