package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// RevokeTarget names what RevokeToken revokes; exactly one field is set.
type RevokeTarget struct {
	Token     string
	JTI       string
	SessionID string
}

// Revoke revokes one token or one session of tenant t. It is idempotent and succeeds for targets it
// does not know (RFC 7009: no oracle), announcing nothing for them, nor for a revocation already
// announced. It fails for malformed requests, store failures, and, before anything is recorded,
// when the tenant's revocation log is full of events that still matter (revocation.ErrFull: cut-offs
// still go through).
func (s *Service) Revoke(ctx context.Context, t *tenant.Tenant, target RevokeTarget) error {
	switch {
	case target.Token != "":
		if err := checkTokenField("token", target.Token); err != nil {
			return err
		}
		return s.revokeToken(ctx, t, target.Token)
	case target.JTI != "":
		if len(target.JTI) > 128 {
			return fmt.Errorf("%w: jti is too long", ErrInvalidArgument)
		}
		sid, ok := store.SessionOfJTI(target.JTI)
		if !ok {
			return nil
		}
		// The token's exp is unknown here; the longest access lifetime covers it.
		until := s.accessHorizon(t, s.now())
		return s.markRevoked(ctx, t, sid, target.JTI, until)
	case target.SessionID != "":
		if len(target.SessionID) > 128 {
			return fmt.Errorf("%w: session_id is too long", ErrInvalidArgument)
		}
		return s.endSession(ctx, t, target.SessionID)
	}
	return fmt.Errorf("%w: one of token, jti or session_id is required", ErrInvalidArgument)
}

func (s *Service) revokeToken(ctx context.Context, t *tenant.Tenant, raw string) error {
	// A refresh token revokes its whole session (RFC 7009 section 2.1).
	c, err := s.parseRefresh(ctx, t, raw)
	if err == nil {
		return s.endSession(ctx, t, c.SessionID)
	}
	if !errors.Is(err, ErrInvalidRefreshToken) {
		return err
	}
	// Not Verify: the check is part of a revocation, not a verification to count.
	v, err := s.verify(ctx, VerifyRequest{Tenant: t, Token: raw})
	if err != nil {
		return err
	}
	// Only tokens whose signature verified may name what to revoke; an expired or already revoked
	// one needs nothing more.
	if !v.Active {
		return nil
	}
	return s.markRevoked(ctx, t, v.Claims.SessionID, v.Claims.JTI, v.Claims.ExpiresAt.Add(s.cfg.Leeway))
}

func (s *Service) markRevoked(ctx context.Context, t *tenant.Tenant, sid, jti string, until time.Time) error {
	if err := s.room(ctx, t); err != nil {
		return err
	}
	out, err := s.cfg.Store.RevokeToken(ctx, t.ID, sid, jti, until)
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	if out.Revoked {
		s.obs.Revoked(revocation.KindToken)
		s.audit.Emit(ctx, audit.Event{Kind: audit.TokenRevoked, Tenant: t.ID, SessionID: sid, JTI: jti})
	}
	if !out.Announce {
		return nil
	}
	return s.announceRevocation(ctx, t, sid, jti, revocation.Event{Kind: revocation.KindToken, Value: jti, ExpiresAt: until})
}

// endSession ends a session and announces it. The store leaves a tombstone that says whether the
// end was announced, so that a retry after a failed announcement still reaches the watchers while
// a session that never existed, or whose end was announced, adds nothing to the log.
func (s *Service) endSession(ctx context.Context, t *tenant.Tenant, sid string) error {
	if !store.ValidSessionID(sid) {
		return nil // Names no session this service made.
	}
	if err := s.room(ctx, t); err != nil {
		return err
	}
	until := s.accessHorizon(t, s.now())
	out, err := s.cfg.Store.EndSession(ctx, t.ID, sid, until)
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	if out.Revoked {
		s.obs.Revoked(revocation.KindSession)
		s.audit.Emit(ctx, audit.Event{Kind: audit.SessionRevoked, Tenant: t.ID, SessionID: sid})
	}
	if !out.Announce {
		return nil
	}
	return s.announceRevocation(ctx, t, sid, "", revocation.Event{Kind: revocation.KindSession, Value: sid, ExpiresAt: until})
}

// room refuses the revocation of one token or session, before anything is recorded, when the
// tenant's log is full of events that still matter: recorded but not announced, it would reach
// the verifiers in local mode only once they resynchronise.
func (s *Service) room(ctx context.Context, t *tenant.Tenant) error {
	if s.cfg.Events == nil {
		return nil
	}
	if err := s.cfg.Events.Room(ctx, t.ID); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	return nil
}

// announceRevocation announces a recorded revocation of a jti, or of a session when jti is "", then
// records in the store that it was announced.
func (s *Service) announceRevocation(ctx context.Context, t *tenant.Tenant, sid, jti string, ev revocation.Event) error {
	if s.cfg.Events == nil {
		return nil
	}
	if err := s.announce(ctx, t, ev); err != nil {
		return err
	}
	if err := s.cfg.Store.Announced(ctx, t.ID, sid, jti); err != nil {
		return fmt.Errorf("record that the revocation was announced (a retry announces it again): %w", err)
	}
	return nil
}

// AnnounceKey tells the watchers that a signing key of t was published or withdrawn (kind is
// revocation.KindKeyPublished or revocation.KindKeyWithdrawn).
func (s *Service) AnnounceKey(ctx context.Context, t *tenant.Tenant, kind revocation.Kind, kid string) error {
	s.obs.Revoked(kind)
	return s.announce(ctx, t, revocation.Event{Kind: kind, Value: kid, ExpiresAt: s.accessHorizon(t, s.now())})
}

