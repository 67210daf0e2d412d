package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// refreshHeader is the header of every refresh token, encoded: refresh tokens are the authority's
// own format, so anything else is not one.
var refreshHeader = b64.EncodeToString([]byte(`{"alg":"HS256","kid":"` + refreshKID + `","typ":"` + TypeRefresh + `"}`))

// parseRefresh verifies a refresh token of tenant t, whose refresh key is key, and returns its
// claims. The header must be exactly the one the authority writes, and the signature is checked
// before the payload is decoded. Every failure is ErrInvalidRefreshToken, without saying which
// check failed.
func (s *Service) parseRefresh(t *tenant.Tenant, key []byte, raw string) (*refreshClaims, error) {
	dot := strings.LastIndexByte(raw, '.')
	if dot < 0 || !compactShape(raw) || !strings.HasPrefix(raw, refreshHeader+".") {
		return nil, ErrInvalidRefreshToken
	}
	sig, err := b64.DecodeString(raw[dot+1:])
	if err != nil {
		return nil, ErrInvalidRefreshToken
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(raw[:dot]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, ErrInvalidRefreshToken
	}
	payload, err := b64.DecodeString(raw[len(refreshHeader)+1 : dot])
	if err != nil {
		return nil, ErrInvalidRefreshToken
	}
	var c refreshClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, ErrInvalidRefreshToken
	}
	if c.Issuer != t.Issuer || c.ExpiresAt == 0 || !ValidSessionID(c.SessionID) {
		return nil, ErrInvalidRefreshToken
	}
	if !s.now().Before(time.Unix(c.ExpiresAt, 0)) {
		return nil, fmt.Errorf("%w: expired", ErrInvalidRefreshToken)
	}
	return &c, nil
}

// Refresh consumes a refresh token of tenant t and returns the session's next pair.
func (s *Service) Refresh(ctx context.Context, t *tenant.Tenant, raw string) (*Pair, error) {
	if err := checkTokenField("refresh_token", raw); err != nil {
		return nil, err
	}
	key, signer, err := s.signingKeys(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	c, err := s.parseRefresh(t, key, raw)
	if err != nil {
		s.obs.Refreshed(RotateInvalid)
		return nil, err
	}
	now := time.UnixMilli(s.now().UnixMilli())
	// The next token is fully determined by the session and the rotation time: make it now so that
	// the store can record its hash in the same atomic step.
	next := &Session{ID: c.SessionID, Subject: c.Subject, ExpiresAt: time.Unix(c.ExpiresAt, 0), Generation: c.Generation + 1, RotatedAt: now}
	nextRT, err := refreshToken(key, t.Issuer, next)
	if err != nil {
		return nil, err
	}
	res, err := s.cfg.Store.RotateRefresh(ctx, RotateRequest{
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
	case Rotated:
	case RotateRetry:
		// A retry of the winning refresh: give back the very token it returned.
		nextRT, err = refreshToken(key, t.Issuer, sess)
		if err != nil {
			return nil, err
		}
	case RotateReuse:
		s.obs.Revoked(revocation.KindSession)
		s.audit.LogAttrs(ctx, slog.LevelWarn, "refresh token reuse detected; session revoked",
			auditAttrs("refresh_reuse", t.ID, sess)...)
		// A retry would find no session, and so no reuse to announce: report a failed
		// announcement in the log rather than to a caller who cannot repair it.
		if err := s.announce(ctx, t, revocation.Event{Kind: revocation.KindSession, Value: sess.ID,
			ExpiresAt: s.accessHorizon(t, now)}); err != nil {
			s.audit.LogAttrs(ctx, slog.LevelError, "the revoked session could not be announced to watchers",
				slog.String("audit", "announce_failed"), slog.String("tenant", t.ID),
				slog.String("session_id", sess.ID), slog.String("error", err.Error()))
		}
		return nil, ErrRefreshReuse
	default:
		return nil, ErrInvalidRefreshToken
	}
	at, atExp, err := s.accessToken(signer, t, sess, nextRT)
	if err != nil {
		return nil, err
	}
	if res.Outcome == Rotated {
		s.audit.LogAttrs(ctx, auditLevel, "token refreshed", auditAttrs("refreshed", t.ID, sess)...)
	}
	return &Pair{AccessToken: at, RefreshToken: nextRT, AccessExpiresAt: atExp, RefreshExpiresAt: sess.ExpiresAt, SessionID: sess.ID}, nil
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
