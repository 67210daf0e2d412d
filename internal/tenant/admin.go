package tenant

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// ErrKeyNotFound reports an API key or principal that does not exist in the caller's tenant.
var ErrKeyNotFound = errors.New("no such credential in this tenant")

// ListTenants returns up to limit tenants whose id sorts after the page token, and the token of
// the next page ("" at the end).
func (s *Service) ListTenants(ctx context.Context, limit int, after string) ([]*Tenant, string, error) {
	recs, err := s.store.ListRecords(ctx, store.KindTenant, "")
	if err != nil {
		return nil, "", err
	}
	var out []*Tenant
	for _, r := range recs {
		if r.ID <= after {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].ID, nil
		}
		var t Tenant
		if err := json.Unmarshal(r.Value, &t); err != nil {
			return nil, "", fmt.Errorf("decode tenant %q: %w", r.ID, err)
		}
		out = append(out, &t)
	}
	return out, "", nil
}

// DeleteTenant deletes a tenant with its API keys and principals, then releases its issuer
// claim if the claim still names it. Ending its sessions and
// dropping its keys is the caller's part (the tenant cut-off must be set first, so that a tenant
// created again with the same id cannot revive them). It reads and deletes the tenant's own
// records only.
func (s *Service) DeleteTenant(ctx context.Context, id string) error {
	// Read first, for the issuer claim to release at the end; a tenant already gone has left its
	// claim, if any, naming an incarnation that no longer exists, which is free.
	t, err := getTenant(ctx, s.store, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	keys, err := s.store.ListOwnedRecords(ctx, store.KindAPIKey, id)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := s.store.DeleteOwnedRecord(ctx, store.KindAPIKey, id, k.ID); err != nil {
			return err
		}
	}
	principals, err := s.store.ListRecords(ctx, store.KindPrincipal, id+"/")
	if err != nil {
		return err
	}
	for _, p := range principals {
		if _, err := s.store.DeleteRecord(ctx, store.KindPrincipal, p.ID); err != nil {
			return err
		}
	}
	existed, err := s.store.DeleteRecord(ctx, store.KindTenant, id)
	if err != nil {
		return err
	}
	s.forgetTenant(id)
	if t != nil {
		// A failure leaves a claim naming a deleted incarnation: free for any creation, and
		// deleted by ClaimIssuers at the next start. Not worth failing a finished deletion for.
		_, _ = s.releaseIssuer(ctx, t)
	}
	if !existed {
		return ErrNotFound
	}
	return nil
}

// ListAPIKeys returns the tenant's API keys (their hashes, never values), ordered by id. It reads
// the tenant's keys only, however many other tenants hold.
func (s *Service) ListAPIKeys(ctx context.Context, tenantID string) ([]*APIKey, error) {
	recs, err := s.store.ListOwnedRecords(ctx, store.KindAPIKey, tenantID)
	if err != nil {
		return nil, err
	}
	var out []*APIKey
	for _, r := range recs {
		var k APIKey
		if err := json.Unmarshal(r.Value, &k); err != nil {
			return nil, fmt.Errorf("decode API key: %w", err)
		}
		if k.Tenant == tenantID {
			out = append(out, &k)
		}
	}
	return out, nil
}

// IndexAPIKeys lists every stored API key under its tenant, for keys stored before ListAPIKeys
// and DeleteTenant read per-tenant lists (or by a replica of that older version since). It reads
// every API key once and returns how many it listed and how many records it skipped because they
// do not decode. Running it again lists nothing twice, and never lists a deleted key.
func (s *Service) IndexAPIKeys(ctx context.Context) (listed, skipped int, err error) {
	recs, err := s.store.ListRecords(ctx, store.KindAPIKey, "")
	if err != nil {
		return 0, 0, err
	}
	byTenant := map[string][]string{}
	for _, r := range recs {
		var k APIKey
		if err := json.Unmarshal(r.Value, &k); err != nil || k.Tenant == "" {
			skipped++
			continue
		}
		byTenant[k.Tenant] = append(byTenant[k.Tenant], r.ID)
	}
	for _, t := range slices.Sorted(maps.Keys(byTenant)) {
		n, err := s.store.OwnRecords(ctx, store.KindAPIKey, t, byTenant[t])
		listed += n
		if err != nil {
			return listed, skipped, err
		}
	}
	return listed, skipped, nil
}

