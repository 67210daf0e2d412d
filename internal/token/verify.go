package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// Reason says why a token is inactive. The values mirror tokenauthority.v1.InactiveReason.
type Reason int

// The reasons, in the order the checks run.
const (
	ReasonNone Reason = iota
	ReasonMalformed
	ReasonUnsupportedAlgorithm
	ReasonUnknownKey
	ReasonBadSignature
	ReasonWrongType
	ReasonExpired
	ReasonNotYetValid
	ReasonWrongIssuer
	ReasonWrongAudience
	ReasonSessionEnded
	ReasonRevoked
	ReasonCutOff
	ReasonInsufficientScope
	// ReasonCertificateMismatch: the token is bound to a client certificate other than the one
	// presented, or the tenant requires bound tokens and it is not bound. It is checked after the
	// audience, before the store.
	ReasonCertificateMismatch
)

var reasonNames = [...]string{
	"none", "malformed", "unsupported_algorithm", "unknown_key", "bad_signature", "wrong_type",
	"expired", "not_yet_valid", "wrong_issuer", "wrong_audience", "session_ended", "revoked",
	"cut_off", "insufficient_scope", "certificate_mismatch",
}

// Reasons returns every reason a token can be inactive for (ReasonNone excluded), in the order
// of their values.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasonNames)-1)
	for r := ReasonMalformed; int(r) < len(reasonNames); r++ {
		out = append(out, r)
	}
	return out
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// VerifyRequest asks whether an access token of tenant t is active.
type VerifyRequest struct {
	Tenant         *tenant.Tenant
	Token          string
	Audience       string
	RequiredScopes []string
	// CertThumbprint is the x5t#S256 thumbprint of the client certificate on the connection that
	// presented the token to the resource server; empty when there was none.
	CertThumbprint string
}

// Verification is the introspection answer.
type Verification struct {
	Active bool
	Reason Reason
	// Claims are the token's claims, when active. They are shared: callers must not modify them.
	Claims *Claims
}

// Claims are an access token's claims, as every verifier decodes them.
type Claims = accesstoken.Decoded

func inactive(r Reason) *Verification { return &Verification{Reason: r} }

// inactiveError carries a reason out of the golang-jwt key function.
type inactiveError Reason

func (e inactiveError) Error() string { return Reason(e).String() }

// accessParser decodes base64url strictly, so that a token has one spelling only.
var accessParser = jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())

