package grpcserver

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/lifecycle"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TenantAdmin is what the admin service needs of the tenant service. Tenants are made and deleted
// through the lifecycle (TenantLifecycle) only, never piecemeal.
type TenantAdmin interface {
	Authenticator
	// AuthenticateFromStore is Authenticate bypassing any cache.
	AuthenticateFromStore(ctx context.Context, credential string) (*tenant.Caller, error)
	Tenant(ctx context.Context, id string) (*tenant.Tenant, error)
	ListTenants(ctx context.Context, limit int, after string) ([]*tenant.Tenant, string, error)
	CreateAPIKeyWithPolicy(ctx context.Context, tenantID, name string, roles []tenant.Role, exchange *tenant.ExchangePolicy) (*tenant.APIKey, string, error)
	ListAPIKeys(ctx context.Context, tenantID string) ([]*tenant.APIKey, error)
	RotateAPIKey(ctx context.Context, tenantID, id string, overlap time.Duration) (*tenant.APIKey, string, error)
	DeleteAPIKey(ctx context.Context, tenantID, id string) error
	CreatePrincipal(ctx context.Context, t *tenant.Tenant, p *tenant.Principal) error
	SetPrincipalSecret(ctx context.Context, tenantID, identifier string) (string, error)
	DeletePrincipal(ctx context.Context, tenantID, identifier string) error
	ListPrincipals(ctx context.Context, tenantID string, limit int, pageToken string) ([]*tenant.Principal, string, error)
	AuthenticatePrincipal(ctx context.Context, tenantID, identifier, secret string) (*tenant.Principal, error)
}

// KeyAdmin is what the admin service needs of the key manager. A tenant's key set is made and
// removed with the tenant, by the lifecycle.
type KeyAdmin interface {
	PublicKeys
	Rotate(ctx context.Context, tenant string, alg keys.Algorithm) (*keys.Key, error)
	Withdraw(ctx context.Context, tenant, kid string) error
	KeyStatuses(ctx context.Context, tenant string) ([]keys.KeyStatus, error)
	RotateRefreshKey(ctx context.Context, tenant string, r keys.RefreshRotation) (*keys.RefreshRotated, error)
}

// KeyAnnouncer is what the admin service needs of the token service: telling watchers of a
// signing key published or withdrawn.
type KeyAnnouncer interface {
	AnnounceKey(ctx context.Context, t *tenant.Tenant, kind revocation.Kind, kid string) error
}

// TenantLifecycle is what the admin service needs of the tenant lifecycle (lifecycle.Service):
// a tenant is created and deleted with its keys, API keys and sessions, never piecemeal.
type TenantLifecycle interface {
	// Create makes the tenant with its signing keys and first admin API key, all or nothing, and
	// returns the tenant as stored and the key's value.
	Create(ctx context.Context, t *tenant.Tenant, opts ...lifecycle.CreateOption) (*tenant.Tenant, string, error)
	// Delete cuts off the tenant's sessions, then deletes it and its keys.
	Delete(ctx context.Context, id string) error
}

// adminService implements tokenauthority.v1.AdminService.
type adminService struct {
	tokenauthorityv1.UnimplementedAdminServiceServer
	tenants   TenantAdmin
	keys      KeyAdmin
	announcer KeyAnnouncer
	lifecycle TenantLifecycle
	log       *slog.Logger
	// watches are this replica's revocation streams, re-checked at once when a call here ends
	// their credential.
	watches *watchers
}

// targetTenant returns the tenant an admin call acts on: the caller's own, which a request may
// name but not change.
func targetTenant(ctx context.Context, requested string) (*tenant.Tenant, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if requested != "" && requested != t.ID {
		return nil, status.Error(codes.PermissionDenied, "an API key manages its own tenant only")
	}
	return t, nil
}

var algorithms = map[tokenauthorityv1.SigningAlgorithm]keys.Algorithm{
	tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED: keys.EdDSA,
	tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA:       keys.EdDSA,
	tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256:       keys.ES256,
	tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_RS256:       keys.RS256,
	tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_HS256:       keys.HS256,
}

