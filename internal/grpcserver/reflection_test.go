package grpcserver

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// listServices asks r's reflection service (v1, or v1alpha as older grpcurl does) for the
// services it serves, presenting credential when not empty. A Send that meets io.EOF found the
// stream already ended by the server: Recv returns why.
func listServices(t *testing.T, r *replica, alpha bool, credential string) ([]string, error) {
	t.Helper()
	ctx := context.Background()
	if credential != "" {
		ctx = withAPIKey(ctx, credential)
	}
	var names []string
	if alpha {
		// The deprecated v1alpha service is what grpcurl and older tools still call: it must be
		// protected as v1 is.
		//nolint:staticcheck // SA1019: deliberately the deprecated protocol
		stream, err := reflectionv1alpha.NewServerReflectionClient(r.conn).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		req := &reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}} //nolint:staticcheck // SA1019: as above
		if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		for _, s := range resp.GetListServicesResponse().GetService() { //nolint:staticcheck // SA1019: as above
			names = append(names, s.GetName()) //nolint:staticcheck // SA1019: as above
		}
		return names, stream.CloseSend()
	}
	stream, err := reflectionv1.NewServerReflectionClient(r.conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, stream.CloseSend()
}

// TestReflectionNeedsACredentialInProduction checks that server reflection, which lists
// AdminService and every method, answers anyone in development but only a valid credential
// (any API key, whatever its roles, or the master credential) in production.
func TestReflectionNeedsACredentialInProduction(t *testing.T) {
	b := newBackend()
	dev := b.replica(t, nil)
	prod := b.replica(t, func(c *Config) { c.AuthenticateReflection = true })
	key := newTenant(t, dev, "acme")
	verifyOnly := must(tokenauthorityv1.NewAdminServiceClient(dev.conn).CreateApiKey(key.ctx(), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "verify", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}})).GetSecret()
	tests := []struct {
		name       string
		r          *replica
		credential string
		want       codes.Code
	}{
		{"development, no credential", dev, "", codes.OK},
		{"development, a wrong key", dev, "tak_AAAAAAAAAAAAAAAA.wrong", codes.OK},
		{"production, no credential", prod, "", codes.Unauthenticated},
		{"production, a wrong key", prod, "tak_AAAAAAAAAAAAAAAA.wrong", codes.Unauthenticated},
		{"production, an API key with role verify only", prod, verifyOnly, codes.OK},
		{"production, an API key with every role", prod, key.value, codes.OK},
		{"production, the master credential", prod, testMasterKey, codes.OK},
	}
	for _, tt := range tests {
		for _, alpha := range []bool{false, true} {
			name := tt.name
			if alpha {
				name += ", v1alpha"
			}
			t.Run(name, func(t *testing.T) {
				names, err := listServices(t, tt.r, alpha, tt.credential)
				if got := status.Code(err); got != tt.want {
					t.Fatalf("list services: %v, want %v", err, tt.want)
				}
				if err == nil && !slices.Contains(names, tokenauthorityv1.AdminService_ServiceDesc.ServiceName) {
					t.Errorf("services %v, want AdminService among them", names)
				}
			})
		}
	}
}
