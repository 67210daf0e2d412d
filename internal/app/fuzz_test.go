package app

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// bytesCodec sends []byte requests as they are and keeps replies undecoded.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*(v.(*[]byte)) = data.Materialize()
	return nil
}

func (bytesCodec) Name() string { return "proto" }

// fuzzed lists the unary methods FuzzRequests calls, each with a well-formed request as a seed.
var fuzzed = []struct {
	method string
	master bool
	seed   proto.Message
}{
	{tokenauthorityv1.TokenService_IssueToken_FullMethodName, false, &tokenauthorityv1.IssueTokenRequest{Subject: "alice",
		Audience: []string{"orders"}, Scopes: []string{"read"}, AccessTtl: durationpb.New(60e9),
		ExtraClaims: &structpb.Struct{Fields: map[string]*structpb.Value{"role": structpb.NewStringValue("admin")}},
		Metadata:    &tokenauthorityv1.SessionMetadata{UserAgent: "ua", Ip: "192.0.2.1", Device: "d"}}},
	{tokenauthorityv1.TokenService_RefreshToken_FullMethodName, false, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: "eyJh.eyJz.sig"}},
	{tokenauthorityv1.TokenService_VerifyToken_FullMethodName, false, &tokenauthorityv1.VerifyTokenRequest{Token: "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
		Audience: "orders", RequiredScopes: []string{"read"}}},
	{tokenauthorityv1.TokenService_RevokeToken_FullMethodName, false, &tokenauthorityv1.RevokeTokenRequest{
		Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: "abc.def"}}},
	{tokenauthorityv1.TokenService_RevokeSessions_FullMethodName, false, &tokenauthorityv1.RevokeSessionsRequest{
		Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "bob"}}},
	{tokenauthorityv1.TokenService_ListSessions_FullMethodName, false, &tokenauthorityv1.ListSessionsRequest{Subject: "alice", PageSize: 2, PageToken: "x"}},
	{tokenauthorityv1.TokenService_ListPublicKeys_FullMethodName, false, &tokenauthorityv1.ListPublicKeysRequest{}},
	{tokenauthorityv1.AdminService_CreateTenant_FullMethodName, true, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "fuzz", Issuer: "https://fuzz.example", IssueRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 1, Burst: 1}}}},
	{tokenauthorityv1.AdminService_GetTenant_FullMethodName, true, &tokenauthorityv1.GetTenantRequest{TenantId: "dev"}},
	{tokenauthorityv1.AdminService_ListTenants_FullMethodName, true, &tokenauthorityv1.ListTenantsRequest{PageSize: 1}},
	{tokenauthorityv1.AdminService_CreateApiKey_FullMethodName, false, &tokenauthorityv1.CreateApiKeyRequest{Name: "k",
		Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}}},
	{tokenauthorityv1.AdminService_RotateApiKey_FullMethodName, false, &tokenauthorityv1.RotateApiKeyRequest{KeyId: "tak_x", Overlap: durationpb.New(1e9)}},
	{tokenauthorityv1.AdminService_CreatePrincipal_FullMethodName, false, &tokenauthorityv1.CreatePrincipalRequest{}},
	{tokenauthorityv1.AdminService_SetPrincipalSecret_FullMethodName, false, &tokenauthorityv1.SetPrincipalSecretRequest{}},
	{tokenauthorityv1.AdminService_WithdrawSigningKey_FullMethodName, false, &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: "nope"}},
}

// FuzzRequests sends arbitrary bytes as the request of each unary method to a running service:
// whatever arrives, the answer is a status that blames the caller or the input, never Internal
// or Unknown, and VerifyToken never calls a token active (no fuzzer forges an EdDSA signature).
// Methods that delete (DeleteTenant, DeleteApiKey, DeletePrincipal) are left out so that the
// fuzzer does not lock itself out.
func FuzzRequests(f *testing.F) {
	r := start(f, testConfig(f, ""))
	for i, m := range fuzzed {
		b, err := proto.Marshal(m.seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
		f.Add(uint8(i), append(b, 0x0a, 0x03, 0xff, 0xfe, 0xfd)) // field 1 again, invalid UTF-8
		f.Add(uint8(i), b[:len(b)/2])                            // truncated
	}
	dev, master := withKey(r.devKey), withKey(r.master)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		m := fuzzed[int(which)%len(fuzzed)]
		ctx := dev
		if m.master {
			ctx = master
		}
		ctx, cancel := context.WithTimeout(ctx, 10e9)
		defer cancel()
		var out []byte
		err := r.conn.Invoke(ctx, m.method, body, &out, grpc.ForceCodecV2(bytesCodec{}))
		switch status.Code(err) {
		case codes.Internal, codes.Unknown, codes.DeadlineExceeded, codes.Unavailable:
			t.Fatalf("%s: %v", m.method, err)
		}
		if err == nil && m.method == tokenauthorityv1.TokenService_VerifyToken_FullMethodName {
			var v tokenauthorityv1.VerifyTokenResponse
			if err := proto.Unmarshal(out, &v); err != nil {
				t.Fatalf("VerifyToken reply: %v", err)
			}
			if v.GetActive() {
				t.Fatalf("VerifyToken called a fuzzed token active")
			}
		}
	})
}
