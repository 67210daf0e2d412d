package token

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// Limits on what a caller may put into a session.
const (
	maxSubjectLen   = 256
	maxAudiences    = 16
	maxScopes       = 64
	maxItemLen      = 256
	maxExtraJSONLen = 4 << 10
	maxMetadataLen  = 512
)

// IssueRequest asks for a new session.
type IssueRequest struct {
	Tenant   *tenant.Tenant
	Subject  string
	Audience []string
	Scopes   []string
	// Extra holds extra access-token claims (JSON values); nil for none.
	Extra map[string]any
	// AccessTTL and RefreshTTL are the requested lifetimes; zero means the default.
	AccessTTL, RefreshTTL time.Duration
	Metadata              store.Metadata
	// CertThumbprint binds the session's tokens to the client certificate of this x5t#S256
	// thumbprint (RFC 8705); empty for unbound tokens.
	CertThumbprint string
}

// Pair is a session's access and refresh tokens.
type Pair struct {
	AccessToken      string
	RefreshToken     string
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
	SessionID        string
}

// Issue opens a session and returns its first pair.
func (s *Service) Issue(ctx context.Context, req IssueRequest) (*Pair, error) {
	t := req.Tenant
	if err := s.validateIssue(req); err != nil {
		return nil, err
	}
	accessTTL, err := pickTTL("access_ttl", req.AccessTTL, s.cfg.AccessTTL, bound(t.MaxAccessTTL, s.cfg.MaxAccessTTL))
	if err != nil {
		return nil, err
	}
	refreshTTL, err := pickTTL("refresh_ttl", req.RefreshTTL, s.cfg.RefreshTTL, bound(t.MaxRefreshTTL, s.cfg.MaxRefreshTTL))
	if err != nil {
		return nil, err
	}
	var extra []byte
	if len(req.Extra) > 0 {
		extra, err = json.Marshal(req.Extra)
		if err != nil {
			return nil, fmt.Errorf("%w: extra_claims: %w", ErrInvalidArgument, err)
		}
		if len(extra) > maxExtraJSONLen {
			return nil, fmt.Errorf("%w: extra_claims: at most %d bytes of JSON", ErrInvalidArgument, maxExtraJSONLen)
		}
	}
	refreshKey, signer, err := s.signingKeys(ctx, t.ID)
	if err != nil {
		return nil, err
	}

	now := time.UnixMilli(s.now().UnixMilli())
	sess := &store.Session{
		ID:        store.NewSessionID(t.ID, req.Subject),
		Tenant:    t.ID,
		Subject:   req.Subject,
		Audience:  req.Audience,
		Scopes:    req.Scopes,
		Extra:     extra,
		Metadata:  req.Metadata,
		CreatedAt: now,
		ExpiresAt: now.Add(refreshTTL),
		AccessTTL: accessTTL,
		RotatedAt: now,

		CertThumbprint: req.CertThumbprint,
	}
	rt, err := refreshToken(refreshKey, t.Issuer, sess)
	if err != nil {
		return nil, err
	}
	sess.RefreshHash = hashToken(rt)
	at, atExp, err := s.accessToken(signer, t, sess, rt)
	if err != nil {
		return nil, err
	}
	if len(at) > MaxTokenSize {
		// Every check of this token (VerifyToken, RevokeToken, authn) would refuse it.
		return nil, fmt.Errorf("%w: the access token would be %d bytes, above the %d-byte limit of VerifyToken: request fewer or shorter audiences, scopes or extra claims",
			ErrInvalidArgument, len(at), MaxTokenSize)
	}
	if err := s.cfg.Store.CreateSession(ctx, sess); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	s.obs.Issued()
	s.audit.Emit(ctx, audit.Event{Kind: audit.TokenIssued, Tenant: t.ID, Subject: sess.Subject, SessionID: sess.ID})
	return &Pair{AccessToken: at, RefreshToken: rt, AccessExpiresAt: atExp, RefreshExpiresAt: sess.ExpiresAt, SessionID: sess.ID}, nil
}

