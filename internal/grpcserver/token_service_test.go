package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// fakeTokens is a token domain that records the request of each call and answers with its fields.
type fakeTokens struct {
	Tokens  // the methods a test does not set up panic
	err     error
	pair    *token.Pair
	verdict *token.Verification

	issued   *token.IssueRequest
	verified *token.VerifyRequest
	revoked  *token.RevokeTarget
	revokedT *tenant.Tenant
}

func (f *fakeTokens) Issue(_ context.Context, req token.IssueRequest) (*token.Pair, error) {
	f.issued = &req
	if f.err != nil {
		return nil, f.err
	}
	return f.pair, nil
}

func (f *fakeTokens) Verify(_ context.Context, req token.VerifyRequest) (*token.Verification, error) {
	f.verified = &req
	if f.err != nil {
		return nil, f.err
	}
	return f.verdict, nil
}

func (f *fakeTokens) Revoke(_ context.Context, t *tenant.Tenant, target token.RevokeTarget) error {
	f.revoked, f.revokedT = &target, t
	return f.err
}

var acmeTenant = &tenant.Tenant{ID: "acme", Issuer: "https://acme.example"}

// keyCtx is the context of a call by an API key of acme with roles.
func keyCtx(roles ...tenant.Role) context.Context {
	return context.WithValue(context.Background(), callerKey{}, &tenant.Caller{KeyID: "k1", Tenant: acmeTenant, Roles: roles})
}

func newTestTokenService(f *fakeTokens) *tokenService {
	return &tokenService{tokens: f, limits: newLimiter(nil), log: discardLogger()}
}

// tokenErrors are errors of the token domain and the status each must become.
var tokenErrors = []struct {
	err  error
	code codes.Code
	msg  string
}{
	{fmt.Errorf("%w: subject is required", token.ErrInvalidArgument), codes.InvalidArgument, ""},
	{fmt.Errorf("%w: audience not allowed", token.ErrPermissionDenied), codes.PermissionDenied, ""},
	{fmt.Errorf("write session: %w", store.ErrUnavailable), codes.Unavailable, "token store unavailable; retry later"},
	{fmt.Errorf("append: %w", revocation.ErrFull), codes.ResourceExhausted, "this tenant's revocation log is full of revocations of single " +
		"tokens and sessions that still matter; nothing was revoked: use RevokeSessions (a subject's or the whole tenant's cut-off) " +
		"instead, or retry once some of them expire"},
	{errors.New("a secret detail of the failure"), codes.Internal, "internal error"},
}

// checkMapped checks that err is the status that the domain error e maps to; an empty msg means
// the domain's own message.
func checkMapped(t *testing.T, call string, err error, e struct {
	err  error
	code codes.Code
	msg  string
}) {
	t.Helper()
	msg := e.msg
	if msg == "" {
		msg = e.err.Error()
	}
	if st, _ := status.FromError(err); st.Code() != e.code || st.Message() != msg {
		t.Errorf("%s with the domain failing with %q = %v; want %v %q", call, e.err, err, e.code, msg)
	}
}