func algorithmToProto(a keys.Algorithm) tokenauthorityv1.SigningAlgorithm {
	for p, k := range algorithms {
		if k == a && p != tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED {
			return p
		}
	}
	return tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED
}

var roleNames = map[tokenauthorityv1.Role]tenant.Role{
	tokenauthorityv1.Role_ROLE_ISSUE:    tenant.RoleIssue,
	tokenauthorityv1.Role_ROLE_VERIFY:   tenant.RoleVerify,
	tokenauthorityv1.Role_ROLE_REVOKE:   tenant.RoleRevoke,
	tokenauthorityv1.Role_ROLE_ADMIN:    tenant.RoleAdmin,
	tokenauthorityv1.Role_ROLE_EXCHANGE: tenant.RoleExchange,
}

func rolesFromProto(rs []tokenauthorityv1.Role) ([]tenant.Role, error) {
	if len(rs) == 0 {
		return nil, status.Error(codes.InvalidArgument, "roles: at least one role is required")
	}
	out := make([]tenant.Role, 0, len(rs))
	for _, r := range rs {
		name, ok := roleNames[r]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "roles: unknown role %d", int32(r))
		}
		out = append(out, name)
	}
	return out, nil
}

func tenantToProto(t *tenant.Tenant) *tokenauthorityv1.Tenant {
	return &tokenauthorityv1.Tenant{
		TenantId:          t.ID,
		Issuer:            t.Issuer,
		Algorithm:         algorithmToProto(t.Algorithm),
		MaxAccessTtl:      durationOrNil(t.MaxAccessTTL),
		MaxRefreshTtl:     durationOrNil(t.MaxRefreshTTL),
		AllowedAudiences:  t.AllowedAudiences,
		AllowedScopes:     t.AllowedScopes,
		CreateTime:        timestamppb.New(t.CreatedAt),
		IssueRateLimit:    rateLimitToProto(t.IssueLimit),
		RefreshRateLimit:  rateLimitToProto(t.RefreshLimit),
		RevokeRateLimit:   rateLimitToProto(t.RevokeLimit),
		ExchangeRateLimit: rateLimitToProto(t.ExchangeLimit),

		RequireCertificateBinding: t.RequireCertificateBinding,
	}
}

func rateLimitToProto(l *tenant.RateLimit) *tokenauthorityv1.RateLimit {
	if l == nil {
		return nil
	}
	return &tokenauthorityv1.RateLimit{PerSecond: l.PerSecond, Burst: uint32(l.Burst)}
}

func rateLimitFromProto(l *tokenauthorityv1.RateLimit) *tenant.RateLimit {
	if l == nil {
		return nil
	}
	return &tenant.RateLimit{PerSecond: l.GetPerSecond(), Burst: int(min(l.GetBurst(), 1<<30))}
}

func durationOrNil(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}

func apiKeyToProto(k *tenant.APIKey) *tokenauthorityv1.ApiKey {
	out := &tokenauthorityv1.ApiKey{KeyId: k.ID, TenantId: k.Tenant, Name: k.Name, CreateTime: timestamppb.New(k.CreatedAt)}
	for _, r := range k.Roles {
		for p, name := range roleNames {
			if name == r {
				out.Roles = append(out.Roles, p)
			}
		}
	}
	if !k.PrevExpiresAt.IsZero() {
		out.PreviousValueExpireTime = timestamppb.New(k.PrevExpiresAt)
	}
	if p := k.Exchange; p != nil {
		out.ExchangePolicy = &tokenauthorityv1.ExchangePolicy{AcceptAudience: p.AcceptAudience, TargetAudiences: p.TargetAudiences}
	}
	return out
}

func exchangePolicyFromProto(p *tokenauthorityv1.ExchangePolicy) *tenant.ExchangePolicy {
	if p == nil {
		return nil
	}
	return &tenant.ExchangePolicy{AcceptAudience: p.GetAcceptAudience(), TargetAudiences: p.GetTargetAudiences()}
}

