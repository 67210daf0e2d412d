package authn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// accessType is the typ header of access tokens.
const accessType = accesstoken.TypeAccess

// pruneInterval is how often, by the clock, expired deny entries are dropped.
const pruneInterval = 30 * time.Second

// Local verifies tokens in-process: signatures against the tenant's public keys, then a deny-set
// fed by the revocation stream. It is safe for concurrent use.
//
// It fails closed: while the revocation stream has not caught up since the start or a resync, or
// has been silent longer than the staleness bound, every Verify returns ErrStale (Unavailable).
type Local struct {
	cfg    *config
	client tokenauthorityv1.TokenServiceClient // nil for a static verifier
	apiKey string
	parser *jwt.Parser

	keys    atomic.Pointer[keySet]
	keysMu  sync.Mutex // orders key-set replacements
	keysSeq uint64     // sequence of the fetch behind the current set; under keysMu
	// namedIssuer is the issuer the authority named with the current set; under keysMu.
	namedIssuer string
	fetchNo     atomic.Uint64

	// lastFetch is the clock's time (Unix nanoseconds) of the last fetch started for an
	// unknown kid; such fetches happen at most once per keyRefresh.
	lastFetch atomic.Int64
	fetches   singleflight.Group
	// fetchWaiters counts the verifications waiting for a fetch for an unknown kid, which they
	// share; a test waits on it to know that concurrent misses have joined one fetch.
	fetchWaiters atomic.Int32
	refreshCh    chan struct{}

	deny      *denySet
	verified  *verifiedCache // nil when disabled
	lastPrune time.Time      // watcher goroutine only
	watch     *watcher       // nil for a static verifier

	ctx       context.Context // carries x-api-key; ends at Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewLocal returns a verifier that checks tokens in-process. It fetches the tenant's public keys
// with ListPublicKeys (failing with ErrNoUsableKeys when none can verify, as for HS256 tenants),
// opens WatchRevocations from the oldest retained event, and returns once the stream has caught up.
// While the authority cannot be reached (not started yet, restarting) it keeps trying, on the
// WithReconnectBackoff schedule, until ctx ends, and then fails with ctx's error and the last
// cause; when the authority refuses apiKey it fails at once with ErrCredentialsRejected. ctx bounds
// the start only; Close stops the verifier.
//
// conn reaches the authority; apiKey is an API key of the tenant with role verify. WithAudience (or
// WithAnyAudience) is required. The issuer is the one the authority names with its keys, unless
// WithIssuer sets it.
func NewLocal(ctx context.Context, conn grpc.ClientConnInterface, apiKey string, opts ...Option) (*Local, error) {
	cfg := newConfig(opts)
	if err := errors.Join(cfg.validate(modeLocal), checkConn(conn, apiKey)); err != nil {
		return nil, fmt.Errorf("authn: NewLocal: %w", err)
	}
	l := newLocal(cfg)
	l.client, l.apiKey = tokenauthorityv1.NewTokenServiceClient(conn), apiKey
	l.ctx, l.cancel = context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "x-api-key", apiKey))
	if err := l.initialKeys(ctx, conn); err != nil {
		l.Close()
		return nil, fmt.Errorf("authn: NewLocal: %w", err)
	}
	l.watch = startWatcher(conn, apiKey, l, cfg)
	l.wg.Add(1)
	go l.refresher()
	if err := l.watch.waitLive(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("authn: NewLocal: the revocation stream did not catch up: %w", err)
	}
	return l, nil
}

// NewStatic returns a local verifier over a fixed key set, with no authority and no revocation:
// for tests (see the authntest package) and for tools that check tokens offline. WithIssuer and
// WithAudience (or WithAnyAudience) are required.
func NewStatic(keys []*tokenauthorityv1.JsonWebKey, opts ...Option) (*Local, error) {
	cfg := newConfig(opts)
	if err := cfg.validate(modeStatic); err != nil {
		return nil, fmt.Errorf("authn: NewStatic: %w", err)
	}
	l := newLocal(cfg)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	ks, problems := newKeySet(keys, nil)
	if len(ks.byKid) == 0 {
		l.Close()
		return nil, fmt.Errorf("authn: NewStatic: %w", errors.Join(append([]error{ErrNoUsableKeys}, problems...)...))
	}
	l.keys.Store(ks)
	return l, nil
}

