package grpcserver

import (
	"context"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TestEveryMethodHasAPolicy walks the registered services: a new RPC without an entry in the
// policy table fails here (and is refused at run time).
func TestEveryMethodHasAPolicy(t *testing.T) {
	srv, err := New(Config{Logger: discardLogger(), ExtAuthz: testExtAuthzPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for svc, info := range srv.GRPC.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			registered[full] = true
			if _, ok := policies[full]; !ok {
				t.Errorf("%s has no entry in the policy table", full)
			}
		}
	}
	for full := range policies {
		if !registered[full] {
			t.Errorf("policy for %s, which is not registered", full)
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d methods registered; the walk found too little to mean anything", len(registered))
	}
}

// TestPolicyTable pins who may call each method, written out here rather than derived from the
// table: widening a method to another role (or the master credential to a tenant's business) fails
// here. Callers: M the master credential, and an API key holding the single role i(ssue),
// v(erify), r(evoke), a(dmin) or x (exchange). "public" methods need no credential.
func TestPolicyTable(t *testing.T) {
	const public = "public"
	want := map[string]string{
		tokenauthorityv1.TokenService_IssueToken_FullMethodName:       "ivra", // subject assertion needs i: the handler checks
		tokenauthorityv1.TokenService_RefreshToken_FullMethodName:     "i",
		tokenauthorityv1.TokenService_VerifyToken_FullMethodName:      "v",
		tokenauthorityv1.TokenService_RevokeToken_FullMethodName:      "r",
		tokenauthorityv1.TokenService_RevokeSessions_FullMethodName:   "r",
		tokenauthorityv1.TokenService_ListSessions_FullMethodName:     "vra",
		tokenauthorityv1.TokenService_ListPublicKeys_FullMethodName:   "via",
		tokenauthorityv1.TokenService_WatchRevocations_FullMethodName: "v",
		tokenauthorityv1.TokenService_ExchangeToken_FullMethodName:    "x",

		tokenauthorityv1.AdminService_CreateTenant_FullMethodName:       "M",
		tokenauthorityv1.AdminService_GetTenant_FullMethodName:          "Ma",
		tokenauthorityv1.AdminService_ListTenants_FullMethodName:        "M",
		tokenauthorityv1.AdminService_DeleteTenant_FullMethodName:       "M",
		tokenauthorityv1.AdminService_CreateApiKey_FullMethodName:       "a",
		tokenauthorityv1.AdminService_ListApiKeys_FullMethodName:        "a",
		tokenauthorityv1.AdminService_RotateApiKey_FullMethodName:       "a",
		tokenauthorityv1.AdminService_DeleteApiKey_FullMethodName:       "a",
		tokenauthorityv1.AdminService_CreatePrincipal_FullMethodName:    "a",
		tokenauthorityv1.AdminService_SetPrincipalSecret_FullMethodName: "a",
		tokenauthorityv1.AdminService_DeletePrincipal_FullMethodName:    "a",
		tokenauthorityv1.AdminService_ListPrincipals_FullMethodName:     "a",
		tokenauthorityv1.AdminService_RotateSigningKey_FullMethodName:   "a",
		tokenauthorityv1.AdminService_WithdrawSigningKey_FullMethodName: "a",
		tokenauthorityv1.AdminService_ListSigningKeys_FullMethodName:    "a",
		tokenauthorityv1.AdminService_RotateRefreshKey_FullMethodName:   "a",

		authv3.Authorization_Check_FullMethodName: "v",

		healthpb.Health_Check_FullMethodName: public,
		healthpb.Health_Watch_FullMethodName: public,
		healthpb.Health_List_FullMethodName:  public,
		// Open in development; production asks for a credential (TestReflectionNeedsACredentialInProduction).
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      public,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": public,
	}
	callers := map[byte]*tenant.Caller{
		'M': {Master: true},
		'i': {Roles: []tenant.Role{tenant.RoleIssue}},
		'v': {Roles: []tenant.Role{tenant.RoleVerify}},
		'r': {Roles: []tenant.Role{tenant.RoleRevoke}},
		'a': {Roles: []tenant.Role{tenant.RoleAdmin}},
		'x': {Roles: []tenant.Role{tenant.RoleExchange}},
	}
	for method, who := range want {
		p, ok := policies[method]
		if !ok {
			t.Errorf("%s: no policy", method)
			continue
		}
		if who == public {
			if !p.public {
				t.Errorf("%s needs a credential; want public", method)
			}
			continue
		}
		if p.public {
			t.Errorf("%s is public; want %q only", method, who)
		}
		for c, caller := range callers {
			if got, w := allowed(p, caller), strings.IndexByte(who, c) >= 0; got != w {
				t.Errorf("%s: caller %c allowed = %v, want %v", method, c, got, w)
			}
		}
	}
	for method := range policies {
		if _, ok := want[method]; !ok {
			t.Errorf("%s has a policy that this test does not pin", method)
		}
	}
}

// TestUnknownMethodsNeedACredentialAndAreRefused: a method missing from the table (one added
// without a policy, or a name made up by a caller) goes through authentication and is refused,
// never served as if public.
func TestUnknownMethodsNeedACredentialAndAreRefused(t *testing.T) {
	lookup := policyLookup(true)
	const method = "/tokenauthority.v1.TokenService/NotInTheTable"
	meta := interceptors.NewServerCallMeta(method, nil, nil)
	if !needsAuth(lookup).Match(context.Background(), meta) {
		t.Errorf("%s skips authentication", method)
	}
	authz := authorizer(nil, discardLogger(), nil, lookup)
	if _, err := authz(context.Background(), method, "any"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("%s: %v, want PermissionDenied", method, err)
	}
}
