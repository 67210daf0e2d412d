package tenant

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// ErrUnauthenticated reports a missing, malformed, unknown or wrong credential. Its message never
// says which, so that it is no oracle.
var ErrUnauthenticated = errors.New("invalid API key")

// APIKeyPrefix starts every API key, so that secret scanners can find leaked ones.
const APIKeyPrefix = "tak_"

const (
	keyIDLen     = 16 // 12 random bytes, base64url
	keySecretLen = 43 // 32 random bytes, base64url
	apiKeyLen    = len(APIKeyPrefix) + keyIDLen + 1 + keySecretLen
)

// APIKey is a stored API key: never its value, only the value's hash.
type APIKey struct {
	ID        string    `json:"id"`
	Tenant    string    `json:"tenant"`
	Name      string    `json:"name"`
	Roles     []Role    `json:"roles"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"created"`
	// PrevHash is the rotated-out value's hash, valid until PrevExpiresAt.
	PrevHash      []byte    `json:"prev_hash,omitempty"`
	PrevExpiresAt time.Time `json:"prev_exp,omitzero"`
	// Exchange is the exchange policy of a key with RoleExchange; nil otherwise.
	Exchange *ExchangePolicy `json:"exchange,omitempty"`
}

// Caller is an authenticated caller: the master credential, or an API key of a tenant.
type Caller struct {
	Master bool
	// MasterFingerprint names which master key a master caller presented (MasterFingerprint of
	// it): not a secret, for the audit log during a rotation of the master key.
	MasterFingerprint string
	KeyID             string
	Tenant            *Tenant
	Roles             []Role
	// KeyName is the API key's name: the actor (`act.sub`) of the tokens it exchanges, the same
	// across rotations of the key.
	KeyName string
	// Exchange is the key's exchange policy; nil unless it has RoleExchange.
	Exchange *ExchangePolicy
}

// Has reports whether the caller holds role.
func (c *Caller) Has(role Role) bool { return slices.Contains(c.Roles, role) }

// Service authenticates callers and manages tenants and API keys.
type Service struct {
	store Store
	// masters are the master credentials accepted: the current one, and a previous one during a
	// rolling change.
	masters []masterCredential
	// dummyHash stands in for the hash of an unknown key id, so that refusing one costs the same
	// comparison as refusing a wrong secret.
	dummyHash  []byte
	now        func() time.Time
	cacheTTL   time.Duration
	unknownTTL time.Duration
	// audit writes the events of API keys and principals created, changed and deleted (WithAudit).
	audit *audit.Writer

	mu    sync.RWMutex
	cache map[string]cachedKey
	// unknown holds the ids that did not authenticate (no such key, or its tenant is gone) and
	// until when that answer stands.
	unknown map[string]time.Time
	// forgets counts the entries dropped because a key or tenant changed here: a lookup that ran
	// across one caches nothing, since it may have read the record before the change.
	forgets uint64
}

type cachedKey struct {
	key     *APIKey
	tenant  *Tenant
	expires time.Time
}

// DefaultCacheTTL is how long a replica trusts an API key record it has read: a deleted key stops
// working everywhere within this time.
const DefaultCacheTTL = 5 * time.Second

// UnknownKeyCacheTTL is how long a replica remembers that a key id does not authenticate, so that
// repeated attempts with an unknown id are answered from memory, as a wrong secret is, rather than
// each costing a store read. A key created on this replica works here at once; one created on
// another replica under an id that this one was shown within this time works here after it.
const UnknownKeyCacheTTL = 2 * time.Second

// Bounds of the caches: a full cache is emptied, which costs store reads, never a wrong answer.
const (
	maxCachedKeys  = 10_000
	maxUnknownKeys = 10_000
)

// compareHash compares a presented credential's hash with a stored one in constant time.
var compareHash = subtle.ConstantTimeCompare

type masterCredential struct {
	hash        []byte
	fingerprint string
}

// ServiceOption configures a Service.
type ServiceOption func(*Service)