func TestTokenServiceIssueToken(t *testing.T) {
	exp := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	pair := &token.Pair{AccessToken: "at", RefreshToken: "rt", AccessExpiresAt: exp, RefreshExpiresAt: exp.Add(time.Hour), SessionID: "s1"}
	extra, err := structpb.NewStruct(map[string]any{"plan": "pro"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ctx  context.Context
		req  *tokenauthorityv1.IssueTokenRequest
		// want is the request the domain must get; nil: it must not be called.
		want *token.IssueRequest
		code codes.Code
	}{
		{name: "every field mapped", ctx: keyCtx(tenant.RoleIssue), req: &tokenauthorityv1.IssueTokenRequest{
			Subject: "alice", Audience: []string{"api"}, Scopes: []string{"read"}, AccessTtl: durationpb.New(2 * time.Minute),
			RefreshTtl: durationpb.New(time.Hour), ExtraClaims: extra, CertificateThumbprint: "tp",
			Metadata: &tokenauthorityv1.SessionMetadata{UserAgent: "ua", Ip: "192.0.2.1", Device: "phone"},
		}, want: &token.IssueRequest{
			Tenant: acmeTenant, Subject: "alice", Audience: []string{"api"}, Scopes: []string{"read"}, AccessTTL: 2 * time.Minute,
			RefreshTTL: time.Hour, Extra: map[string]any{"plan": "pro"}, CertThumbprint: "tp",
			Metadata: store.Metadata{UserAgent: "ua", IP: "192.0.2.1", Device: "phone"},
		}},
		{name: "master credential has no tenant", ctx: masterCtx(), req: &tokenauthorityv1.IssueTokenRequest{Subject: "alice"},
			code: codes.PermissionDenied},
		{name: "asserting a subject needs role issue", ctx: keyCtx(tenant.RoleVerify), req: &tokenauthorityv1.IssueTokenRequest{Subject: "alice"},
			code: codes.PermissionDenied},
		{name: "invalid TTL", ctx: keyCtx(tenant.RoleIssue),
			req:  &tokenauthorityv1.IssueTokenRequest{Subject: "alice", AccessTtl: &durationpb.Duration{Seconds: 1, Nanos: -1}},
			code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTokens{pair: pair}
			resp, err := newTestTokenService(f).IssueToken(tt.ctx, tt.req)
			if got := status.Code(err); got != tt.code {
				t.Fatalf("IssueToken = %v, want %v", err, tt.code)
			}
			if !reflect.DeepEqual(f.issued, tt.want) {
				t.Errorf("the domain was asked %+v, want %+v", f.issued, tt.want)
			}
			if tt.code != codes.OK {
				return
			}
			want := &tokenauthorityv1.IssueTokenResponse{AccessToken: "at", RefreshToken: "rt", TokenType: "Bearer",
				AccessExpiresAt: timestamppb.New(exp), RefreshExpiresAt: timestamppb.New(exp.Add(time.Hour)), SessionId: "s1"}
			if !proto.Equal(resp, want) {
				t.Errorf("IssueToken = %v, want %v", resp, want)
			}
		})
	}
	for _, e := range tokenErrors {
		t.Run("error "+e.code.String(), func(t *testing.T) {
			_, err := newTestTokenService(&fakeTokens{err: e.err}).IssueToken(keyCtx(tenant.RoleIssue),
				&tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
			checkMapped(t, "IssueToken", err, e)
		})
	}
}

func TestTokenServiceVerifyToken(t *testing.T) {
	exp := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	claims := &token.Claims{Issuer: "https://acme.example", Subject: "alice", Audience: []string{"api"}, ExpiresAt: exp,
		NotBefore: exp.Add(-time.Hour), IssuedAt: exp.Add(-time.Hour), JTI: "j1", SessionID: "s1", Scopes: []string{"read"},
		CertThumbprint: "tp", Extra: map[string]any{"plan": "pro"}, Actor: []accesstoken.Actor{{Subject: "gateway"}}}
	extra, err := structpb.NewStruct(map[string]any{"plan": "pro"})
	if err != nil {
		t.Fatal(err)
	}
	req := &tokenauthorityv1.VerifyTokenRequest{Token: "at", Audience: "api", RequiredScopes: []string{"read"}, CertificateThumbprint: "tp"}
	tests := []struct {
		name    string
		ctx     context.Context
		req     *tokenauthorityv1.VerifyTokenRequest
		verdict *token.Verification
		// want is the request the domain must get (nil: not called); wantResp the answer.
		want     *token.VerifyRequest
		wantResp *tokenauthorityv1.VerifyTokenResponse
		code     codes.Code
	}{
		{name: "active, claims mapped", ctx: keyCtx(tenant.RoleVerify), req: req, verdict: &token.Verification{Active: true, Claims: claims},
			want: &token.VerifyRequest{Tenant: acmeTenant, Token: "at", Audience: "api", RequiredScopes: []string{"read"}, CertThumbprint: "tp"},
			wantResp: &tokenauthorityv1.VerifyTokenResponse{Active: true, Claims: &tokenauthorityv1.TokenClaims{
				Issuer: "https://acme.example", Subject: "alice", Audience: []string{"api"}, ExpireTime: timestamppb.New(exp),
				NotBeforeTime: timestamppb.New(exp.Add(-time.Hour)), IssueTime: timestamppb.New(exp.Add(-time.Hour)), Jti: "j1",
				SessionId: "s1", Scopes: []string{"read"}, CertificateThumbprint: "tp", Extra: extra,
				Actor: []*tokenauthorityv1.Actor{{Subject: "gateway"}},
			}}},
		{name: "inactive, reason mapped", ctx: keyCtx(tenant.RoleVerify), req: req, verdict: &token.Verification{Reason: token.ReasonCutOff},
			want:     &token.VerifyRequest{Tenant: acmeTenant, Token: "at", Audience: "api", RequiredScopes: []string{"read"}, CertThumbprint: "tp"},
			wantResp: &tokenauthorityv1.VerifyTokenResponse{Reason: tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF}},
		{name: "master credential has no tenant", ctx: masterCtx(), req: req, code: codes.PermissionDenied},
		{name: "audience too long", ctx: keyCtx(tenant.RoleVerify),
			req: &tokenauthorityv1.VerifyTokenRequest{Token: "at", Audience: string(make([]byte, 257))}, code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTokens{verdict: tt.verdict}
			resp, err := newTestTokenService(f).VerifyToken(tt.ctx, tt.req)
			if got := status.Code(err); got != tt.code {
				t.Fatalf("VerifyToken = %v, want %v", err, tt.code)
			}
			if !reflect.DeepEqual(f.verified, tt.want) {
				t.Errorf("the domain was asked %+v, want %+v", f.verified, tt.want)
			}
			if tt.code == codes.OK && !proto.Equal(resp, tt.wantResp) {
				t.Errorf("VerifyToken = %v, want %v", resp, tt.wantResp)
			}
		})
	}
	for _, e := range tokenErrors {
		t.Run("error "+e.code.String(), func(t *testing.T) {
			_, err := newTestTokenService(&fakeTokens{err: e.err}).VerifyToken(keyCtx(tenant.RoleVerify), req)
			checkMapped(t, "VerifyToken", err, e)
		})
	}
}