func newLocal(cfg *config) *Local {
	return &Local{
		cfg:      cfg,
		verified: newVerifiedCache(cfg.cacheSize),
		// Claims are checked by hand, with the injected clock and precise reasons.
		parser:    jwt.NewParser(jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding()),
		deny:      newDenySet(),
		refreshCh: make(chan struct{}, 1),
	}
}

func checkConn(conn grpc.ClientConnInterface, apiKey string) error {
	var errs []error
	if conn == nil {
		errs = append(errs, errors.New("nil connection to the authority"))
	}
	if apiKey == "" {
		errs = append(errs, errors.New("empty API key"))
	}
	return errors.Join(errs...)
}

// Close stops the revocation watcher and the key refresher. Verify keeps working on a closed
// static verifier, and fails closed (ErrStale) on a closed remote-fed one once the staleness bound
// has passed.
func (l *Local) Close() {
	l.closeOnce.Do(func() {
		l.cancel()
		if l.watch != nil {
			l.watch.close()
		}
		l.wg.Wait()
	})
}

// Live reports whether the verifier currently accepts tokens: always for a static verifier;
// otherwise when the revocation stream has caught up and has not been silent longer than the
// staleness bound. Suited to a readiness probe.
func (l *Local) Live() bool { return l.watch == nil || l.watch.fresh(l.cfg.now()) }

// WaitLive returns once Live is true, or ctx's error.
func (l *Local) WaitLive(ctx context.Context) error {
	if l.watch == nil {
		return nil
	}
	return l.watch.waitLive(ctx)
}

// Verify checks token's signature, type, times, issuer, audience and revocation, and returns its
// claims.
func (l *Local) Verify(ctx context.Context, token string) (*Claims, error) {
	now := l.cfg.now()
	if l.watch != nil && !l.watch.fresh(now) {
		return nil, ErrStale
	}
	if token == "" || len(token) > maxTokenLen {
		return nil, ErrMalformed
	}
	if l.verified != nil {
		// A token seen before: its signature and claims were checked then. Its key must still be
		// in the current set (a withdrawn or replaced key's tokens stop at once).
		if v := l.verified.get(token, now.UnixNano()); v != nil && l.keys.Load().byKid[v.key.kid] == v.key {
			return l.check(ctx, now, v.key.kid, v.claims)
		}
	}
	var key *verifyKey
	var keyErr error
	mc := jwt.MapClaims{}
	_, err := l.parser.ParseWithClaims(token, mc, func(t *jwt.Token) (any, error) {
		k, err := l.keyFor(ctx, t)
		if err != nil {
			keyErr = err
			return nil, err
		}
		key = k
		return k.key, nil
	})
	switch {
	case keyErr != nil:
		return nil, keyErr
	case err != nil:
		return nil, parseError(err)
	}
	c, ok := claimsFromMap(mc)
	if !ok {
		return nil, ErrMalformed
	}
	if until := c.ExpiresAt.Add(l.cfg.leeway); l.verified != nil && now.Before(until) {
		l.verified.put(&verified{token: token, claims: c, key: key, until: until.UnixNano()}, now.UnixNano())
	}
	return l.check(ctx, now, key.kid, c)
}

// check applies to a token whose signature verified what can change between two presentations of
// it: the clock, the issuer, revocations and cut-offs, the client certificate of the call in ctx
// (read only for a bound token: working out a thumbprint costs a hash), the audience.
func (l *Local) check(ctx context.Context, now time.Time, kid string, c *Claims) (*Claims, error) {
	// The iat claim, not the exact instant: the authority judges the same token by it.
	switch accesstoken.CheckTimes(c.ExpiresAt, c.NotBefore, c.IssuedAt.Truncate(time.Second), now, l.cfg.leeway) {
	case accesstoken.Expired:
		return nil, ErrExpired
	case accesstoken.NotYetValid:
		return nil, ErrNotYetValid
	}
	if c.Issuer != l.cfg.issuer {
		return nil, ErrWrongIssuer
	}
	// Before the audience: a revoked token is Unauthenticated wherever it is presented, not
	// PermissionDenied where it was not meant to go.
	if err := l.deny.denied(kid, c.JTI, c.SessionID, c.Subject, c.IssuedAt.UnixMilli()); err != nil {
		return nil, err
	}
	if c.CertificateThumbprint != "" && !bindingOK(c, l.cfg.presented(ctx)) {
		return nil, ErrCertificateMismatch
	}
	if l.cfg.audience != "" && !c.HasAudience(l.cfg.audience) {
		return nil, ErrWrongAudience
	}
	return c, nil
}