// apiKeyOf returns the tenant's key id, or ErrKeyNotFound (also for another tenant's key).
func (s *Service) apiKeyOf(ctx context.Context, tenantID, id string) (*APIKey, error) {
	k, err := getRecord[APIKey](ctx, s.store, store.KindAPIKey, id, ErrKeyNotFound)
	if err != nil {
		return nil, err
	}
	if k.Tenant != tenantID {
		return nil, ErrKeyNotFound
	}
	return k, nil
}

// RotateAPIKey gives the tenant's key a new value; the old one keeps working for overlap (at most
// 30 days). It returns the key and its new value, shown once.
func (s *Service) RotateAPIKey(ctx context.Context, tenantID, id string, overlap time.Duration) (*APIKey, string, error) {
	if overlap < 0 || overlap > 30*24*time.Hour {
		return nil, "", fmt.Errorf("%w: overlap must be between 0 and 720h", ErrInvalid)
	}
	k, err := s.apiKeyOf(ctx, tenantID, id)
	if err != nil {
		return nil, "", err
	}
	value := apiKeyValue(id)
	h := sha256.Sum256([]byte(value))
	k.PrevHash, k.PrevExpiresAt = k.Hash, s.now().Add(overlap)
	if overlap == 0 {
		k.PrevHash, k.PrevExpiresAt = nil, time.Time{}
	}
	k.Hash = h[:]
	if err := s.putAPIKey(ctx, k); err != nil {
		return nil, "", err
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.APIKeyRotated, Tenant: tenantID, KeyID: k.ID})
	return k, value, nil
}

// DeleteAPIKey deletes the tenant's key. Other replicas stop accepting it within DefaultCacheTTL.
// The tenant's last key with role admin cannot be deleted (ErrLastAdminKey): the master credential
// may create tenants and nothing else, so nobody could administer the tenant again.
func (s *Service) DeleteAPIKey(ctx context.Context, tenantID, id string) error {
	k, err := s.apiKeyOf(ctx, tenantID, id)
	if err != nil {
		return err
	}
	if slices.Contains(k.Roles, RoleAdmin) {
		all, err := s.ListAPIKeys(ctx, tenantID)
		if err != nil {
			return err
		}
		admins := 0
		for _, o := range all {
			if slices.Contains(o.Roles, RoleAdmin) {
				admins++
			}
		}
		if admins <= 1 {
			return ErrLastAdminKey
		}
	}
	deleted, err := s.store.DeleteOwnedRecord(ctx, store.KindAPIKey, tenantID, id)
	if err != nil {
		return err
	}
	s.forgetKey(id)
	if !deleted {
		// A concurrent deletion got there first, and audited it.
		return ErrKeyNotFound
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.APIKeyDeleted, Tenant: tenantID, KeyID: id})
	return nil
}

func (s *Service) putAPIKey(ctx context.Context, k *APIKey) error {
	raw, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encode API key: %w", err)
	}
	if err := s.store.PutOwnedRecord(ctx, store.KindAPIKey, k.Tenant, k.ID, raw); err != nil {
		return err
	}
	s.forgetKey(k.ID)
	return nil
}

// forgetKey drops what this replica remembers of key id, known or unknown, so that a change made
// here takes effect here at once.
func (s *Service) forgetKey(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	delete(s.unknown, id)
	s.forgets++
	s.mu.Unlock()
}

func (s *Service) forgetTenant(id string) {
	s.mu.Lock()
	for k, c := range s.cache {
		if c.tenant.ID == id {
			delete(s.cache, k)
		}
	}
	s.forgets++
	s.mu.Unlock()
}

// PrincipalSecretPrefix starts every principal secret, so that secret scanners can find leaked ones.
const PrincipalSecretPrefix = "tap_"

// Principal is a user or service account of a tenant that can obtain tokens with its own secret.
type Principal struct {
	Identifier  string    `json:"id"`
	Tenant      string    `json:"tenant"`
	DisplayName string    `json:"name,omitempty"`
	Scopes      []string  `json:"scopes,omitempty"`
	Audience    []string  `json:"aud,omitempty"`
	SecretHash  []byte    `json:"hash,omitempty"`
	CreatedAt   time.Time `json:"created"`
}