// WithPreviousMasterKey also accepts key as the master credential: the key being replaced, during
// a rolling change in which some replicas know only the old key and some the new one.
func WithPreviousMasterKey(key string) ServiceOption {
	return func(s *Service) {
		if key != "" {
			s.masters = append(s.masters, newMasterCredential(key))
		}
	}
}

// WithAudit writes an audit event for each API key and principal created, rotated, given a
// secret or deleted, naming the key by its id and the principal by its identifier; the values
// and secrets the service hands out never reach it. Without it no events are written.
func WithAudit(w *audit.Writer) ServiceOption {
	return func(s *Service) { s.audit = w }
}

func newMasterCredential(key string) masterCredential {
	h := sha256.Sum256([]byte(key))
	return masterCredential{hash: h[:], fingerprint: MasterFingerprint(key)}
}

// MasterFingerprint returns a non-secret name of a master key: 16 hex digits of a SHA-256 under
// a context string of its own, so that it is neither the hash the service compares nor a hash any
// other system computes of the key.
func MasterFingerprint(key string) string {
	h := sha256.Sum256([]byte("tokenauthority master key fingerprint\x00" + key))
	return hex.EncodeToString(h[:8])
}

// NewService returns a service over s. masterKey may be empty (no master credential).
func NewService(s Store, masterKey string, now func() time.Time, opts ...ServiceOption) *Service {
	dummy := sha256.Sum256([]byte(randomB64(32)))
	svc := &Service{store: s, now: now, cacheTTL: DefaultCacheTTL, unknownTTL: UnknownKeyCacheTTL, dummyHash: dummy[:],
		cache: map[string]cachedKey{}, unknown: map[string]time.Time{}}
	if masterKey != "" {
		svc.masters = append(svc.masters, newMasterCredential(masterKey))
	}
	for _, o := range opts {
		o(svc)
	}
	return svc
}

