package authn

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// Remote verifies tokens by asking the authority (VerifyToken), which also checks sessions and
// revocations, and caches the answers briefly. It is safe for concurrent use.
//
// Cached answers never outlive their token's exp nor the cache TTL. When the authority cannot
// answer, Verify fails closed with ErrUnavailable.
type Remote struct {
	cfg    *config
	client tokenauthorityv1.TokenServiceClient
	cache  *answerCache // nil when disabled
	flight singleflight.Group
	watch  *watcher // nil unless WithRevocationWatch

	ctx    context.Context // carries x-api-key; ends at Close
	cancel context.CancelFunc
}

// NewRemote returns a verifier that asks the authority reached through conn, presenting apiKey (an
// API key of the tenant with role verify). WithAudience (or WithAnyAudience) is required. With
// WithRevocationWatch it also follows the revocation stream to evict cached answers; it does not
// wait for the stream, and bypasses the cache while the stream is not live.
func NewRemote(conn grpc.ClientConnInterface, apiKey string, opts ...Option) (*Remote, error) {
	cfg := newConfig(opts)
	if err := errors.Join(cfg.validate(modeRemote), checkConn(conn, apiKey)); err != nil {
		return nil, fmt.Errorf("authn: NewRemote: %w", err)
	}
	r := &Remote{cfg: cfg, client: tokenauthorityv1.NewTokenServiceClient(conn)}
	r.ctx, r.cancel = context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-api-key", apiKey))
	if cfg.cacheSize > 0 && cfg.cacheTTL > 0 {
		r.cache = newAnswerCache(cfg.cacheSize)
	}
	if cfg.watch {
		r.watch = startWatcher(conn, apiKey, r, cfg)
	}
	return r, nil
}

// Close stops the revocation watcher, if any; calls in flight to the authority are cancelled.
func (r *Remote) Close() {
	r.cancel()
	if r.watch != nil {
		r.watch.close()
	}
}

// WaitLive returns once the revocation stream has caught up (at once without
// WithRevocationWatch), or ctx's error.
func (r *Remote) WaitLive(ctx context.Context) error {
	if r.watch == nil {
		return nil
	}
	return r.watch.waitLive(ctx)
}

// Verify asks the authority whether token is active for the configured audience, unless a cached
// answer is still valid, and returns its claims.
func (r *Remote) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" || len(token) > maxTokenLen {
		return nil, ErrMalformed
	}
	now := r.cfg.now()
	// The answer depends on the client certificate when the token is bound: it is cached, and
	// shared, per token and certificate, so that a call without the certificate can neither
	// use nor spoil the answer of a call with it.
	presented := r.cfg.presented(ctx)
	if r.cacheUsable(now) {
		key := answerKey(token, presented)
		if a, ok := r.cache.get(&key, now); ok {
			return a.claims, a.err
		}
	}
	flightKey := token
	if presented != "" {
		flightKey = token + "\x00" + presented
	}
	// Concurrent misses for one token share one call.
	ch := r.flight.DoChan(flightKey, func() (any, error) {
		var gen uint64
		if r.cache != nil {
			gen = r.cache.generation()
		}
		a, ttl := r.introspect(token, presented)
		if now := r.cfg.now(); ttl > 0 && r.cacheUsable(now) {
			k := answerKey(token, presented) // again: capturing key would move it to the heap on hits too
			r.cache.put(&k, a, now.Add(ttl), gen)
		}
		return a, nil
	})
	select {
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	case res := <-ch:
		a, _ := res.Val.(answer)
		return a.claims, a.err
	}
}

func (r *Remote) cacheUsable(now time.Time) bool {
	return r.cache != nil && (r.watch == nil || r.watch.fresh(now))
}

