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
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/lifecycle"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// fakeLifecycle is a tenant lifecycle that records its calls and fails with err when set.
type fakeLifecycle struct {
	err error
	// created is the tenant Create was given, with how many options; deleted the ids Delete was.
	created *tenant.Tenant
	opts    int
	deleted []string
}

var storedAt = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)

func (f *fakeLifecycle) Create(_ context.Context, t *tenant.Tenant, opts ...lifecycle.CreateOption) (*tenant.Tenant, string, error) {
	f.created, f.opts = t, len(opts)
	if f.err != nil {
		return nil, "", f.err
	}
	stored := *t
	stored.CreatedAt, stored.Incarnation = storedAt, "inc-1"
	return &stored, "tak_the-first-admin-key", nil
}

func (f *fakeLifecycle) Delete(_ context.Context, id string) error {
	f.deleted = append(f.deleted, id)
	return f.err
}

// masterCtx is the context of a call by the master credential, as the auth interceptor leaves it.
func masterCtx() context.Context {
	return context.WithValue(context.Background(), callerKey{}, &tenant.Caller{Master: true, MasterFingerprint: "f1"})
}

func newTestAdmin(lc TenantLifecycle) *adminService {
	return &adminService{lifecycle: lc, log: discardLogger(),
		watches: &watchers{maxPerKey: 10, maxPerTenant: 10}}
}

// lifecycleErrors are domain errors and the status each must become; anything unexpected is a
// bare Internal that does not quote it.
var lifecycleErrors = []struct {
	err  error
	code codes.Code
	msg  string
}{
	{fmt.Errorf("%w: issuer must be 1-256 bytes", tenant.ErrInvalid), codes.InvalidArgument, "invalid tenant definition: issuer must be 1-256 bytes"},
	{store.ErrExists, codes.AlreadyExists, "already exists"},
	{fmt.Errorf("create the tenant's signing keys: %w", store.ErrUnavailable), codes.Unavailable, "token store unavailable; retry later"},
	{tenant.ErrNotFound, codes.NotFound, "not found"},
	{errors.New("a secret detail of the failure"), codes.Internal, "internal error"},
}

