package token

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

var refreshParser = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation())

// parseRefresh verifies a refresh token of tenant t and returns its claims. Every failure is
// ErrInvalidRefreshToken, without saying which check failed.
func (s *Service) parseRefresh(ctx context.Context, t *tenant.Tenant, raw string) (*refreshClaims, error) {
	key, err := s.cfg.Keys.RefreshKey(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	var c refreshClaims
	tok, err := refreshParser.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		if tok.Header["typ"] != TypeRefresh || tok.Header["kid"] != refreshKID {
			return nil, ErrInvalidRefreshToken
		}
		return key, nil
	})
	if err != nil || !tok.Valid {
		return nil, ErrInvalidRefreshToken
	}
	if c.Issuer != t.Issuer || c.ExpiresAt == nil || !ValidSessionID(c.SessionID) {
		return nil, ErrInvalidRefreshToken
	}
	if !s.now().Before(c.ExpiresAt.Time) {
		return nil, fmt.Errorf("%w: expired", ErrInvalidRefreshToken)
	}
	return &c, nil
}

// Refresh consumes a refresh token of tenant t and returns the session's next pair.
func (s *Service) Refresh(ctx context.Context, t *tenant.Tenant, raw string) (*Pair, error) {
	if err := checkTokenField("refresh_token", raw); err != nil {
		return nil, err
	}
	c, err := s.parseRefresh(ctx, t, raw)
	if err != nil {
		return nil, err
	}
	key, err := s.cfg.Keys.RefreshKey(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	signer, err := s.cfg.Keys.SigningKey(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	now := time.UnixMilli(s.now().UnixMilli())
	// The next token is fully determined by the session and the rotation time: make it now so that
	// the store can record its hash in the same atomic step.
	next := &Session{ID: c.SessionID, Subject: c.Subject, ExpiresAt: c.ExpiresAt.Time, Generation: c.Generation + 1, RotatedAt: now}
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
		s.audit.LogAttrs(ctx, slog.LevelWarn, "refresh token reuse detected; session revoked",
			auditAttrs("refresh_reuse", t.ID, sess)...)
		return nil, ErrRefreshReuse
	default:
		return nil, ErrInvalidRefreshToken
	}
	var extra map[string]any
	if len(sess.Extra) > 0 {
		if err := json.Unmarshal(sess.Extra, &extra); err != nil {
			return nil, fmt.Errorf("decode stored extra claims: %w", err)
		}
	}
	at, atExp, err := s.accessToken(signer, t, sess, extra, now)
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