// keyFor checks the header and returns the key that must have signed the token.
func (l *Local) keyFor(ctx context.Context, t *jwt.Token) (*verifyKey, error) {
	// Checked first: a refresh token is refused before any key lookup or fetch.
	if typ, _ := t.Header["typ"].(string); typ != accessType {
		return nil, ErrWrongType
	}
	// The authority writes no critical extensions; one it does not know must be refused
	// (RFC 7515, section 4.1.11).
	if _, crit := t.Header["crit"]; crit {
		return nil, ErrMalformed
	}
	kid, _ := t.Header["kid"].(string)
	if !accesstoken.ValidKeyID(kid) {
		return nil, ErrUnknownKey
	}
	k := l.keys.Load().byKid[kid]
	if k == nil {
		var err error
		if k, err = l.fetchForKid(ctx, kid); err != nil {
			return nil, err
		}
	}
	// The key fixes the algorithm: a token naming another (HS256 over a public key, say) is
	// refused before any signature is computed.
	if alg, _ := t.Header["alg"].(string); alg != k.alg || t.Method == nil || t.Method.Alg() != k.alg {
		return nil, ErrUnsupportedAlgorithm
	}
	return k, nil
}

// fetchForKid fetches the keys again for an unknown kid, at most once per keyRefresh; concurrent
// misses share one fetch.
func (l *Local) fetchForKid(ctx context.Context, kid string) (*verifyKey, error) {
	if l.client == nil {
		return nil, ErrUnknownKey
	}
	if l.deny.kidWithdrawn(kid) {
		return nil, ErrRevoked
	}
	l.fetchWaiters.Add(1)
	defer l.fetchWaiters.Add(-1)
	ch := l.fetches.DoChan("miss", func() (any, error) {
		now := l.cfg.now().UnixNano()
		if last := l.lastFetch.Load(); last != 0 && now-last < int64(l.cfg.keyRefresh) {
			return nil, nil // fetched recently: the kid is unknown
		}
		l.lastFetch.Store(now)
		return nil, l.fetchKeys(l.ctx)
	})
	select {
	case <-ctx.Done():
		return nil, unavailable(ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			// The kid may be new; without the authority there is no telling.
			return nil, r.Err
		}
	}
	if k := l.keys.Load().byKid[kid]; k != nil {
		return k, nil
	}
	if l.deny.kidWithdrawn(kid) {
		return nil, ErrRevoked
	}
	return nil, ErrUnknownKey
}

// initialKeys fetches the key set at start; it fails unless a key is usable.
func (l *Local) initialKeys(ctx context.Context, conn grpc.ClientConnInterface) error {
	if err := l.fetchUntilAnswered(ctx, conn); err != nil {
		return err
	}
	if len(l.keys.Load().byKid) == 0 {
		return ErrNoUsableKeys
	}
	if l.cfg.issuer == "" {
		// Set before the verifier is handed out or the watcher starts: no reader races it.
		l.keysMu.Lock()
		l.cfg.issuer = l.namedIssuer
		l.keysMu.Unlock()
		if l.cfg.issuer == "" {
			return errors.New("the authority names no issuer with its keys: pass WithIssuer")
		}
	}
	return nil
}

// fetchUntilAnswered fetches the keys, retrying on the reconnect backoff while the authority cannot
// be reached, until ctx ends: a service started before the authority (or during its restart) waits
// for it instead of failing at once. A refusal of the API key is final.
func (l *Local) fetchUntilAnswered(ctx context.Context, conn grpc.ClientConnInterface) error {
	md := metadata.AppendToOutgoingContext(ctx, "x-api-key", l.apiKey)
	backoff := l.cfg.backoffMin
	for {
		err := l.fetchKeys(md)
		if err == nil || errors.Is(err, ErrCredentialsRejected) {
			return err
		}
		if !retryAfter(ctx, conn, l.cfg.logger, "authn: the authority did not answer; retrying", err, backoff) {
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		backoff = min(backoff*2, l.cfg.backoffMax)
	}
}

// fetchKeys calls ListPublicKeys and installs the usable keys that were not withdrawn.
func (l *Local) fetchKeys(ctx context.Context) error {
	seq := l.fetchNo.Add(1)
	ctx, cancel := context.WithTimeout(ctx, l.cfg.callTimeout)
	defer cancel()
	resp, err := l.client.ListPublicKeys(ctx, &tokenauthorityv1.ListPublicKeysRequest{})
	if err != nil {
		if rejected(err) {
			return fmt.Errorf("%w: %s", ErrCredentialsRejected, status.Convert(err).Message())
		}
		return unavailable(fmt.Errorf("list public keys: %w", err))
	}
	ks, problems := newKeySet(resp.GetKeys(), l.deny.kidWithdrawn)
	for _, p := range problems {
		l.cfg.logger.DebugContext(ctx, "authn: skipping a key", "err", p)
	}
	l.keysMu.Lock()
	defer l.keysMu.Unlock()
	if seq > l.keysSeq {
		l.keysSeq = seq
		// Unchanged keys keep their identity, and with it the tokens remembered as verified by them.
		l.keys.Store(ks.reusing(l.keys.Load()))
		l.namedIssuer = resp.GetIssuer()
	}
	return nil
}

// refresher fetches the keys when an event says they changed, coalescing bursts.
func (l *Local) refresher() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.refreshCh:
		}
		r := <-l.fetches.DoChan("event", func() (any, error) { return nil, l.fetchKeys(l.ctx) })
		if r.Err != nil && l.ctx.Err() == nil {
			l.cfg.logger.WarnContext(l.ctx, "authn: refreshing the keys after an event failed", "err", r.Err)
		}
	}
}