// Authenticate returns the caller presenting credential. An unknown key id and a wrong secret are
// refused alike, with the same hashing and comparison, and both from memory once seen.
func (s *Service) Authenticate(ctx context.Context, credential string) (*Caller, error) {
	h := sha256.Sum256([]byte(credential))
	// Every master credential is compared, so that which one matched takes no different time.
	var master *masterCredential
	for i := range s.masters {
		if subtle.ConstantTimeCompare(h[:], s.masters[i].hash) == 1 {
			master = &s.masters[i]
		}
	}
	if master != nil {
		return &Caller{Master: true, MasterFingerprint: master.fingerprint}, nil
	}
	id, ok := parseAPIKey(credential)
	if !ok {
		return nil, ErrUnauthenticated
	}
	k, t, err := s.lookup(ctx, id)
	if errors.Is(err, ErrUnauthenticated) {
		compareHash(h[:], s.dummyHash)
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	match := compareHash(h[:], k.Hash) == 1
	if !match && k.PrevHash != nil && s.now().Before(k.PrevExpiresAt) {
		match = compareHash(h[:], k.PrevHash) == 1
	}
	if !match {
		return nil, ErrUnauthenticated
	}
	return &Caller{KeyID: k.ID, Tenant: t, Roles: k.Roles, KeyName: k.Name, Exchange: k.Exchange}, nil
}

// AuthenticateFromStore is Authenticate without this replica's cache: it reads the key and its
// tenant from the store (and caches them afresh). What lasts beyond one call, a revocation
// stream, starts with it, so that it never rests on a key or tenant that another replica deleted
// within the cache's life.
func (s *Service) AuthenticateFromStore(ctx context.Context, credential string) (*Caller, error) {
	if id, ok := parseAPIKey(credential); ok {
		s.forgetKey(id)
	}
	return s.Authenticate(ctx, credential)
}

// lookup returns the key id and its tenant, from the caches or else the store, or
// ErrUnauthenticated when there is no such key or its tenant is gone. Store failures are returned
// and never cached.
func (s *Service) lookup(ctx context.Context, id string) (*APIKey, *Tenant, error) {
	now := s.now()
	s.mu.RLock()
	c, ok := s.cache[id]
	unknownUntil, unknown := s.unknown[id]
	forgets := s.forgets
	s.mu.RUnlock()
	if ok && now.Before(c.expires) {
		return c.key, c.tenant, nil
	}
	if unknown && now.Before(unknownUntil) {
		return nil, nil, ErrUnauthenticated
	}
	k, t, err := s.read(ctx, id)
	if err != nil && !errors.Is(err, ErrUnauthenticated) {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forgets != forgets {
		return k, t, err
	}
	if err != nil {
		if len(s.unknown) >= maxUnknownKeys {
			clear(s.unknown)
		}
		s.unknown[id] = now.Add(s.unknownTTL)
		return nil, nil, err
	}
	if len(s.cache) >= maxCachedKeys {
		clear(s.cache)
	}
	s.cache[id] = cachedKey{key: k, tenant: t, expires: now.Add(s.cacheTTL)}
	return k, t, nil
}

// read reads the key id and its tenant from the store.
func (s *Service) read(ctx context.Context, id string) (*APIKey, *Tenant, error) {
	k, err := getRecord[APIKey](ctx, s.store, store.KindAPIKey, id, ErrUnauthenticated)
	if err != nil {
		return nil, nil, err
	}
	t, err := getTenant(ctx, s.store, k.Tenant)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, nil, err
	}
	return k, t, nil
}

// Tenant returns a tenant.
func (s *Service) Tenant(ctx context.Context, id string) (*Tenant, error) {
	return getTenant(ctx, s.store, id)
}

// CreateTenant stores a new tenant (store.ErrExists when the id is taken), with a new
// incarnation, and claims its issuer: a tenant whose issuer another tenant holds is ErrInvalid,
// and is not stored. The tenant's record is written first and removed again when the claim
// fails (issuer.go says why in that order). When the id is taken by a tenant of the same issuer
// whose claim a failed creation never made (a retry after a lost reply), the claim is made for it.
func (s *Service) CreateTenant(ctx context.Context, t *Tenant) error {
	if err := t.Validate(); err != nil {
		return err
	}
	t.Incarnation = randomB64(12)
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode tenant: %w", err)
	}
	if err := s.store.CreateRecord(ctx, store.KindTenant, t.ID, raw); err != nil {
		if errors.Is(err, store.ErrExists) {
			s.reclaimIssuer(ctx, t)
		}
		return err
	}
	holder, err := s.claimIssuer(ctx, t)
	if err == nil && holder != "" {
		err = fmt.Errorf("%w: issuer %q is already the issuer of tenant %q", ErrInvalid, t.Issuer, holder)
	}
	if err != nil {
		return s.undoCreate(ctx, t, raw, err)
	}
	return nil
}

// reclaimIssuer claims the issuer of the existing tenant of t's id if it has t's issuer: the
// claim of a creation that stored the record and then failed (or whose process ended) before
// claiming. The answer to the caller is store.ErrExists either way, so this is a repair, best
// effort: what it cannot do, ClaimIssuers does at the next start.
func (s *Service) reclaimIssuer(ctx context.Context, t *Tenant) {
	existing, err := getTenant(ctx, s.store, t.ID)
	if err != nil || existing.Issuer != t.Issuer {
		return
	}
	_, _ = s.claimIssuer(ctx, existing)
}

// MaxAPIKeys bounds the API keys of one tenant, so that no tenant's admins can grow the store,
// and the work of listing or deleting the tenant's keys, without end.
const MaxAPIKeys = 500

// CreateAPIKey creates a key for tenantID with roles and returns its record and value. The value
// is returned once and never stored. A tenant holding MaxAPIKeys keys gets an error wrapping
// ErrLimit.
func (s *Service) CreateAPIKey(ctx context.Context, tenantID, name string, roles []Role) (*APIKey, string, error) {
	return s.CreateAPIKeyWithPolicy(ctx, tenantID, name, roles, nil)
}