// accessHorizon is when every access token issued by t up to at has expired (leeway included).
func (s *Service) accessHorizon(t *tenant.Tenant, at time.Time) time.Time {
	return at.Add(bound(t.MaxAccessTTL, s.cfg.MaxAccessTTL) + s.cfg.Leeway)
}

// announce appends a revocation event for the watchers. The revocation itself is already recorded
// when it fails: the caller gets Unavailable and retries, as revocations are idempotent.
func (s *Service) announce(ctx context.Context, t *tenant.Tenant, ev revocation.Event) error {
	if s.cfg.Events == nil {
		return nil
	}
	// Events carry milliseconds, as the Redis stream stores them, on every backend: a watcher sees
	// the same expire_time whichever store the authority runs on.
	ev.ExpiresAt = time.UnixMilli(ev.ExpiresAt.UnixMilli())
	if !ev.Cutoff.IsZero() {
		ev.Cutoff = time.UnixMilli(ev.Cutoff.UnixMilli())
	}
	if err := s.cfg.Events.Append(ctx, t.ID, ev); err != nil {
		return fmt.Errorf("announce the revocation (it is recorded; retry to announce it): %w", err)
	}
	return nil
}

// RevokeSubject ends every session of subject in tenant t opened before now, in O(1).
func (s *Service) RevokeSubject(ctx context.Context, t *tenant.Tenant, subject string) (time.Time, error) {
	if subject == "" || len(subject) > maxSubjectLen {
		return time.Time{}, fmt.Errorf("%w: subject must be 1-%d bytes", ErrInvalidArgument, maxSubjectLen)
	}
	at, err := s.raiseCutoff(func(at time.Time) error {
		return s.cfg.Store.SetSubjectCutoff(ctx, t.ID, subject, at, s.cutoffTTL(t))
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("set subject cut-off: %w", err)
	}
	s.obs.Revoked(revocation.KindSubjectCutoff)
	s.audit.Emit(ctx, audit.Event{Kind: audit.SubjectCutoff, Tenant: t.ID, Subject: subject, Cutoff: at})
	return at, s.announce(ctx, t, revocation.Event{Kind: revocation.KindSubjectCutoff, Value: subject, Cutoff: at,
		ExpiresAt: s.accessHorizon(t, at)})
}

// RevokeTenant ends every session of tenant t opened before now, in O(1): the emergency switch.
func (s *Service) RevokeTenant(ctx context.Context, t *tenant.Tenant) (time.Time, error) {
	return s.revokeTenant(ctx, t, "")
}

// EndTenant is RevokeTenant for a tenant about to be deleted: its event also marks the end of
// t's incarnation (revocation.TenantDeleted), where the revocation streams of that incarnation
// stop, before any event of a tenant created again under the same id.
func (s *Service) EndTenant(ctx context.Context, t *tenant.Tenant) (time.Time, error) {
	return s.revokeTenant(ctx, t, revocation.TenantDeleted(t.Incarnation))
}

func (s *Service) revokeTenant(ctx context.Context, t *tenant.Tenant, value string) (time.Time, error) {
	at, err := s.raiseCutoff(func(at time.Time) error {
		return s.cfg.Store.SetTenantCutoff(ctx, t.ID, at, s.cutoffTTL(t))
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("set tenant cut-off: %w", err)
	}
	s.obs.Revoked(revocation.KindTenantCutoff)
	s.audit.Emit(ctx, audit.Event{Kind: audit.TenantCutoff, Tenant: t.ID, Cutoff: at})
	return at, s.announce(ctx, t, revocation.Event{Kind: revocation.KindTenantCutoff, Value: value, Cutoff: at, ExpiresAt: s.accessHorizon(t, at)})
}

// raiseCutoff records a cut-off with set and returns the instant it covers, in whole milliseconds.
//
// A token minted while the write was in flight read no cut-off, and its iat (taken before that
// read) can be later than the instant the write started with. Local verifiers only compare iat
// with the cut-off, so such a token would outlive the revocation there. Once the first write is
// visible no new token can miss it, so the cut-off is raised to the time after that write (cut-offs
// only rise): every token minted before the write is then covered as well.
func (s *Service) raiseCutoff(set func(time.Time) error) (time.Time, error) {
	at := time.UnixMilli(s.now().UnixMilli())
	if err := set(at); err != nil {
		return time.Time{}, err
	}
	after := time.UnixMilli(s.now().UnixMilli())
	if !after.After(at) {
		return at, nil
	}
	if err := set(after); err != nil {
		return time.Time{}, err
	}
	return after, nil
}

// cutoffTTL is how long a cut-off must be kept: until every session it covers has expired.
func (s *Service) cutoffTTL(t *tenant.Tenant) time.Duration {
	return bound(t.MaxRefreshTTL, s.cfg.MaxRefreshTTL) + time.Minute
}

// ListSessions returns a page of subject's live sessions, newest first.
func (s *Service) ListSessions(ctx context.Context, t *tenant.Tenant, subject string, pageSize int, pageToken string) ([]*store.Session, string, error) {
	if subject == "" || len(subject) > maxSubjectLen {
		return nil, "", fmt.Errorf("%w: subject must be 1-%d bytes", ErrInvalidArgument, maxSubjectLen)
	}
	switch {
	case pageSize < 0:
		return nil, "", fmt.Errorf("%w: page_size must not be negative", ErrInvalidArgument)
	case pageSize == 0:
		pageSize = 50
	case pageSize > 500:
		pageSize = 500
	}
	if len(pageToken) > 512 {
		return nil, "", fmt.Errorf("%w: page_token is not one this server returned", ErrInvalidArgument)
	}
	sessions, next, err := s.cfg.Store.ListSessions(ctx, t.ID, subject, s.now(), store.Page{After: pageToken, Limit: pageSize})
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	return sessions, next, nil
}