func TestAdminCreateTenant(t *testing.T) {
	full := &tokenauthorityv1.Tenant{
		TenantId: "acme", Issuer: "https://acme.example", Algorithm: tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256,
		MaxAccessTtl: durationpb.New(10 * time.Minute), MaxRefreshTtl: durationpb.New(48 * time.Hour),
		AllowedAudiences: []string{"api"}, AllowedScopes: []string{"read", "write"},
		IssueRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 5, Burst: 10}, RefreshRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 6, Burst: 11},
		RevokeRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 7, Burst: 12}, ExchangeRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 8, Burst: 13},
		RequireCertificateBinding: true,
	}
	fullDomain := &tenant.Tenant{
		ID: "acme", Issuer: "https://acme.example", Algorithm: keys.ES256, MaxAccessTTL: 10 * time.Minute, MaxRefreshTTL: 48 * time.Hour,
		AllowedAudiences: []string{"api"}, AllowedScopes: []string{"read", "write"},
		IssueLimit: &tenant.RateLimit{PerSecond: 5, Burst: 10}, RefreshLimit: &tenant.RateLimit{PerSecond: 6, Burst: 11},
		RevokeLimit: &tenant.RateLimit{PerSecond: 7, Burst: 12}, ExchangeLimit: &tenant.RateLimit{PerSecond: 8, Burst: 13},
		RequireCertificateBinding: true,
	}
	fullOut := proto.Clone(full).(*tokenauthorityv1.Tenant)
	fullOut.CreateTime = timestamppb.New(storedAt)

	tests := []struct {
		name string
		in   *tokenauthorityv1.Tenant
		// want is the tenant the lifecycle must be given; nil: it must not be called.
		want *tenant.Tenant
		// wantOut is the tenant of the response.
		wantOut *tokenauthorityv1.Tenant
		code    codes.Code
	}{
		{name: "every field mapped", in: full, want: fullDomain, wantOut: fullOut},
		{name: "unspecified algorithm is EdDSA", in: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:acme"},
			want: &tenant.Tenant{ID: "acme", Issuer: "urn:acme", Algorithm: keys.EdDSA},
			wantOut: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:acme", Algorithm: tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA,
				CreateTime: timestamppb.New(storedAt)}},
		{name: "tenant missing", code: codes.InvalidArgument},
		{name: "unknown algorithm", in: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:acme", Algorithm: 99}, code: codes.InvalidArgument},
		{name: "negative TTL bound", in: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:acme", MaxAccessTtl: durationpb.New(-time.Second)},
			code: codes.InvalidArgument},
		{name: "invalid TTL bound", in: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:acme", MaxRefreshTtl: &durationpb.Duration{Seconds: 1, Nanos: -1}},
			code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc := &fakeLifecycle{}
			resp, err := newTestAdmin(lc).CreateTenant(masterCtx(), &tokenauthorityv1.CreateTenantRequest{Tenant: tt.in})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("CreateTenant = %v, want %v", err, tt.code)
			}
			if !reflect.DeepEqual(lc.created, tt.want) {
				t.Errorf("the lifecycle was given %+v, want %+v", lc.created, tt.want)
			}
			if tt.code != codes.OK {
				return
			}
			if lc.opts != 0 {
				t.Errorf("CreateTenant passed %d lifecycle options, want the normal path (none)", lc.opts)
			}
			if !proto.Equal(resp.GetTenant(), tt.wantOut) || resp.GetAdminApiKey() != "tak_the-first-admin-key" {
				t.Errorf("CreateTenant = %v, want tenant %v and the lifecycle's key", resp, tt.wantOut)
			}
		})
	}
	for _, e := range lifecycleErrors {
		t.Run("error "+e.code.String(), func(t *testing.T) {
			_, err := newTestAdmin(&fakeLifecycle{err: e.err}).CreateTenant(masterCtx(),
				&tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "urn:acme"}})
			if st, _ := status.FromError(err); st.Code() != e.code || st.Message() != e.msg {
				t.Errorf("CreateTenant with the lifecycle failing with %q = %v; want %v %q", e.err, err, e.code, e.msg)
			}
		})
	}
}

func TestAdminDeleteTenant(t *testing.T) {
	for _, e := range append([]struct {
		err  error
		code codes.Code
		msg  string
	}{{nil, codes.OK, ""}}, lifecycleErrors...) {
		t.Run(e.code.String(), func(t *testing.T) {
			lc := &fakeLifecycle{err: e.err}
			admin := newTestAdmin(lc)
			// A revocation stream of the tenant on this replica, and one of another tenant.
			mine, err := admin.watches.acquire("k1", "acme")
			if err != nil {
				t.Fatal(err)
			}
			other, err := admin.watches.acquire("k2", "other")
			if err != nil {
				t.Fatal(err)
			}
			_, err = admin.DeleteTenant(masterCtx(), &tokenauthorityv1.DeleteTenantRequest{TenantId: "acme"})
			if st, _ := status.FromError(err); st.Code() != e.code || st.Message() != e.msg {
				t.Errorf("DeleteTenant with the lifecycle answering %v = %v; want %v %q", e.err, err, e.code, e.msg)
			}
			if !reflect.DeepEqual(lc.deleted, []string{"acme"}) {
				t.Errorf("the lifecycle deleted %v, want [acme]", lc.deleted)
			}
			// The tenant's streams re-check their credential at once, whatever the outcome.
			if len(mine.recheck) != 1 || len(other.recheck) != 0 {
				t.Errorf("rechecks pending: the tenant's stream %d, another tenant's %d; want 1 and 0",
					len(mine.recheck), len(other.recheck))
			}
		})
	}
}