// CreateAPIKeyWithPolicy is CreateAPIKey for a key that may also carry an exchange policy: one
// with RoleExchange must (and needs a name), one without must not. The policy's target audiences
// must be allowed by the tenant.
func (s *Service) CreateAPIKeyWithPolicy(ctx context.Context, tenantID, name string, roles []Role, exchange *ExchangePolicy) (*APIKey, string, error) {
	var t *Tenant
	if exchange != nil {
		var err error
		if t, err = getTenant(ctx, s.store, tenantID); err != nil {
			return nil, "", err
		}
	}
	if err := validateExchange(t, name, roles, exchange); err != nil {
		return nil, "", err
	}
	value := NewAPIKeyValue()
	k, raw, err := s.newAPIKey(tenantID, name, roles, value, exchange)
	if err != nil {
		return nil, "", err
	}
	err = s.store.CreateOwnedRecord(ctx, store.KindAPIKey, tenantID, k.ID, raw, MaxAPIKeys)
	if errors.Is(err, store.ErrLimit) {
		return nil, "", fmt.Errorf("%w: a tenant holds at most %d API keys; delete one before creating another", ErrLimit, MaxAPIKeys)
	}
	if err != nil {
		return nil, "", err
	}
	s.forgetKey(k.ID)
	e := audit.Event{Kind: audit.APIKeyCreated, Tenant: tenantID, KeyID: k.ID}
	if p := k.Exchange; p != nil {
		// The key's name is the actor of the tokens it exchanges.
		e.Actor, e.AcceptAudience, e.TargetAudiences = k.Name, p.AcceptAudience, p.TargetAudiences
	}
	s.audit.Emit(ctx, e)
	return k, value, nil
}

// RegisterAPIKey stores the hash of an existing key value (the development key persisted on disk),
// replacing the key of the same id. MaxAPIKeys does not apply.
func (s *Service) RegisterAPIKey(ctx context.Context, tenantID, name string, roles []Role, value string) (*APIKey, error) {
	if err := validateExchange(nil, name, roles, nil); err != nil {
		return nil, err
	}
	k, _, err := s.newAPIKey(tenantID, name, roles, value, nil)
	if err != nil {
		return nil, err
	}
	if err := s.putAPIKey(ctx, k); err != nil {
		return nil, err
	}
	return k, nil
}

// newAPIKey validates a key definition and returns the key of value and its record.
func (s *Service) newAPIKey(tenantID, name string, roles []Role, value string, exchange *ExchangePolicy) (*APIKey, []byte, error) {
	id, ok := parseAPIKey(value)
	if !ok {
		return nil, nil, fmt.Errorf("%w: malformed API key value", ErrInvalid)
	}
	if len(roles) == 0 {
		return nil, nil, fmt.Errorf("%w: an API key needs at least one role", ErrInvalid)
	}
	for _, r := range roles {
		if !slices.Contains(AllRoles, r) && r != RoleExchange {
			return nil, nil, fmt.Errorf("%w: unknown role %q", ErrInvalid, r)
		}
	}
	if len(name) > 256 {
		return nil, nil, fmt.Errorf("%w: name is at most 256 bytes", ErrInvalid)
	}
	h := sha256.Sum256([]byte(value))
	k := &APIKey{ID: id, Tenant: tenantID, Name: name, Roles: roles, Hash: h[:], CreatedAt: s.now(), Exchange: exchange}
	raw, err := json.Marshal(k)
	if err != nil {
		return nil, nil, fmt.Errorf("encode API key: %w", err)
	}
	return k, raw, nil
}

// NewAPIKeyValue returns a fresh API key value: the prefix, a 96-bit id and a 256-bit secret.
func NewAPIKeyValue() string {
	return apiKeyValue(randomB64(12))
}

// apiKeyValue returns a fresh value for the key id.
func apiKeyValue(id string) string {
	return APIKeyPrefix + id + "." + randomB64(32)
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseAPIKey returns the id of a well-formed key value.
func parseAPIKey(v string) (string, bool) {
	if len(v) != apiKeyLen || !strings.HasPrefix(v, APIKeyPrefix) {
		return "", false
	}
	rest := v[len(APIKeyPrefix):]
	if rest[keyIDLen] != '.' {
		return "", false
	}
	id, secret := rest[:keyIDLen], rest[keyIDLen+1:]
	if _, err := base64.RawURLEncoding.DecodeString(id); err != nil {
		return "", false
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", false
	}
	return id, true
}