func TestTokenServiceRevokeToken(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		req  *tokenauthorityv1.RevokeTokenRequest
		// want is the target the domain must get; nil: it must not be called.
		want *token.RevokeTarget
		code codes.Code
	}{
		{name: "token", ctx: keyCtx(tenant.RoleRevoke),
			req:  &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: "at"}},
			want: &token.RevokeTarget{Token: "at"}},
		{name: "jti", ctx: keyCtx(tenant.RoleRevoke),
			req:  &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: "j1"}},
			want: &token.RevokeTarget{JTI: "j1"}},
		{name: "session", ctx: keyCtx(tenant.RoleRevoke),
			req:  &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: "s1"}},
			want: &token.RevokeTarget{SessionID: "s1"}},
		{name: "master credential has no tenant", ctx: masterCtx(),
			req: &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: "j1"}}, code: codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTokens{}
			_, err := newTestTokenService(f).RevokeToken(tt.ctx, tt.req)
			if got := status.Code(err); got != tt.code {
				t.Fatalf("RevokeToken = %v, want %v", err, tt.code)
			}
			if !reflect.DeepEqual(f.revoked, tt.want) {
				t.Errorf("the domain was asked to revoke %+v, want %+v", f.revoked, tt.want)
			}
			if tt.want != nil && f.revokedT != acmeTenant {
				t.Errorf("revoked in tenant %v, want the caller's", f.revokedT)
			}
		})
	}
	for _, e := range tokenErrors {
		t.Run("error "+e.code.String(), func(t *testing.T) {
			_, err := newTestTokenService(&fakeTokens{err: e.err}).RevokeToken(keyCtx(tenant.RoleRevoke),
				&tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: "j1"}})
			checkMapped(t, "RevokeToken", err, e)
		})
	}
}
