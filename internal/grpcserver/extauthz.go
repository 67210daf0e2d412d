package grpcserver

import (
	"context"
	"errors"
	"fmt"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// strictVerifier verifies for the ext_authz service on the authority: with the token service
// itself, for the tenant of the caller's API key, so that every answer reflects the store at that
// moment, exactly as VerifyToken's. The route's audience and scopes are checked by extauthz.
type strictVerifier struct {
	tokens Tokens
}

var _ authn.Verifier = strictVerifier{}

// reasonErrors maps an inactive token's reason to the authn error the ext_authz answer is built
// from.
var reasonErrors = map[token.Reason]error{
	token.ReasonMalformed:            authn.ErrMalformed,
	token.ReasonUnsupportedAlgorithm: authn.ErrUnsupportedAlgorithm,
	token.ReasonUnknownKey:           authn.ErrUnknownKey,
	token.ReasonBadSignature:         authn.ErrBadSignature,
	token.ReasonWrongType:            authn.ErrWrongType,
	token.ReasonExpired:              authn.ErrExpired,
	token.ReasonNotYetValid:          authn.ErrNotYetValid,
	token.ReasonWrongIssuer:          authn.ErrWrongIssuer,
	token.ReasonWrongAudience:        authn.ErrWrongAudience,
	token.ReasonSessionEnded:         authn.ErrRevoked,
	token.ReasonRevoked:              authn.ErrRevoked,
	token.ReasonCutOff:               authn.ErrCutOff,
	token.ReasonInsufficientScope:    authn.ErrInsufficientScope,
	token.ReasonCertificateMismatch:  authn.ErrCertificateMismatch,
}

func (v strictVerifier) Verify(ctx context.Context, tok string) (*authn.Claims, error) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Tenant == nil {
		// The policy table lets only tenant keys with role verify through; fail closed anyway.
		return nil, fmt.Errorf("%w: no tenant API key", authn.ErrUnavailable)
	}
	res, err := v.tokens.Verify(ctx, token.VerifyRequest{Tenant: c.Tenant, Token: tok, CertThumbprint: authn.PresentedFromContext(ctx)})
	switch {
	case errors.Is(err, token.ErrInvalidArgument):
		return nil, authn.ErrMalformed
	case err != nil:
		// The store could not answer: never an allow.
		return nil, fmt.Errorf("%w: %w", authn.ErrUnavailable, err)
	case !res.Active:
		if e, ok := reasonErrors[res.Reason]; ok {
			return nil, e
		}
		return nil, authn.ErrInvalidToken
	}
	tc := res.Claims
	return &authn.Claims{
		Issuer: tc.Issuer, Subject: tc.Subject, Audience: tc.Audience,
		ExpiresAt: tc.ExpiresAt, NotBefore: tc.NotBefore, IssuedAt: tc.IssuedAt,
		JTI: tc.JTI, SessionID: tc.SessionID, Scopes: tc.Scopes, Extra: tc.Extra,
		CertificateThumbprint: tc.CertThumbprint, Actor: tc.Actor,
	}, nil
}
