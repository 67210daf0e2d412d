package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// refreshHeader returns the encoded header of the refresh tokens that key kid signs: refresh
// tokens are the authority's own format, so a header of any other form is not one.
func refreshHeader(kid string) string {
	return b64.EncodeToString([]byte(`{"alg":"HS256","kid":"` + kid + `","typ":"` + TypeRefresh + `"}`))
}

// refreshKID returns the kid of a refresh token's header, if the header is exactly one the
// authority writes.
func refreshKID(encoded string) (string, bool) {
	raw, err := b64.DecodeString(encoded)
	if err != nil || len(raw) > 128 {
		return "", false
	}
	var h header
	if err := json.Unmarshal(raw, &h); err != nil || !keys.ValidRefreshKID(h.Kid) || refreshHeader(h.Kid) != encoded {
		return "", false
	}
	return h.Kid, true
}

// parseRefresh verifies a refresh token of tenant t with the refresh-token key its header names,
// and returns its claims. The header must be exactly one the authority writes, and the signature
// is checked before the payload is decoded. Every failure of the token itself is
// ErrInvalidRefreshToken, without saying which check failed; a token whose key the tenant no
// longer holds (dropped by an emergency rotation, or retired longer ago than the refresh
// retention) is audited first. A failure of the key store is returned as is.
func (s *Service) parseRefresh(ctx context.Context, t *tenant.Tenant, raw string) (*refreshClaims, error) {
	dot := strings.LastIndexByte(raw, '.')
	first := strings.IndexByte(raw, '.')
	if dot < 0 || !compactShape(raw) {
		return nil, ErrInvalidRefreshToken
	}
	kid, ok := refreshKID(raw[:first])
	if !ok {
		return nil, ErrInvalidRefreshToken
	}
	key, err := s.cfg.Keys.RefreshVerificationKey(ctx, t.ID, kid)
	if errors.Is(err, keys.ErrUnknownKey) {
		s.audit.Emit(ctx, audit.Event{Kind: audit.RefreshKeyUnknown, Tenant: t.ID, Kid: kid})
		return nil, ErrInvalidRefreshToken
	}
	if err != nil {
		return nil, err
	}
	sig, err := b64.DecodeString(raw[dot+1:])
	if err != nil {
		return nil, ErrInvalidRefreshToken
	}
	mac := hmac.New(sha256.New, key.Secret)
	mac.Write([]byte(raw[:dot]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, ErrInvalidRefreshToken
	}
	payload, err := b64.DecodeString(raw[first+1 : dot])
	if err != nil {
		return nil, ErrInvalidRefreshToken
	}
	var c refreshClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, ErrInvalidRefreshToken
	}
	if c.Issuer != t.Issuer || c.ExpiresAt == 0 || !store.ValidSessionID(c.SessionID) {
		return nil, ErrInvalidRefreshToken
	}
	if !s.now().Before(time.Unix(c.ExpiresAt, 0)) {
		return nil, fmt.Errorf("%w: expired", ErrInvalidRefreshToken)
	}
	return &c, nil
}

// Refresh consumes a refresh token of tenant t and returns the session's next pair. It is
// RefreshFrom over a connection without a client certificate.
func (s *Service) Refresh(ctx context.Context, t *tenant.Tenant, raw string) (*Pair, error) {
	return s.RefreshFrom(ctx, t, raw, "")
}

