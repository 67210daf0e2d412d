package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// ErrInvalidSubjectToken reports a subject token that cannot be exchanged: not an active access
// token of the caller's tenant (malformed, a refresh token, forged, expired, revoked, of a session
// that ended, of another tenant).
var ErrInvalidSubjectToken = errors.New("subject_token is not an active access token of this tenant")

// ExchangeRequest asks for an access token for another service on the subject's behalf (RFC 8693
// token exchange).
type ExchangeRequest struct {
	Tenant *tenant.Tenant
	// SubjectToken is the access token to exchange.
	SubjectToken string
	// Actor names the caller in the new token's `act` claim: its API key's name.
	Actor string
	// ActorKeyID is the caller's API key id, for the audit log.
	ActorKeyID string
	// Policy is the caller's exchange policy; nil refuses every exchange.
	Policy *tenant.ExchangePolicy
	// Audience and Scopes are the new token's; AccessTTL its lifetime, zero for the default.
	Audience  []string
	Scopes    []string
	AccessTTL time.Duration
}

// Exchanged is the result of an exchange.
type Exchanged struct {
	AccessToken string
	ExpiresAt   time.Time
	// Claims are the new token's claims.
	Claims *Claims
}

// Exchange verifies the subject token as VerifyToken does and returns a narrower access token in
// its session: the same subject, session and extra claims, the requested audience and scopes
// (each scope one the subject token has), a lifetime that ends no later than the subject token's,
// its own jti, and an `act` claim naming req.Actor that nests the subject token's chain. Nothing is
// written to the store: the new token lives and dies with its session, its subject's and its
// tenant's cut-offs like any token of the session, and revoking it by jti touches it alone.
//
// Every refusal is audited with the actor and the reason, never the token.
func (s *Service) Exchange(ctx context.Context, req ExchangeRequest) (ex *Exchanged, err error) {
	t := req.Tenant
	// The new token's iat is taken before the subject token's session is read. Local verifiers
	// compare iat with a subject or tenant cut-off (they do not know when the session opened):
	// a cut-off the read below did not see is recorded after it, so it is at or after this iat
	// and covers the new token there too. An iat taken after the read could follow a cut-off
	// made in between, and the token would outlive the revocation in local mode.
	now := time.UnixMilli(s.now().UnixMilli())
	var subject *Claims
	defer func() {
		if err != nil && (errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrInvalidSubjectToken)) {
			e := audit.Event{Kind: audit.ExchangeRefused, Tenant: t.ID, Actor: req.Actor, KeyID: req.ActorKeyID, Reason: err.Error()}
			if subject != nil {
				e.Subject, e.SessionID = subject.Subject, subject.SessionID
			}
			s.audit.Emit(ctx, e)
		}
	}()
	if err := validateExchange(req); err != nil {
		return nil, err
	}
	ttl, err := pickTTL("access_ttl", req.AccessTTL, s.cfg.AccessTTL, bound(t.MaxAccessTTL, s.cfg.MaxAccessTTL))
	if err != nil {
		return nil, err
	}
	v, err := s.verify(ctx, VerifyRequest{Tenant: t, Token: req.SubjectToken})
	if err != nil {
		return nil, err
	}
	if !v.Active {
		return nil, fmt.Errorf("%w (%s)", ErrInvalidSubjectToken, v.Reason)
	}
	subject = v.Claims
	if !subject.ExpiresAt.After(now) {
		// Active within the leeway only: nothing of its lifetime is left to hand on.
		return nil, fmt.Errorf("%w (%s)", ErrInvalidSubjectToken, ReasonExpired)
	}
	if err := authorizeExchange(req, subject); err != nil {
		return nil, err
	}
	exp := now.Add(ttl)
	if exp.After(subject.ExpiresAt) {
		exp = subject.ExpiresAt
	}
	chain := append([]accesstoken.Actor{{Subject: req.Actor}}, subject.Actor...)
	c := &Claims{
		Issuer:    t.Issuer,
		Subject:   subject.Subject,
		Audience:  req.Audience,
		ExpiresAt: time.Unix(exp.Unix(), 0).UTC(),
		NotBefore: time.Unix(now.Unix(), 0).UTC(),
		IssuedAt:  time.Unix(now.Unix(), 0).UTC(),
		// What the token says (iat_ms), as a verifier decodes it.
		IssuedAtExact: time.UnixMilli(now.UnixMilli()).UTC(),
		JTI:           store.NewJTI(subject.SessionID),
		SessionID:     subject.SessionID,
		Scopes:        req.Scopes,
		Extra:         subject.Extra,
		Actor:         chain,
	}
	var extra []byte
	if len(subject.Extra) > 0 {
		if extra, err = json.Marshal(subject.Extra); err != nil {
			return nil, fmt.Errorf("encode extra claims: %w", err)
		}
	}
	signer, err := s.cfg.Keys.SigningKey(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	payload, err := accesstoken.Encode(&accesstoken.Claims{
		Issuer:     c.Issuer,
		Subject:    c.Subject,
		Audience:   c.Audience,
		ExpiresAt:  c.ExpiresAt.Unix(),
		NotBefore:  c.NotBefore.Unix(),
		IssuedAt:   c.IssuedAt.Unix(),
		IssuedAtMS: c.IssuedAtExact.UnixMilli(),
		JTI:        c.JTI,
		SessionID:  c.SessionID,
		Scope:      accesstoken.JoinScope(c.Scopes),
		Act:        accesstoken.ActorClaim(chain),
	}, extra)
	if err != nil {
		return nil, err
	}
	tok, err := signJWT(signer.Method, signer.SignKey, signer.ID, TypeAccess, payload)
	if err != nil {
		return nil, err
	}
	if len(tok) > MaxTokenSize {
		return nil, fmt.Errorf("%w: the access token would be %d bytes, above the %d-byte limit of VerifyToken: request fewer or shorter audiences or scopes",
			ErrInvalidArgument, len(tok), MaxTokenSize)
	}
	s.audit.Emit(ctx, audit.Event{Kind: audit.TokenExchanged, Tenant: t.ID, Subject: c.Subject, SessionID: c.SessionID, JTI: c.JTI,
		Actor: req.Actor, KeyID: req.ActorKeyID, ActorChain: actorNames(chain), Audience: c.Audience})
	return &Exchanged{AccessToken: tok, ExpiresAt: c.ExpiresAt, Claims: c}, nil
}