// introspect calls VerifyToken and returns the answer and how long it may be cached.
func (r *Remote) introspect(token, presented string) (answer, time.Duration) {
	// The call is shared by every caller waiting for this token, so no caller's cancellation
	// ends it; each caller stops waiting on its own context.
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.callTimeout)
	defer cancel()
	resp, err := r.client.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: token, Audience: r.cfg.audience,
		CertificateThumbprint: presented})
	if err != nil {
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted:
		default:
			// Not a passing outage: the verifier's API key or setup is wrong.
			r.cfg.logger.ErrorContext(ctx, "authn: the authority refused VerifyToken", "err", err)
		}
		if rejected(err) {
			return answer{err: fmt.Errorf("%w: %s", ErrCredentialsRejected, status.Convert(err).Message())}, 0
		}
		return answer{err: unavailable(fmt.Errorf("verify token: %w", err))}, 0
	}
	if !resp.GetActive() {
		return answer{err: reasonError(resp.GetReason())}, r.cfg.inactiveTTL
	}
	c := claimsFromProto(resp.GetClaims())
	if r.cfg.issuer != "" && c.Issuer != r.cfg.issuer {
		return answer{err: ErrWrongIssuer}, r.cfg.inactiveTTL
	}
	if !bindingOK(c, presented) {
		// The authority checked it; an answer that says otherwise is not trusted.
		return answer{err: ErrCertificateMismatch}, r.cfg.inactiveTTL
	}
	if r.cfg.audience != "" && !c.HasAudience(r.cfg.audience) {
		return answer{err: ErrWrongAudience}, r.cfg.inactiveTTL
	}
	ttl := min(r.cfg.cacheTTL, c.ExpiresAt.Sub(r.cfg.now()))
	return answer{claims: c}, ttl
}

// reasonError maps an inactive reason to its error.
func reasonError(r tokenauthorityv1.InactiveReason) error {
	switch r {
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED:
		return ErrMalformed
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM:
		return ErrUnsupportedAlgorithm
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY:
		return ErrUnknownKey
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE:
		return ErrBadSignature
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_TYPE:
		return ErrWrongType
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_EXPIRED:
		return ErrExpired
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_NOT_YET_VALID:
		return ErrNotYetValid
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_ISSUER:
		return ErrWrongIssuer
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_AUDIENCE:
		return ErrWrongAudience
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED,
		tokenauthorityv1.InactiveReason_INACTIVE_REASON_REVOKED:
		return ErrRevoked
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF:
		return ErrCutOff
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_INSUFFICIENT_SCOPE:
		return ErrInsufficientScope
	case tokenauthorityv1.InactiveReason_INACTIVE_REASON_CERTIFICATE_MISMATCH:
		return ErrCertificateMismatch
	}
	return ErrInvalidToken
}

func claimsFromProto(p *tokenauthorityv1.TokenClaims) *Claims {
	c := &Claims{
		Issuer:    p.GetIssuer(),
		Subject:   p.GetSubject(),
		Audience:  p.GetAudience(),
		ExpiresAt: p.GetExpireTime().AsTime(),
		IssuedAt:  p.GetIssueTime().AsTime(),
		JTI:       p.GetJti(),
		SessionID: p.GetSessionId(),
		Scopes:    p.GetScopes(),

		CertificateThumbprint: p.GetCertificateThumbprint(),
	}
	if p.GetNotBeforeTime() != nil {
		c.NotBefore = p.GetNotBeforeTime().AsTime()
	}
	if p.GetExtra() != nil {
		c.Extra = p.GetExtra().AsMap()
	}
	for _, a := range p.GetActor() {
		c.Actor = append(c.Actor, Actor{Subject: a.GetSubject()})
	}
	return c
}

// apply implements revocationSink: it evicts the cached answers the event covers.
func (r *Remote) apply(ev *tokenauthorityv1.WatchRevocationsResponse) {
	if r.cache == nil {
		return
	}
	switch ev.GetKind() {
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN:
		jti := ev.GetJti()
		r.cache.evict(func(c *Claims) bool { return c.JTI == jti })
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION:
		sid := ev.GetSessionId()
		r.cache.evict(func(c *Claims) bool { return c.SessionID == sid })
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF:
		sub, cut := ev.GetSubject(), ev.GetCutoffTime().AsTime().Unix()
		r.cache.evict(func(c *Claims) bool { return c.Subject == sub && c.IssuedAt.Unix() <= cut })
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED:
		// Nothing cached depends on a new key.
	default:
		// Tenant cut-offs, withdrawn keys, and kinds this version does not know.
		r.cache.clear()
	}
}

// resync implements revocationSink.
func (r *Remote) resync() {
	if r.cache != nil {
		r.cache.clear()
	}
}

// tick implements revocationSink.
func (r *Remote) tick(time.Time) {}
