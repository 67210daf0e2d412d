package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// PublicKeys lists a tenant's published keys.
type PublicKeys interface {
	PublicKeys(ctx context.Context, tenant string) ([]*keys.Key, error)
	// CurrentPublicKeys reads them from the store, bypassing the cache.
	CurrentPublicKeys(ctx context.Context, tenant string) ([]*keys.Key, error)
}

// Tokens is what the token service needs of the token domain (token.Service).
type Tokens interface {
	Issue(ctx context.Context, req token.IssueRequest) (*token.Pair, error)
	RefreshFrom(ctx context.Context, t *tenant.Tenant, raw, presented string) (*token.Pair, error)
	Verify(ctx context.Context, req token.VerifyRequest) (*token.Verification, error)
	Revoke(ctx context.Context, t *tenant.Tenant, target token.RevokeTarget) error
	RevokeSubject(ctx context.Context, t *tenant.Tenant, subject string) (time.Time, error)
	RevokeTenant(ctx context.Context, t *tenant.Tenant) (time.Time, error)
	ListSessions(ctx context.Context, t *tenant.Tenant, subject string, pageSize int, pageToken string) ([]*store.Session, string, error)
	Exchange(ctx context.Context, req token.ExchangeRequest) (*token.Exchanged, error)
}

// tokenService implements tokenauthority.v1.TokenService.
type tokenService struct {
	tokenauthorityv1.UnimplementedTokenServiceServer
	tokens  Tokens
	keys    PublicKeys
	tenants TenantAdmin
	hub     *revocation.Hub
	watches *watchers
	limits  *limiter
	log     *slog.Logger
	// watchObs, when not nil, is told the lag of each event sent to a watcher; now is its clock.
	watchObs WatchObserver
	now      func() time.Time
	// recheckEvery is the period of a revocation stream's credential checks, on tickers made
	// by recheckTicker; policyOf is the server's access policy.
	recheckEvery  time.Duration
	recheckTicker func(time.Duration) (<-chan time.Time, func())
	policyOf      func(string) (policy, bool)
}

var errNoTenant = status.Error(codes.PermissionDenied, "this method needs an API key of a tenant")

// tenantOf returns the tenant of the authenticated API key.
func tenantOf(ctx context.Context) (*tenant.Tenant, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Tenant == nil {
		return nil, errNoTenant
	}
	return c.Tenant, nil
}

// tenantWithin returns the caller's tenant after taking one call of method from the caller's rate
// limit (DefaultRateLimit when the tenant sets none).
func (s *tokenService) tenantWithin(ctx context.Context, method string, limit func(*tenant.Tenant) *tenant.RateLimit) (*tenant.Tenant, error) {
	return s.tenantWithinOr(ctx, method, limit, tenant.DefaultRateLimit)
}

// tenantWithinOr is tenantWithin with def as the limit when the tenant sets none.
func (s *tokenService) tenantWithinOr(ctx context.Context, method string, limit func(*tenant.Tenant) *tenant.RateLimit, def tenant.RateLimit) (*tenant.Tenant, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Tenant == nil {
		return nil, errNoTenant
	}
	if err := s.limits.allow(c.KeyID, method, limit(c.Tenant).Or(def)); err != nil {
		return nil, err
	}
	return c.Tenant, nil
}

func revokeLimit(t *tenant.Tenant) *tenant.RateLimit { return t.RevokeLimit }

func (s *tokenService) IssueToken(ctx context.Context, req *tokenauthorityv1.IssueTokenRequest) (*tokenauthorityv1.IssueTokenResponse, error) {
	t, err := s.tenantWithin(ctx, "issue", func(t *tenant.Tenant) *tenant.RateLimit { return t.IssueLimit })
	if err != nil {
		return nil, err
	}
	ir := token.IssueRequest{
		Tenant:     t,
		Subject:    req.GetSubject(),
		Audience:   req.GetAudience(),
		Scopes:     req.GetScopes(),
		AccessTTL:  req.GetAccessTtl().AsDuration(),
		RefreshTTL: req.GetRefreshTtl().AsDuration(),
	}
	if req.GetAccessTtl() != nil && !req.GetAccessTtl().IsValid() || req.GetRefreshTtl() != nil && !req.GetRefreshTtl().IsValid() {
		return nil, status.Error(codes.InvalidArgument, "access_ttl and refresh_ttl must be valid durations")
	}
	if req.GetExtraClaims() != nil {
		ir.Extra = req.GetExtraClaims().AsMap()
	}
	if m := req.GetMetadata(); m != nil {
		ir.Metadata = store.Metadata{UserAgent: m.GetUserAgent(), IP: m.GetIp(), Device: m.GetDevice()}
	}
	if err := s.authorizeSubject(ctx, t, req, &ir); err != nil {
		return nil, err
	}
	if ir.CertThumbprint, err = bindingOf(ctx, req); err != nil {
		return nil, err
	}
	p, err := s.tokens.Issue(ctx, ir)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.IssueTokenResponse{
		AccessToken:      p.AccessToken,
		RefreshToken:     p.RefreshToken,
		TokenType:        "Bearer",
		AccessExpiresAt:  timestamppb.New(p.AccessExpiresAt),
		RefreshExpiresAt: timestamppb.New(p.RefreshExpiresAt),
		SessionId:        p.SessionID,
	}, nil
}