// RefreshFrom consumes a refresh token of tenant t, presented over a connection whose client
// certificate has the x5t#S256 thumbprint presented ("" for none), and returns the session's next
// pair. A token of a session bound to another certificate is refused with ErrCertificateMismatch
// before the store is asked: the token stays current, and nothing counts as reuse.
func (s *Service) RefreshFrom(ctx context.Context, t *tenant.Tenant, raw, presented string) (*Pair, error) {
	if err := checkTokenField("refresh_token", raw); err != nil {
		return nil, err
	}
	c, err := s.parseRefresh(ctx, t, raw)
	if errors.Is(err, ErrInvalidRefreshToken) {
		s.obs.Refreshed(store.RotateInvalid)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if !accesstoken.ThumbprintMatches(c.CertThumbprint, presented) {
		s.audit.Emit(ctx, audit.Event{Kind: audit.RefreshCertificateMismatch, Tenant: t.ID, SessionID: c.SessionID})
		return nil, ErrCertificateMismatch
	}
	// The next token is signed by the current key, whichever key signed this one.
	key, signer, err := s.signingKeys(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	now := time.UnixMilli(s.now().UnixMilli())
	// The next token is fully determined by the session and the rotation time: make it now so that
	// the store can record its hash in the same atomic step.
	next := &store.Session{ID: c.SessionID, Subject: c.Subject, ExpiresAt: time.Unix(c.ExpiresAt, 0), Generation: c.Generation + 1, RotatedAt: now,
		CertThumbprint: c.CertThumbprint}
	nextRT, err := refreshToken(key, t.Issuer, next)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Store.RotateRefresh(ctx, store.RotateRequest{
		Tenant:     t.ID,
		SessionID:  c.SessionID,
		Generation: c.Generation,
		Hash:       hashToken(raw),
		NewHash:    hashToken(nextRT),
		Now:        now,
		Grace:      s.cfg.RefreshGrace,
	})
	if err != nil {
		return nil, fmt.Errorf("rotate refresh token: %w", err)
	}
	s.obs.Refreshed(res.Outcome)
	sess := res.Session
	switch res.Outcome {
	case store.Rotated:
	case store.RotateRetry:
		// A retry of the winning refresh: give back the very token it returned, signed by the key
		// that was current then, which a rotation since may have retired.
		if nextRT, err = s.rebuildRefresh(ctx, t, sess); err != nil {
			return nil, err
		}
	case store.RotateReuse:
		s.obs.Revoked(revocation.KindSession)
		s.audit.Emit(ctx, audit.Event{Kind: audit.RefreshReuse, Tenant: t.ID, Subject: sess.Subject, SessionID: sess.ID})
		// A retry would find no session, and so no reuse to announce: report a failed
		// announcement in the log rather than to a caller who cannot repair it.
		if err := s.announce(ctx, t, revocation.Event{Kind: revocation.KindSession, Value: sess.ID,
			ExpiresAt: s.accessHorizon(t, now)}); err != nil {
			s.audit.Emit(ctx, audit.Event{Kind: audit.AnnounceFailed, Tenant: t.ID, SessionID: sess.ID, Reason: err.Error()})
		}
		return nil, ErrRefreshReuse
	default:
		return nil, ErrInvalidRefreshToken
	}
	at, atExp, err := s.accessToken(signer, t, sess, nextRT)
	if err != nil {
		return nil, err
	}
	if res.Outcome == store.Rotated {
		s.audit.Emit(ctx, audit.Event{Kind: audit.TokenRefreshed, Tenant: t.ID, Subject: sess.Subject, SessionID: sess.ID})
	}
	return &Pair{AccessToken: at, RefreshToken: nextRT, AccessExpiresAt: atExp, RefreshExpiresAt: sess.ExpiresAt, SessionID: sess.ID}, nil
}

// rebuildRefresh returns the refresh token of sess's current generation that the store recorded:
// the one, of those the tenant's refresh-token keys sign, whose hash is sess.RefreshHash.
func (s *Service) rebuildRefresh(ctx context.Context, t *tenant.Tenant, sess *store.Session) (string, error) {
	rks, err := s.cfg.Keys.RefreshKeys(ctx, t.ID)
	if err != nil {
		return "", err
	}
	for i := len(rks) - 1; i >= 0; i-- {
		rt, err := refreshToken(rks[i], t.Issuer, sess)
		if err != nil {
			return "", err
		}
		if hmac.Equal(hashToken(rt), sess.RefreshHash) {
			return rt, nil
		}
	}
	// The key that signed it was dropped by an emergency rotation since.
	return "", ErrInvalidRefreshToken
}

// checkTokenField refuses an empty or oversized token field.
func checkTokenField(field, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s is required", ErrInvalidArgument, field)
	}
	if len(v) > MaxTokenSize {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidArgument, field, MaxTokenSize)
	}
	return nil
}
