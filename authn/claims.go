package authn

import (
	"context"
	"slices"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Claims are a verified access token's claims.
//
// A verifier may hand the same Claims to every call that presents the same token (the remote
// cache does), so treat them as read-only.
type Claims struct {
	// Issuer is the tenant's issuer (iss).
	Issuer string
	// Subject is who the token speaks for (sub).
	Subject string
	// Audience lists the services the token is meant for (aud).
	Audience []string
	// ExpiresAt, NotBefore and IssuedAt are exp, nbf and iat; NotBefore is zero when absent.
	ExpiresAt, NotBefore, IssuedAt time.Time
	// JTI identifies the token (jti), for revocation.
	JTI string
	// SessionID is the session the token belongs to (sid).
	SessionID string
	// Scopes is the space-separated scope claim, split.
	Scopes []string
	// CertificateThumbprint is the x5t#S256 of the client certificate the token is bound to
	// (cnf, RFC 8705); empty when it is not bound. The verifiers accept a bound token only from
	// a connection that presented that certificate.
	CertificateThumbprint string
	// Extra holds the claims given at issue beyond the registered ones; nil when there are none.
	Extra map[string]any
	// Actor is the delegation chain of a token obtained by token exchange (its nested `act`
	// claims, RFC 8693), outermost first: Actor[0] is the service that exchanged it last, the one
	// presenting it now on Subject's behalf. Empty for a token that was not exchanged.
	Actor []Actor
}

// Actor is one link of a delegation chain: a service that exchanged a token on the subject's
// behalf. Its Subject names the service: the name of the API key it exchanged with. It is the
// access-token codec's type, so that a decoded chain is used as it is.
type Actor = accesstoken.Actor

// Delegated reports whether the token was obtained by token exchange, on behalf of Subject.
func (c *Claims) Delegated() bool { return len(c.Actor) > 0 }

// ActingParty returns the service presenting a delegated token (the outermost actor), and false
// for a token that was not exchanged.
func (c *Claims) ActingParty() (string, bool) {
	if len(c.Actor) == 0 {
		return "", false
	}
	return c.Actor[0].Subject, true
}

// HasScope reports whether the token carries scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// HasAllScopes reports whether the token carries every one of scopes.
func (c *Claims) HasAllScopes(scopes ...string) bool {
	for _, s := range scopes {
		if !c.HasScope(s) {
			return false
		}
	}
	return true
}

// HasAudience reports whether the token is meant for audience.
func (c *Claims) HasAudience(audience string) bool { return slices.Contains(c.Audience, audience) }

type claimsKey struct{}

// ContextWithClaims returns a copy of ctx carrying c. The AuthFunc calls it; tests of handlers
// can call it to stand in for the interceptor.
func ContextWithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFromContext returns the claims the AuthFunc placed in ctx, and false when there are none
// (no interceptor ran, or the method is public).
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}
