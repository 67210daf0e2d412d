package grpcserver

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// policy says who may call a method.
type policy struct {
	// public methods need no credential at all.
	public bool
	// master allows the master credential.
	master bool
	// roles lists API-key roles that allow the call (any one suffices).
	roles []tenant.Role
}

func roles(r ...tenant.Role) policy { return policy{roles: r} }

// policies is the authorisation table, keyed by full method name. A method missing here is refused
// (PermissionDenied), and a test fails when a registered method is missing.
var policies = map[string]policy{
	// Any key of the tenant may use the principal grant; asserting a subject needs role issue,
	// which the handler checks (authorizeSubject).
	tokenauthorityv1.TokenService_IssueToken_FullMethodName:       roles(tenant.RoleIssue, tenant.RoleVerify, tenant.RoleRevoke, tenant.RoleAdmin),
	tokenauthorityv1.TokenService_RefreshToken_FullMethodName:     roles(tenant.RoleIssue),
	tokenauthorityv1.TokenService_VerifyToken_FullMethodName:      roles(tenant.RoleVerify),
	tokenauthorityv1.TokenService_RevokeToken_FullMethodName:      roles(tenant.RoleRevoke),
	tokenauthorityv1.TokenService_RevokeSessions_FullMethodName:   roles(tenant.RoleRevoke),
	tokenauthorityv1.TokenService_ListSessions_FullMethodName:     roles(tenant.RoleVerify, tenant.RoleRevoke, tenant.RoleAdmin),
	tokenauthorityv1.TokenService_ListPublicKeys_FullMethodName:   roles(tenant.RoleVerify, tenant.RoleIssue, tenant.RoleAdmin),
	tokenauthorityv1.TokenService_WatchRevocations_FullMethodName: roles(tenant.RoleVerify),
	// The key's exchange policy, which the handler applies, says what it may exchange.
	tokenauthorityv1.TokenService_ExchangeToken_FullMethodName: roles(tenant.RoleExchange),

	tokenauthorityv1.AdminService_CreateTenant_FullMethodName:       {master: true},
	tokenauthorityv1.AdminService_GetTenant_FullMethodName:          {master: true, roles: []tenant.Role{tenant.RoleAdmin}},
	tokenauthorityv1.AdminService_ListTenants_FullMethodName:        {master: true},
	tokenauthorityv1.AdminService_DeleteTenant_FullMethodName:       {master: true},
	tokenauthorityv1.AdminService_CreateApiKey_FullMethodName:       roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_ListApiKeys_FullMethodName:        roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_RotateApiKey_FullMethodName:       roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_DeleteApiKey_FullMethodName:       roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_CreatePrincipal_FullMethodName:    roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_SetPrincipalSecret_FullMethodName: roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_DeletePrincipal_FullMethodName:    roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_ListPrincipals_FullMethodName:     roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_RotateSigningKey_FullMethodName:   roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_WithdrawSigningKey_FullMethodName: roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_ListSigningKeys_FullMethodName:    roles(tenant.RoleAdmin),
	tokenauthorityv1.AdminService_RotateRefreshKey_FullMethodName:   roles(tenant.RoleAdmin),

	// Envoy's ext_authz, served when a policy is configured: an answer is a verification.
	authv3.Authorization_Check_FullMethodName: roles(tenant.RoleVerify),

	healthpb.Health_Check_FullMethodName: {public: true},
	healthpb.Health_Watch_FullMethodName: {public: true},
	healthpb.Health_List_FullMethodName:  {public: true},

	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      {public: true},
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": {public: true},
}

// anyCredential admits the master credential and every API key, whatever its roles.
var anyCredential = policy{master: true, roles: append([]tenant.Role{tenant.RoleExchange}, tenant.AllRoles...)}

// policyLookup returns a server's access policy of a method: the table's, except that server
// reflection, which describes every service (AdminService included), needs a credential when
// protectReflection holds: open in development, where grpcurl explores the API without a key, but
// behind a credential in production (grpcurl sends its -H headers with reflection requests too).
// The server's table is built once, so that a lookup is one map read.
func policyLookup(protectReflection bool) func(method string) (policy, bool) {
	table := policies
	if protectReflection {
		table = make(map[string]policy, len(policies))
		for m, p := range policies {
			if strings.HasPrefix(m, "/grpc.reflection.") {
				p = anyCredential
			}
			table[m] = p
		}
	}
	return func(method string) (policy, bool) {
		p, ok := table[method]
		return p, ok
	}
}