func (s *adminService) CreateTenant(ctx context.Context, req *tokenauthorityv1.CreateTenantRequest) (*tokenauthorityv1.CreateTenantResponse, error) {
	in := req.GetTenant()
	if in == nil {
		return nil, status.Error(codes.InvalidArgument, "tenant is required")
	}
	alg, ok := algorithms[in.GetAlgorithm()]
	if !ok {
		return nil, status.Error(codes.InvalidArgument, "algorithm: unknown value")
	}
	for _, d := range []*durationpb.Duration{in.GetMaxAccessTtl(), in.GetMaxRefreshTtl()} {
		if d != nil && (!d.IsValid() || d.AsDuration() < 0) {
			return nil, status.Error(codes.InvalidArgument, "TTL bounds must be valid, non-negative durations")
		}
	}
	t := &tenant.Tenant{
		ID:               in.GetTenantId(),
		Issuer:           in.GetIssuer(),
		Algorithm:        alg,
		MaxAccessTTL:     in.GetMaxAccessTtl().AsDuration(),
		MaxRefreshTTL:    in.GetMaxRefreshTtl().AsDuration(),
		AllowedAudiences: in.GetAllowedAudiences(),
		AllowedScopes:    in.GetAllowedScopes(),
		IssueLimit:       rateLimitFromProto(in.GetIssueRateLimit()),
		RefreshLimit:     rateLimitFromProto(in.GetRefreshRateLimit()),
		RevokeLimit:      rateLimitFromProto(in.GetRevokeRateLimit()),
		ExchangeLimit:    rateLimitFromProto(in.GetExchangeRateLimit()),

		RequireCertificateBinding: in.GetRequireCertificateBinding(),
	}
	created, value, err := s.lifecycle.Create(ctx, t)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.CreateTenantResponse{Tenant: tenantToProto(created), AdminApiKey: value}, nil
}

func (s *adminService) GetTenant(ctx context.Context, req *tokenauthorityv1.GetTenantRequest) (*tokenauthorityv1.GetTenantResponse, error) {
	id := req.GetTenantId()
	if c, _ := CallerFrom(ctx); c != nil && !c.Master {
		if _, err := targetTenant(ctx, id); err != nil {
			return nil, err
		}
		id = c.Tenant.ID
	}
	if !tenant.ValidID(id) {
		return nil, status.Error(codes.InvalidArgument, "tenant_id is not a valid tenant id")
	}
	t, err := s.tenants.Tenant(ctx, id)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.GetTenantResponse{Tenant: tenantToProto(t)}, nil
}

func (s *adminService) ListTenants(ctx context.Context, req *tokenauthorityv1.ListTenantsRequest) (*tokenauthorityv1.ListTenantsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Error(codes.InvalidArgument, "page_size must not be negative")
	case size == 0:
		size = 50
	case size > 500:
		size = 500
	}
	after := req.GetPageToken()
	if after != "" && !tenant.ValidID(after) {
		return nil, status.Error(codes.InvalidArgument, "page_token is not one this server returned")
	}
	ts, next, err := s.tenants.ListTenants(ctx, size, after)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.ListTenantsResponse{NextPageToken: next}
	for _, t := range ts {
		out.Tenants = append(out.Tenants, tenantToProto(t))
	}
	return out, nil
}