// compactShape reports whether tok is three dot-separated segments of base64url characters.
// Anything else (white space included, which base64 decoders skip) is malformed.
func compactShape(tok string) bool {
	dots := 0
	for i := 0; i < len(tok); i++ {
		switch c := tok[i]; {
		case c == '.':
			dots++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// Verify runs the checks in their documented order and answers with the first that fails. It
// returns an error only when the call itself fails: an empty or oversized token, or a store that
// cannot answer (never an active answer then).
func (s *Service) Verify(ctx context.Context, req VerifyRequest) (*Verification, error) {
	v, err := s.verify(ctx, req)
	if err == nil {
		s.obs.Verified(v.Reason)
	}
	return v, err
}

// verify is Verify without reporting the answer to the Observer.
func (s *Service) verify(ctx context.Context, req VerifyRequest) (*Verification, error) {
	if err := checkTokenField("token", req.Token); err != nil {
		return nil, err
	}
	if req.CertThumbprint != "" && !accesstoken.ValidThumbprint(req.CertThumbprint) {
		return nil, fmt.Errorf("%w: certificate_thumbprint must be %s", ErrInvalidArgument, accesstoken.ThumbprintRule)
	}
	if !compactShape(req.Token) {
		return inactive(ReasonMalformed), nil
	}
	t := req.Tenant
	now := s.now()
	v := s.cache.get(t.ID, req.Token, now)
	if v != nil {
		// The key may have been withdrawn since the token was cached: the answer is then the one a
		// first sight would give, without parsing the token again.
		if _, err := s.cfg.Keys.VerificationKey(ctx, t.ID, v.kid); err != nil {
			if !errors.Is(err, keys.ErrUnknownKey) {
				return nil, err
			}
			s.cache.drop(t.ID, req.Token)
			return inactive(ReasonUnknownKey), nil
		}
	}
	if v == nil {
		var r Reason
		var err error
		if v, r, err = s.verifySignature(ctx, t, req.Token); err != nil || r != ReasonNone {
			if err != nil {
				return nil, err
			}
			return inactive(r), nil
		}
		s.cache.put(t.ID, req.Token, v, now)
	}
	claims := v.claims
	if r := s.checkClaims(t, claims, req.Audience, now); r != ReasonNone {
		return inactive(r), nil
	}
	if !accesstoken.ThumbprintMatches(claims.CertThumbprint, req.CertThumbprint) || t.RequireCertificateBinding && claims.CertThumbprint == "" {
		return inactive(ReasonCertificateMismatch), nil
	}
	st, err := s.cfg.Store.CheckAccess(ctx, t.ID, claims.SessionID, claims.JTI)
	if err != nil {
		return nil, fmt.Errorf("check session: %w", err)
	}
	switch {
	case !st.SessionFound:
		return inactive(ReasonSessionEnded), nil
	case st.TokenRevoked:
		return inactive(ReasonRevoked), nil
	case store.EndedBy(st.SessionCreatedAt, st.SubjectCutoff), store.EndedBy(st.SessionCreatedAt, st.TenantCutoff):
		return inactive(ReasonCutOff), nil
	}
	for _, want := range req.RequiredScopes {
		if !slices.Contains(claims.Scopes, want) {
			return inactive(ReasonInsufficientScope), nil
		}
	}
	return &Verification{Active: true, Claims: claims}, nil
}

// verifySignature runs the checks whose answer never changes for a given token string: shape,
// algorithm, kid, signature and typ. It returns the parsed token, or the reason it failed.
func (s *Service) verifySignature(ctx context.Context, t *tenant.Tenant, raw string) (*verified, Reason, error) {
	var keyErr error
	claims := jwt.MapClaims{}
	tok, err := accessParser.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		// The authority writes no critical extensions, and one it does not know must be refused
		// (RFC 7515, section 4.1.11).
		if _, ok := tok.Header["crit"]; ok {
			return nil, inactiveError(ReasonMalformed)
		}
		alg, _ := tok.Header["alg"].(string)
		if _, ok := accesstoken.ParseAlgorithm(alg); !ok {
			return nil, inactiveError(ReasonUnsupportedAlgorithm)
		}
		kid, _ := tok.Header["kid"].(string)
		if !accesstoken.ValidKeyID(kid) {
			return nil, inactiveError(ReasonUnknownKey)
		}
		k, err := s.cfg.Keys.VerificationKey(ctx, t.ID, kid)
		if errors.Is(err, keys.ErrUnknownKey) {
			return nil, inactiveError(ReasonUnknownKey)
		}
		if err != nil {
			keyErr = err
			return nil, err
		}
		if string(k.Algorithm) != alg {
			// A token whose alg differs from its key's (HS256 over a public key, say) is refused
			// before any signature is computed.
			return nil, inactiveError(ReasonUnsupportedAlgorithm)
		}
		return k.VerifyKey, nil
	})
	if keyErr != nil {
		return nil, ReasonNone, fmt.Errorf("load signing keys: %w", keyErr)
	}
	if err != nil {
		return nil, parseReason(err), nil
	}
	if !tok.Valid {
		return nil, ReasonBadSignature, nil
	}
	if typ, _ := tok.Header["typ"].(string); typ != TypeAccess {
		return nil, ReasonWrongType, nil
	}
	c, ok := accesstoken.DecodeMap(claims)
	if !ok {
		return nil, ReasonMalformed, nil
	}
	// A jti names its session: one that does not is not ours.
	if owner, ok := store.SessionOfJTI(c.JTI); !ok || owner != c.SessionID {
		return nil, ReasonMalformed, nil
	}
	kid, _ := tok.Header["kid"].(string)
	return &verified{kid: kid, claims: c, exp: c.ExpiresAt.Add(s.cfg.Leeway)}, ReasonNone, nil
}

// parseReason maps a golang-jwt parse error to a reason.
func parseReason(err error) Reason {
	var ie inactiveError
	switch {
	case errors.As(err, &ie):
		return Reason(ie)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ReasonBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// golang-jwt knows no such signing method.
		return ReasonUnsupportedAlgorithm
	}
	return ReasonMalformed
}

// checkClaims checks the time claims, the issuer and the audience, in that order.
func (s *Service) checkClaims(t *tenant.Tenant, c *Claims, audience string, now time.Time) Reason {
	switch accesstoken.CheckTimes(c.ExpiresAt, c.NotBefore, c.IssuedAt, now, s.cfg.Leeway) {
	case accesstoken.Expired:
		return ReasonExpired
	case accesstoken.NotYetValid:
		return ReasonNotYetValid
	}
	if c.Issuer != t.Issuer {
		return ReasonWrongIssuer
	}
	if audience != "" && !slices.Contains(c.Audience, audience) {
		return ReasonWrongAudience
	}
	return ReasonNone
}
