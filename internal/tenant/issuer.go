package tenant

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// The issuer names the tenant to every consumer (JWKS discovery, Envoy's and Istio's providers are
// configured per issuer): two tenants under one issuer would make a consumer's trust in one mean
// trust in the other's name. So each issuer has a claim record (store.KindIssuer) naming the
// tenant that holds it, made with one create-if-absent: of two concurrent creations under one
// issuer, exactly one gets it.
//
// The order makes a claim safe to read: a tenant's record is created before its claim, and a
// claim names the tenant's incarnation, which is drawn at random for each creation. So a claim
// whose tenant record is missing, or holds another incarnation, belongs to a tenant that is gone
// for good (a deletion or a refused creation that did not remove the claim): it is free, and is
// taken over with a compare-and-swap. A claim is only ever deleted with a compare-and-delete of
// the value read, so a deletion never removes a claim that another creation has just taken.

// issuerClaim is the value of an issuer's claim record: the tenant that holds the issuer, and
// which incarnation of it.
type issuerClaim struct {
	Tenant      string `json:"tenant"`
	Incarnation string `json:"inc,omitempty"`
}

// maxClaimAttempts bounds the attempts of one claim. Each failed one means that another writer
// changed the claim meanwhile, so the loop never spins without progress.
const maxClaimAttempts = 100

// issuerClaimID returns the record id of issuer's claim: base64url of its SHA-256, since an
// issuer is any printable UTF-8 of up to 256 bytes and record ids are printable ASCII.
func issuerClaimID(issuer string) string {
	h := sha256.Sum256([]byte(issuer))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func encodeClaim(t *Tenant) ([]byte, error) {
	raw, err := json.Marshal(issuerClaim{Tenant: t.ID, Incarnation: t.Incarnation})
	if err != nil {
		return nil, fmt.Errorf("encode issuer claim: %w", err)
	}
	return raw, nil
}

// claimIssuer makes t (whose record is stored) the holder of its issuer's claim. When another
// tenant that exists holds the claim, it returns that tenant's id and changes nothing.
func (s *Service) claimIssuer(ctx context.Context, t *Tenant) (holder string, err error) {
	id := issuerClaimID(t.Issuer)
	mine, err := encodeClaim(t)
	if err != nil {
		return "", err
	}
	for range maxClaimAttempts {
		err := s.store.CreateRecord(ctx, store.KindIssuer, id, mine)
		if !errors.Is(err, store.ErrExists) {
			return "", err
		}
		raw, err := s.store.GetRecord(ctx, store.KindIssuer, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return "", err
		}
		c, live, err := s.claimLive(ctx, id, raw)
		if err != nil {
			return "", err
		}
		if c.Tenant == t.ID && c.Incarnation == t.Incarnation {
			return "", nil
		}
		if live {
			return c.Tenant, nil
		}
		swapped, err := s.store.SwapRecord(ctx, store.KindIssuer, id, raw, mine)
		if swapped {
			return "", nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	return "", fmt.Errorf("claim issuer %q: %w", t.Issuer, store.ErrConflict)
}

// claimLive decodes the claim raw, of the record id, and reports whether its tenant holds it: the
// tenant exists, in the incarnation the claim names, under the issuer whose claim id is id. A
// claim that does not decode is nobody's.
func (s *Service) claimLive(ctx context.Context, id string, raw []byte) (issuerClaim, bool, error) {
	var c issuerClaim
	if err := json.Unmarshal(raw, &c); err != nil || c.Tenant == "" {
		return issuerClaim{}, false, nil
	}
	t, err := getTenant(ctx, s.store, c.Tenant)
	if errors.Is(err, ErrNotFound) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	return c, t.Incarnation == c.Incarnation && issuerClaimID(t.Issuer) == id, nil
}

// releaseIssuer deletes t's issuer claim if it still names t (this incarnation), and reports
// whether it did. One compare-and-delete of the value t's claim holds (every claim is written by
// encodeClaim): a claim taken over by another creation, or by a later incarnation of t's id,
// stays.
func (s *Service) releaseIssuer(ctx context.Context, t *Tenant) (bool, error) {
	mine, err := encodeClaim(t)
	if err != nil {
		return false, err
	}
	return s.store.DeleteRecordIf(ctx, store.KindIssuer, issuerClaimID(t.Issuer), mine)
}

// undoCreate removes the record raw of tenant t, created by a call whose issuer claim then
// failed, and returns err, or err joined with the removal's failure. Without the caller's
// cancellation, since a record left behind would hold the issuer unclaimed; with a store budget
// of its own, since the claim may have spent the call's.
func (s *Service) undoCreate(ctx context.Context, t *Tenant, raw []byte, err error) error {
	bg := store.Detached(ctx)
	// Of the bytes written: a record of the same id made by another call stays.
	_, derr := s.store.DeleteRecordIf(bg, store.KindTenant, t.ID, raw)
	s.forgetTenant(t.ID)
	if derr != nil {
		return fmt.Errorf("%w; removing the tenant record again also failed: %w", err, derr)
	}
	return err
}

// IssuerConflict is a tenant stored under the issuer of another that holds it: possible only for
// tenants stored without a claim (before issuers were claimed: their creations raced under the
// old check, or a replica of the previous version made one during a rolling upgrade).
type IssuerConflict struct {
	Issuer string
	// Holder holds the issuer's claim; Tenant is the other one.
	Holder, Tenant string
}

// ClaimIssuers claims the issuer of every stored tenant that holds no claim, for tenants stored
// before issuers were claimed, and deletes the claims that name no stored tenant (left by a
// deletion that failed mid-way; harmless, since a creation takes them over, but kept tidy). It
// reads every tenant and every claim once. It returns how many claims it made and deleted, and
// the tenants whose issuer another tenant holds (the one holding the claim keeps it; when none
// did, the first in id order). Running it again changes nothing.
func (s *Service) ClaimIssuers(ctx context.Context) (claimed, released int, conflicts []IssuerConflict, err error) {
	claims, err := s.store.ListRecords(ctx, store.KindIssuer, "")
	if err != nil {
		return 0, 0, nil, err
	}
	held := make(map[string][]byte, len(claims))
	for _, r := range claims {
		held[r.ID] = r.Value
	}
	tenants, _, err := s.ListTenants(ctx, 1<<30, "")
	if err != nil {
		return 0, 0, nil, err
	}
	named := make(map[string]bool, len(tenants))
	for _, t := range tenants {
		id := issuerClaimID(t.Issuer)
		mine, err := encodeClaim(t)
		if err != nil {
			return claimed, released, conflicts, err
		}
		if string(held[id]) == string(mine) {
			named[id] = true
			continue
		}
		holder, err := s.claimIssuer(ctx, t)
		if err != nil {
			return claimed, released, conflicts, err
		}
		if holder != "" {
			conflicts = append(conflicts, IssuerConflict{Issuer: t.Issuer, Holder: holder, Tenant: t.ID})
			continue
		}
		named[id] = true
		claimed++
	}
	for _, r := range claims {
		if named[r.ID] {
			continue
		}
		// Not one the listing named. Its tenant's record decides, as for a creation: a defence,
		// since a record is always written before its claim and the claims were listed first.
		_, live, err := s.claimLive(ctx, r.ID, r.Value)
		if err != nil {
			return claimed, released, conflicts, err
		}
		if live {
			continue
		}
		ok, err := s.store.DeleteRecordIf(ctx, store.KindIssuer, r.ID, r.Value)
		if err != nil {
			return claimed, released, conflicts, err
		}
		if ok {
			released++
		}
	}
	return claimed, released, conflicts, nil
}