func (s *adminService) DeleteTenant(ctx context.Context, req *tokenauthorityv1.DeleteTenantRequest) (*tokenauthorityv1.DeleteTenantResponse, error) {
	err := s.lifecycle.Delete(ctx, req.GetTenantId())
	// Whatever step failed, this replica's revocation streams of the tenant re-check their
	// credential now rather than at their next tick: a stream of a deleted tenant ends at once,
	// and a re-check of one whose tenant is still there costs a store read.
	s.watches.recheckTenant(req.GetTenantId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.DeleteTenantResponse{}, nil
}

func (s *adminService) CreateApiKey(ctx context.Context, req *tokenauthorityv1.CreateApiKeyRequest) (*tokenauthorityv1.CreateApiKeyResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	roles, err := rolesFromProto(req.GetRoles())
	if err != nil {
		return nil, err
	}
	k, value, err := s.tenants.CreateAPIKeyWithPolicy(ctx, t.ID, req.GetName(), roles, exchangePolicyFromProto(req.GetExchangePolicy()))
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.CreateApiKeyResponse{ApiKey: apiKeyToProto(k), Secret: value}, nil
}

func (s *adminService) ListApiKeys(ctx context.Context, req *tokenauthorityv1.ListApiKeysRequest) (*tokenauthorityv1.ListApiKeysResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	ks, err := s.tenants.ListAPIKeys(ctx, t.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.ListApiKeysResponse{}
	for _, k := range ks {
		out.ApiKeys = append(out.ApiKeys, apiKeyToProto(k))
	}
	return out, nil
}

func (s *adminService) RotateApiKey(ctx context.Context, req *tokenauthorityv1.RotateApiKeyRequest) (*tokenauthorityv1.RotateApiKeyResponse, error) {
	t, err := targetTenant(ctx, "")
	if err != nil {
		return nil, err
	}
	if o := req.GetOverlap(); o != nil && !o.IsValid() {
		return nil, status.Error(codes.InvalidArgument, "overlap must be a valid duration")
	}
	k, value, err := s.tenants.RotateAPIKey(ctx, t.ID, req.GetKeyId(), req.GetOverlap().AsDuration())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.watches.recheckKey(k.ID)
	return &tokenauthorityv1.RotateApiKeyResponse{ApiKey: apiKeyToProto(k), Secret: value}, nil
}

func (s *adminService) DeleteApiKey(ctx context.Context, req *tokenauthorityv1.DeleteApiKeyRequest) (*tokenauthorityv1.DeleteApiKeyResponse, error) {
	t, err := targetTenant(ctx, "")
	if err != nil {
		return nil, err
	}
	if err := s.tenants.DeleteAPIKey(ctx, t.ID, req.GetKeyId()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.watches.recheckKey(req.GetKeyId())
	return &tokenauthorityv1.DeleteApiKeyResponse{}, nil
}

func principalToProto(p *tenant.Principal) *tokenauthorityv1.Principal {
	return &tokenauthorityv1.Principal{
		Identifier: p.Identifier, TenantId: p.Tenant, DisplayName: p.DisplayName,
		Scopes: p.Scopes, Audience: p.Audience, HasSecret: p.SecretHash != nil, CreateTime: timestamppb.New(p.CreatedAt),
	}
}

func (s *adminService) CreatePrincipal(ctx context.Context, req *tokenauthorityv1.CreatePrincipalRequest) (*tokenauthorityv1.CreatePrincipalResponse, error) {
	in := req.GetPrincipal()
	if in == nil {
		return nil, status.Error(codes.InvalidArgument, "principal is required")
	}
	t, err := targetTenant(ctx, in.GetTenantId())
	if err != nil {
		return nil, err
	}
	p := &tenant.Principal{Identifier: in.GetIdentifier(), DisplayName: in.GetDisplayName(), Scopes: in.GetScopes(), Audience: in.GetAudience()}
	if err := s.tenants.CreatePrincipal(ctx, t, p); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.CreatePrincipalResponse{Principal: principalToProto(p)}, nil
}

func (s *adminService) SetPrincipalSecret(ctx context.Context, req *tokenauthorityv1.SetPrincipalSecretRequest) (*tokenauthorityv1.SetPrincipalSecretResponse, error) {
	t, err := targetTenant(ctx, "")
	if err != nil {
		return nil, err
	}
	secret, err := s.tenants.SetPrincipalSecret(ctx, t.ID, req.GetIdentifier())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.SetPrincipalSecretResponse{Secret: secret}, nil
}

func (s *adminService) DeletePrincipal(ctx context.Context, req *tokenauthorityv1.DeletePrincipalRequest) (*tokenauthorityv1.DeletePrincipalResponse, error) {
	t, err := targetTenant(ctx, "")
	if err != nil {
		return nil, err
	}
	if err := s.tenants.DeletePrincipal(ctx, t.ID, req.GetIdentifier()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.DeletePrincipalResponse{}, nil
}

// signingKeyToProto describes a key that Rotate has just added: published, or active at once
// when there is no pre-publish delay.
func signingKeyToProto(k *keys.Key) *tokenauthorityv1.SigningKey {
	out := &tokenauthorityv1.SigningKey{
		Kid:          k.ID,
		Algorithm:    algorithmToProto(k.Algorithm),
		PublishTime:  timestamppb.New(k.PublishedAt),
		ActivateTime: timestamppb.New(k.ActivatesAt),
		CreateTime:   timestampOrNil(k.CreatedAt),
		State:        tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_PUBLISHED,
	}
	if !k.ActivatesAt.After(k.PublishedAt) {
		out.State = tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE
	}
	if !k.RetiredAt.IsZero() {
		out.RetireTime = timestamppb.New(k.RetiredAt)
	}
	return out
}

func (s *adminService) RotateSigningKey(ctx context.Context, req *tokenauthorityv1.RotateSigningKeyRequest) (*tokenauthorityv1.RotateSigningKeyResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	var alg keys.Algorithm // unspecified: the current signer's algorithm
	if req.GetAlgorithm() != tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED {
		a, ok := algorithms[req.GetAlgorithm()]
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "algorithm: unknown value")
		}
		alg = a
	}
	k, err := s.keys.Rotate(ctx, t.ID, alg)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	// Not reported to the caller, whose retry would rotate again: interceptors that miss the
	// announcement fetch the key when they first see its kid.
	if err := s.announcer.AnnounceKey(ctx, t, revocation.KindKeyPublished, k.ID); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "the published key could not be announced to watchers", slog.String("tenant", t.ID),
			slog.String("kid", k.ID), slog.String("error", err.Error()))
	}
	return &tokenauthorityv1.RotateSigningKeyResponse{Key: signingKeyToProto(k)}, nil
}

