package tenant

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Hooks for the tests of package tenant_test, which may import the stores.

// MaxUnknownKeys is maxUnknownKeys.
const MaxUnknownKeys = maxUnknownKeys

// SetCompareHash makes Authenticate compare hashes with f until restore is called.
func SetCompareHash(f func(x, y []byte) int) (restore func()) {
	old := compareHash
	compareHash = f
	return func() { compareHash = old }
}

// UnknownKeys returns how many unknown key ids s remembers.
func (s *Service) UnknownKeys() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.unknown)
}

// IssuerClaimID is issuerClaimID.
func IssuerClaimID(issuer string) string { return issuerClaimID(issuer) }

// ClaimHolder returns the tenant and incarnation that issuer's claim in st names, and found false
// when there is no claim.
func ClaimHolder(ctx context.Context, st Store, issuer string) (tenantID, incarnation string, found bool, err error) {
	raw, err := st.GetRecord(ctx, store.KindIssuer, issuerClaimID(issuer))
	if errors.Is(err, store.ErrNotFound) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	var c issuerClaim
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", "", false, err
	}
	return c.Tenant, c.Incarnation, true, nil
}