// validateExchange checks the request's shape, before anything is read: a request that can never
// succeed is InvalidArgument, a caller without a policy PermissionDenied.
func validateExchange(req ExchangeRequest) error {
	if req.Policy == nil || !accesstoken.ValidActor(req.Actor) {
		return fmt.Errorf("%w: this API key has no exchange policy (or no name to act under): create one with role exchange and an exchange_policy", ErrPermissionDenied)
	}
	if err := checkTokenField("subject_token", req.SubjectToken); err != nil {
		return err
	}
	var problems []string
	switch n := len(req.Audience); {
	case n == 0:
		problems = append(problems, "audience is required: name the service the new token is for")
	case n > maxAudiences:
		problems = append(problems, fmt.Sprintf("at most %d audiences", maxAudiences))
	}
	for _, a := range req.Audience {
		if a == "" || len(a) > maxItemLen || !utf8.ValidString(a) {
			problems = append(problems, fmt.Sprintf("each audience must be 1-%d bytes of UTF-8", maxItemLen))
			break
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
	}
	if hasDuplicates(req.Audience) || hasDuplicates(req.Scopes) {
		problems = append(problems, "audience and scopes must not repeat an entry")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidArgument, strings.Join(problems, "; "))
	}
	return nil
}

// authorizeExchange checks what the caller may do with this subject token: the token was meant
// for the caller, the targets are the caller's and the tenant's, scopes only narrow, and the
// chain stays within bounds.
func authorizeExchange(req ExchangeRequest, subject *Claims) error {
	p, t := req.Policy, req.Tenant
	if !slices.Contains(subject.Audience, p.AcceptAudience) {
		return fmt.Errorf("%w: the subject token's audience does not contain %q: a service exchanges only tokens meant for itself",
			ErrPermissionDenied, p.AcceptAudience)
	}
	for _, a := range req.Audience {
		if !slices.Contains(p.TargetAudiences, a) {
			return fmt.Errorf("%w: audience %q is not among this API key's exchange target audiences", ErrPermissionDenied, a)
		}
		if !tenant.Allows(t.AllowedAudiences, a) {
			return fmt.Errorf("%w: audience %q is not allowed for this tenant", ErrPermissionDenied, a)
		}
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(subject.Scopes, sc) {
			return fmt.Errorf("%w: scope %q is not one of the subject token's: an exchange only narrows", ErrPermissionDenied, sc)
		}
		// The tenant may have narrowed its scopes since the subject token was issued.
		if !tenant.Allows(t.AllowedScopes, sc) {
			return fmt.Errorf("%w: scope %q is not allowed for this tenant", ErrPermissionDenied, sc)
		}
	}
	if len(subject.Actor)+1 > accesstoken.MaxActorChain {
		return fmt.Errorf("%w: the subject token already has a delegation chain of %d actors, the most there may be",
			ErrPermissionDenied, len(subject.Actor))
	}
	return nil
}

func hasDuplicates(list []string) bool {
	for i, v := range list {
		if slices.Contains(list[i+1:], v) {
			return true
		}
	}
	return false
}

func actorNames(chain []accesstoken.Actor) []string {
	out := make([]string, len(chain))
	for i, a := range chain {
		out[i] = a.Subject
	}
	return out
}