func (s *adminService) WithdrawSigningKey(ctx context.Context, req *tokenauthorityv1.WithdrawSigningKeyRequest) (*tokenauthorityv1.WithdrawSigningKeyResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	if req.GetKid() == "" || len(req.GetKid()) > 64 {
		return nil, status.Error(codes.InvalidArgument, "kid is required")
	}
	if err := s.keys.Withdraw(ctx, t.ID, req.GetKid()); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := s.announcer.AnnounceKey(ctx, t, revocation.KindKeyWithdrawn, req.GetKid()); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "the withdrawn key could not be announced to watchers", slog.String("tenant", t.ID),
			slog.String("kid", req.GetKid()), slog.String("error", err.Error()))
		return nil, status.Error(codes.Unavailable, "the key is withdrawn, but interceptors in local mode were not told: "+
			"they reject its tokens only after their next key refresh")
	}
	return &tokenauthorityv1.WithdrawSigningKeyResponse{}, nil
}

func (s *adminService) RotateRefreshKey(ctx context.Context, req *tokenauthorityv1.RotateRefreshKeyRequest) (*tokenauthorityv1.RotateRefreshKeyResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	if c := req.GetIfCurrentKid(); c != "" && !keys.ValidRefreshKID(c) {
		return nil, status.Error(codes.InvalidArgument, "if_current_kid: not the id of a refresh-token key")
	}
	r, err := s.keys.RotateRefreshKey(ctx, t.ID, keys.RefreshRotation{Emergency: req.GetEmergency(), IfCurrent: req.GetIfCurrentKid()})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.RotateRefreshKeyResponse{
		Current:     &tokenauthorityv1.RefreshKey{Kid: r.Current.ID, CreateTime: timestamppb.New(r.Current.CreatedAt)},
		DroppedKids: r.Dropped,
	}
	for _, k := range r.Retired {
		rk := &tokenauthorityv1.RefreshKey{Kid: k.ID, RetireTime: timestamppb.New(k.RetiredAt),
			DeleteTime: timestamppb.New(k.RetiredAt.Add(r.Retention))}
		if !k.CreatedAt.IsZero() {
			rk.CreateTime = timestamppb.New(k.CreatedAt)
		}
		out.Retired = append(out.Retired, rk)
	}
	return out, nil
}