// authorizeSubject decides whose tokens these are. A caller with role `issue` may assert any
// subject; with the principal grant, any API key of the tenant may present a principal's identifier
// and secret, and the tokens are the principal's, within the scopes and audiences it was given.
func (s *tokenService) authorizeSubject(ctx context.Context, t *tenant.Tenant, req *tokenauthorityv1.IssueTokenRequest, ir *token.IssueRequest) error {
	pc := req.GetPrincipal()
	if pc == nil {
		if c, _ := CallerFrom(ctx); c == nil || !c.Has(tenant.RoleIssue) {
			return status.Error(codes.PermissionDenied, "asserting a subject needs role issue; use the principal grant otherwise")
		}
		return nil
	}
	if req.GetSubject() != "" {
		return status.Error(codes.InvalidArgument, "subject and principal are exclusive")
	}
	if pc.GetIdentifier() == "" || pc.GetSecret() == "" || len(pc.GetIdentifier()) > 256 || len(pc.GetSecret()) > 256 {
		return status.Error(codes.InvalidArgument, "principal needs an identifier and a secret")
	}
	p, err := s.tenants.AuthenticatePrincipal(ctx, t.ID, pc.GetIdentifier(), pc.GetSecret())
	if errors.Is(err, tenant.ErrUnauthenticated) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "principal authentication failed", slog.String("tenant", t.ID))
		return status.Error(codes.Unauthenticated, "invalid principal credentials")
	}
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	ir.Subject = p.Identifier
	if ir.Scopes, err = within("scopes", ir.Scopes, p.Scopes); err != nil {
		return err
	}
	if ir.Audience, err = within("audience", ir.Audience, p.Audience); err != nil {
		return err
	}
	return nil
}

// within returns requested when every entry is granted, or all that is granted when nothing was
// requested.
func within(field string, requested, granted []string) ([]string, error) {
	if len(requested) == 0 {
		return granted, nil
	}
	for _, r := range requested {
		if !slices.Contains(granted, r) {
			return nil, status.Errorf(codes.PermissionDenied, "%s: %q was not granted to this principal", field, r)
		}
	}
	return requested, nil
}

func (s *tokenService) RefreshToken(ctx context.Context, req *tokenauthorityv1.RefreshTokenRequest) (*tokenauthorityv1.RefreshTokenResponse, error) {
	t, err := s.tenantWithin(ctx, "refresh", func(t *tenant.Tenant) *tenant.RateLimit { return t.RefreshLimit })
	if err != nil {
		return nil, err
	}
	p, err := s.tokens.RefreshFrom(ctx, t, req.GetRefreshToken(), authn.PresentedThumbprint(ctx))
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.RefreshTokenResponse{
		AccessToken:      p.AccessToken,
		RefreshToken:     p.RefreshToken,
		TokenType:        "Bearer",
		AccessExpiresAt:  timestamppb.New(p.AccessExpiresAt),
		RefreshExpiresAt: timestamppb.New(p.RefreshExpiresAt),
		SessionId:        p.SessionID,
	}, nil
}

