package grpcserver

import (
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// adminWriteLimit bounds the admin writes of each caller's key on each replica (beyond it:
// ResourceExhausted with the time to wait), so that no admin can make a replica generate keys or
// grow the store as fast as it can call. The master credential counts as one key. Fixed and
// documented (docs/operations.md) rather than configured: an operator's scripts stay far below it.
var adminWriteLimit = tenant.RateLimit{PerSecond: 10, Burst: 30}

// adminWrites lists the AdminService methods that create, rotate, set or delete something: the
// ones adminWriteLimit applies to. A test checks it against the service's methods.
var adminWrites = map[string]bool{
	tokenauthorityv1.AdminService_CreateTenant_FullMethodName:       true,
	tokenauthorityv1.AdminService_DeleteTenant_FullMethodName:       true,
	tokenauthorityv1.AdminService_CreateApiKey_FullMethodName:       true,
	tokenauthorityv1.AdminService_RotateApiKey_FullMethodName:       true,
	tokenauthorityv1.AdminService_DeleteApiKey_FullMethodName:       true,
	tokenauthorityv1.AdminService_CreatePrincipal_FullMethodName:    true,
	tokenauthorityv1.AdminService_SetPrincipalSecret_FullMethodName: true,
	tokenauthorityv1.AdminService_DeletePrincipal_FullMethodName:    true,
	tokenauthorityv1.AdminService_RotateSigningKey_FullMethodName:   true,
	tokenauthorityv1.AdminService_WithdrawSigningKey_FullMethodName: true,
	tokenauthorityv1.AdminService_RotateRefreshKey_FullMethodName:   true,
}

// masterWriter is the limiter's name for the master credential, which has no key id (API key ids
// are 16 characters).
const masterWriter = "master"

// writerKey names the caller's bucket of admin writes.
func writerKey(c *tenant.Caller) string {
	if c.Master {
		return masterWriter
	}
	return c.KeyID
}