func (l *Local) requestKeyRefresh() {
	select {
	case l.refreshCh <- struct{}{}:
	default: // one is pending already
	}
}

// apply implements revocationSink.
func (l *Local) apply(ev *tokenauthorityv1.WatchRevocationsResponse) {
	exp := ev.GetExpireTime().AsTime()
	if ev.GetExpireTime() == nil {
		exp = time.Time{}
	}
	switch ev.GetKind() {
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN:
		if ev.GetJti() != "" {
			l.deny.addJTI(ev.GetJti(), exp)
		}
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION:
		if ev.GetSessionId() != "" {
			l.deny.addSession(ev.GetSessionId(), exp)
		}
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF:
		if ev.GetSubject() != "" && ev.GetCutoffTime() != nil {
			l.deny.addSubjectCutoff(ev.GetSubject(), cutoff{ms: ev.GetCutoffTime().AsTime().UnixMilli(), expire: exp})
		}
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_TENANT_CUTOFF:
		if ev.GetCutoffTime() != nil {
			l.deny.addTenantCutoff(cutoff{ms: ev.GetCutoffTime().AsTime().UnixMilli(), expire: exp})
		}
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN:
		if kid := ev.GetKid(); kid != "" {
			l.deny.addKid(kid, exp)
			l.keysMu.Lock()
			l.keys.Store(l.keys.Load().without(kid))
			l.keysMu.Unlock()
			if l.verified != nil {
				l.verified.drop(func(v *verified) bool { return v.key.kid == kid })
			}
		}
		// Withdrawing the signing key publishes a replacement that signs at once.
		l.requestKeyRefresh()
	case tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED:
		l.requestKeyRefresh()
	default:
		l.cfg.logger.Warn("authn: ignoring a revocation event of an unknown kind", "kind", ev.GetKind())
	}
}

// resync implements revocationSink.
func (l *Local) resync() {
	l.deny.clear()
	l.requestKeyRefresh()
}

// tick implements revocationSink.
func (l *Local) tick(now time.Time) {
	if now.Sub(l.lastPrune) >= pruneInterval {
		l.lastPrune = now
		l.deny.prune(now, l.cfg.leeway)
	}
}

// parseError maps a golang-jwt error (the key function's errors are handled before).
func parseError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return ErrBadSignature
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// golang-jwt knows no such algorithm.
		return ErrUnsupportedAlgorithm
	}
	return ErrMalformed
}

// claimsFromMap decodes the claims with the authority's rules (accesstoken.DecodeMap); false for
// a malformed token. IssuedAt is the exact instant (iat_ms), which cut-offs are compared with.
func claimsFromMap(m jwt.MapClaims) (*Claims, bool) {
	d, ok := accesstoken.DecodeMap(m)
	if !ok {
		return nil, false
	}
	c := &Claims{
		Issuer: d.Issuer, Subject: d.Subject, Audience: d.Audience,
		ExpiresAt: d.ExpiresAt, NotBefore: d.NotBefore, IssuedAt: d.IssuedAtExact,
		JTI: d.JTI, SessionID: d.SessionID, Scopes: d.Scopes,
		CertificateThumbprint: d.CertThumbprint, Extra: d.Extra, Actor: d.Actor,
	}
	return c, true
}