// signingKeys returns the tenant's current refresh-token key and its current access-token
// signing key.
func (s *Service) signingKeys(ctx context.Context, tenantID string) (*keys.RefreshKey, *keys.Key, error) {
	rks, err := s.cfg.Keys.RefreshKeys(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	if len(rks) == 0 {
		return nil, nil, fmt.Errorf("tenant %q: %w", tenantID, keys.ErrNoKeys)
	}
	refreshKey := rks[len(rks)-1]
	signer, err := s.cfg.Keys.SigningKey(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	return refreshKey, signer, nil
}

// accessToken signs the access token of sess's current generation, whose refresh token is rt. The
// token is a function of the generation: issued at its rotation time, with a jti derived from its
// refresh token, so a retried refresh within the grace window gets the same token back (the same
// bytes, with a deterministic signature: EdDSA, RS256, HS256; the same claims and jti with ES256) and
// a grace window mints one access token however often it is retried.
func (s *Service) accessToken(k *keys.Key, t *tenant.Tenant, sess *store.Session, rt string) (string, time.Time, error) {
	iat := sess.RotatedAt
	exp := iat.Add(sess.AccessTTL)
	if exp.After(sess.ExpiresAt) {
		exp = sess.ExpiresAt
	}
	c := &accesstoken.Claims{
		Issuer:     t.Issuer,
		Subject:    sess.Subject,
		Audience:   sess.Audience,
		ExpiresAt:  exp.Unix(),
		NotBefore:  iat.Unix(),
		IssuedAt:   iat.Unix(),
		IssuedAtMS: iat.UnixMilli(),
		JTI:        generationJTI(sess.ID, rt),
		SessionID:  sess.ID,
		Scope:      accesstoken.JoinScope(sess.Scopes),
	}
	if sess.CertThumbprint != "" {
		c.Confirmation = &accesstoken.Confirmation{X5tS256: sess.CertThumbprint}
	}
	payload, err := accesstoken.Encode(c, sess.Extra)
	if err != nil {
		return "", time.Time{}, err
	}
	tok, err := signJWT(k.Method, k.SignKey, k.ID, TypeAccess, payload)
	return tok, time.Unix(exp.Unix(), 0).UTC(), err
}

func (s *Service) validateIssue(req IssueRequest) error {
	var problems []string
	switch {
	case req.Subject == "":
		problems = append(problems, "subject is required")
	case len(req.Subject) > maxSubjectLen || !utf8.ValidString(req.Subject):
		problems = append(problems, fmt.Sprintf("subject must be valid UTF-8 of at most %d bytes", maxSubjectLen))
	}
	if len(req.Audience) > maxAudiences {
		problems = append(problems, fmt.Sprintf("at most %d audiences", maxAudiences))
	}
	for _, a := range req.Audience {
		if a == "" || len(a) > maxItemLen || !utf8.ValidString(a) {
			problems = append(problems, fmt.Sprintf("each audience must be 1-%d bytes of UTF-8", maxItemLen))
			break
		}
		if !tenant.Allows(req.Tenant.AllowedAudiences, a) {
			problems = append(problems, fmt.Sprintf("audience %q is not allowed for this tenant", a))
		}
	}
	if len(req.Scopes) > maxScopes {
		problems = append(problems, fmt.Sprintf("at most %d scopes", maxScopes))
	}
	for _, sc := range req.Scopes {
		if len(sc) > maxItemLen || !accesstoken.ValidScope(sc) {
			problems = append(problems, fmt.Sprintf("each scope must be 1-%d bytes of %s", maxItemLen, accesstoken.ScopeRule))
			break
		}
		if !tenant.Allows(req.Tenant.AllowedScopes, sc) {
			problems = append(problems, fmt.Sprintf("scope %q is not allowed for this tenant", sc))
		}
	}
	for name := range req.Extra {
		if accesstoken.IsReservedName(name) {
			problems = append(problems, fmt.Sprintf("extra_claims cannot set %q: it is, or matches under case folding, a registered claim", name))
		}
	}
	switch {
	case req.CertThumbprint != "" && !accesstoken.ValidThumbprint(req.CertThumbprint):
		problems = append(problems, "certificate_thumbprint must be "+accesstoken.ThumbprintRule)
	case req.CertThumbprint == "" && req.Tenant.RequireCertificateBinding:
		problems = append(problems, "this tenant requires certificate-bound tokens: set bind_client_certificate or certificate_thumbprint")
	}
	m := req.Metadata
	if len(m.UserAgent) > maxMetadataLen || len(m.IP) > maxMetadataLen || len(m.Device) > maxMetadataLen {
		problems = append(problems, fmt.Sprintf("metadata fields are at most %d bytes", maxMetadataLen))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidArgument, strings.Join(problems, "; "))
	}
	return nil
}

func bound(tenantBound, serverBound time.Duration) time.Duration {
	if tenantBound > 0 && tenantBound < serverBound {
		return tenantBound
	}
	return serverBound
}

// pickTTL returns the requested TTL, or the default (capped by the bound) when none was asked.
// A request above the bound is refused, not silently cut.
func pickTTL(field string, requested, def, limit time.Duration) (time.Duration, error) {
	switch {
	case requested < 0:
		return 0, fmt.Errorf("%w: %s must be positive", ErrInvalidArgument, field)
	case requested > limit:
		return 0, fmt.Errorf("%w: %s %s exceeds the bound of %s", ErrInvalidArgument, field, requested, limit)
	case requested > 0:
		return requested, nil
	case def > limit:
		return limit, nil
	}
	return def, nil
}