func (s *tokenService) VerifyToken(ctx context.Context, req *tokenauthorityv1.VerifyTokenRequest) (*tokenauthorityv1.VerifyTokenResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.GetAudience()) > 256 || len(req.GetRequiredScopes()) > 64 {
		return nil, status.Error(codes.InvalidArgument, "audience is at most 256 bytes and required_scopes at most 64 entries")
	}
	v, err := s.tokens.Verify(ctx, token.VerifyRequest{
		Tenant:         t,
		Token:          req.GetToken(),
		Audience:       req.GetAudience(),
		RequiredScopes: req.GetRequiredScopes(),
		CertThumbprint: req.GetCertificateThumbprint(),
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if !v.Active {
		return &tokenauthorityv1.VerifyTokenResponse{Reason: tokenauthorityv1.InactiveReason(v.Reason)}, nil
	}
	claims, err := claimsToProto(v.Claims)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.VerifyTokenResponse{Active: true, Claims: claims}, nil
}

func (s *tokenService) RevokeToken(ctx context.Context, req *tokenauthorityv1.RevokeTokenRequest) (*tokenauthorityv1.RevokeTokenResponse, error) {
	t, err := s.tenantWithinOr(ctx, "revoke", revokeLimit, tenant.DefaultRevokeRateLimit)
	if err != nil {
		return nil, err
	}
	target := token.RevokeTarget{Token: req.GetToken(), JTI: req.GetJti(), SessionID: req.GetSessionId()}
	if err := s.tokens.Revoke(ctx, t, target); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.RevokeTokenResponse{}, nil
}

func (s *tokenService) RevokeSessions(ctx context.Context, req *tokenauthorityv1.RevokeSessionsRequest) (*tokenauthorityv1.RevokeSessionsResponse, error) {
	// A bucket of its own: the cut-off stays available to a key that spent its single revocations.
	t, err := s.tenantWithinOr(ctx, "revoke_sessions", revokeLimit, tenant.DefaultRevokeRateLimit)
	if err != nil {
		return nil, err
	}
	var cut time.Time
	switch sc := req.GetScope().(type) {
	case *tokenauthorityv1.RevokeSessionsRequest_Subject:
		cut, err = s.tokens.RevokeSubject(ctx, t, sc.Subject)
	case *tokenauthorityv1.RevokeSessionsRequest_AllInTenant:
		if !sc.AllInTenant {
			return nil, status.Error(codes.InvalidArgument, "all_in_tenant must be true when set")
		}
		cut, err = s.tokens.RevokeTenant(ctx, t)
	default:
		return nil, status.Error(codes.InvalidArgument, "one of subject or all_in_tenant is required")
	}
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.RevokeSessionsResponse{CutoffTime: timestamppb.New(cut)}, nil
}

func (s *tokenService) ListSessions(ctx context.Context, req *tokenauthorityv1.ListSessionsRequest) (*tokenauthorityv1.ListSessionsResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	sessions, next, err := s.tokens.ListSessions(ctx, t, req.GetSubject(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.ListSessionsResponse{NextPageToken: next}
	for _, ss := range sessions {
		out.Sessions = append(out.Sessions, &tokenauthorityv1.Session{
			SessionId:   ss.ID,
			Subject:     ss.Subject,
			CreateTime:  timestamppb.New(ss.CreatedAt),
			ExpireTime:  timestamppb.New(ss.ExpiresAt),
			RefreshTime: timestamppb.New(ss.RotatedAt),
			Generation:  ss.Generation,
			Metadata:    &tokenauthorityv1.SessionMetadata{UserAgent: ss.Metadata.UserAgent, Ip: ss.Metadata.IP, Device: ss.Metadata.Device},
			Audience:    ss.Audience,
			Scopes:      ss.Scopes,
		})
	}
	return out, nil
}

func (s *tokenService) ListPublicKeys(ctx context.Context, _ *tokenauthorityv1.ListPublicKeysRequest) (*tokenauthorityv1.ListPublicKeysResponse, error) {
	t, err := tenantOf(ctx)
	if err != nil {
		return nil, err
	}
	ks, err := s.keys.CurrentPublicKeys(ctx, t.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.ListPublicKeysResponse{Issuer: t.Issuer}
	for _, j := range keys.ToJWKS(ks).Keys {
		out.Keys = append(out.Keys, &tokenauthorityv1.JsonWebKey{
			Kty: j.Kty, Kid: j.Kid, Use: j.Use, Alg: j.Alg, Crv: j.Crv, X: j.X, Y: j.Y, N: j.N, E: j.E,
		})
	}
	return out, nil
}

func (s *tokenService) ExchangeToken(ctx context.Context, req *tokenauthorityv1.ExchangeTokenRequest) (*tokenauthorityv1.ExchangeTokenResponse, error) {
	t, err := s.tenantWithin(ctx, "exchange", func(t *tenant.Tenant) *tenant.RateLimit { return t.ExchangeLimit })
	if err != nil {
		return nil, err
	}
	if d := req.GetAccessTtl(); d != nil && !d.IsValid() {
		return nil, status.Error(codes.InvalidArgument, "access_ttl must be a valid duration")
	}
	c, _ := CallerFrom(ctx)
	ex, err := s.tokens.Exchange(ctx, token.ExchangeRequest{
		Tenant:       t,
		SubjectToken: req.GetSubjectToken(),
		Actor:        c.KeyName,
		ActorKeyID:   c.KeyID,
		Policy:       c.Exchange,
		Audience:     req.GetAudience(),
		Scopes:       req.GetScopes(),
		AccessTTL:    req.GetAccessTtl().AsDuration(),
	})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &tokenauthorityv1.ExchangeTokenResponse{
		AccessToken:     ex.AccessToken,
		AccessExpiresAt: timestamppb.New(ex.ExpiresAt),
		TokenType:       "Bearer",
	}, nil
}

// claimsToProto converts verified claims.
func claimsToProto(c *token.Claims) (*tokenauthorityv1.TokenClaims, error) {
	out := &tokenauthorityv1.TokenClaims{
		Issuer:     c.Issuer,
		Subject:    c.Subject,
		Audience:   c.Audience,
		ExpireTime: timestamppb.New(c.ExpiresAt),
		IssueTime:  timestamppb.New(c.IssuedAt),
		Jti:        c.JTI,
		SessionId:  c.SessionID,
		Scopes:     c.Scopes,

		CertificateThumbprint: c.CertThumbprint,
	}
	if !c.NotBefore.IsZero() {
		out.NotBeforeTime = timestamppb.New(c.NotBefore)
	}
	for _, a := range c.Actor {
		out.Actor = append(out.Actor, &tokenauthorityv1.Actor{Subject: a.Subject})
	}
	if c.Extra != nil {
		extra, err := structpb.NewStruct(c.Extra)
		if err != nil {
			return nil, fmt.Errorf("convert extra claims: %w", err)
		}
		out.Extra = extra
	}
	return out, nil
}