func principalID(tenantID, identifier string) string { return tenantID + "/" + identifier }

// validatePrincipal reports what is wrong with p's definition.
func validatePrincipal(p *Principal) error {
	var problems []string
	if p.Identifier == "" || len(p.Identifier) > 256 || !printable(p.Identifier) || strings.Contains(p.Identifier, "/") {
		problems = append(problems, "identifier must be 1-256 bytes of UTF-8 without '/' or control characters")
	}
	if len(p.DisplayName) > 256 || !printable(p.DisplayName) {
		problems = append(problems, "display_name must be at most 256 bytes of UTF-8 without control characters")
	}
	if len(p.Scopes) > 64 || len(p.Audience) > 16 {
		problems = append(problems, "at most 64 scopes and 16 audiences")
	}
	for _, sc := range p.Scopes {
		if !accesstoken.ValidScope(sc) {
			problems = append(problems, "each scope must be "+accesstoken.ScopeRule)
			break
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// CreatePrincipal stores a new principal of tenant t (store.ErrExists when it exists). Its scopes
// and audiences must be allowed by the tenant.
func (s *Service) CreatePrincipal(ctx context.Context, t *Tenant, p *Principal) error {
	p.Tenant, p.SecretHash, p.CreatedAt = t.ID, nil, s.now()
	if err := validatePrincipal(p); err != nil {
		return err
	}
	for _, sc := range p.Scopes {
		if !Allows(t.AllowedScopes, sc) {
			return fmt.Errorf("%w: scope %q is not allowed for this tenant", ErrInvalid, sc)
		}
	}
	for _, a := range p.Audience {
		if !Allows(t.AllowedAudiences, a) {
			return fmt.Errorf("%w: audience %q is not allowed for this tenant", ErrInvalid, a)
		}
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode principal: %w", err)
	}
	if err := s.store.CreateRecord(ctx, store.KindPrincipal, principalID(t.ID, p.Identifier), raw); err != nil {
		return err
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.PrincipalCreated, Tenant: t.ID, Principal: p.Identifier})
	return nil
}

func (s *Service) principal(ctx context.Context, tenantID, identifier string) (*Principal, error) {
	return getRecord[Principal](ctx, s.store, store.KindPrincipal, principalID(tenantID, identifier), ErrKeyNotFound)
}

// SetPrincipalSecret gives the principal a new secret, returned once; the previous one stops
// working at once.
func (s *Service) SetPrincipalSecret(ctx context.Context, tenantID, identifier string) (string, error) {
	p, err := s.principal(ctx, tenantID, identifier)
	if err != nil {
		return "", err
	}
	secret := PrincipalSecretPrefix + randomB64(32)
	h := sha256.Sum256([]byte(secret))
	p.SecretHash = h[:]
	raw, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode principal: %w", err)
	}
	if err := s.store.PutRecord(ctx, store.KindPrincipal, principalID(tenantID, identifier), raw); err != nil {
		return "", err
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.PrincipalSecretSet, Tenant: tenantID, Principal: identifier})
	return secret, nil
}

// DeletePrincipal deletes the principal. Its sessions live on until revoked (RevokeSessions).
func (s *Service) DeletePrincipal(ctx context.Context, tenantID, identifier string) error {
	existed, err := s.store.DeleteRecord(ctx, store.KindPrincipal, principalID(tenantID, identifier))
	if err != nil {
		return err
	}
	if !existed {
		return ErrKeyNotFound
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.PrincipalDeleted, Tenant: tenantID, Principal: identifier})
	return nil
}

// AuthenticatePrincipal returns the principal whose identifier and secret were presented, or
// ErrUnauthenticated without saying which part was wrong.
func (s *Service) AuthenticatePrincipal(ctx context.Context, tenantID, identifier, secret string) (*Principal, error) {
	h := sha256.Sum256([]byte(secret))
	p, err := s.principal(ctx, tenantID, identifier)
	if errors.Is(err, ErrKeyNotFound) || (err == nil && p.SecretHash == nil) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(h[:], p.SecretHash) != 1 {
		return nil, ErrUnauthenticated
	}
	return p, nil
}
