package token

import (
	"context"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Store keeps sessions, revocation marks and cut-offs. Every key it writes expires on its own
// (nothing outlives its session) and every multi-key update is atomic. CreateSession, RotateRefresh
// and CheckAccess are one network round trip each (a pipeline at most), since they are on the hot
// path. Backend failures are returned wrapped in store.ErrUnavailable.
//
// Session identifiers are made by store.NewSessionID and carry a tag derived from (tenant,
// subject), so that a backend can co-locate every key of one subject (store.SessionTag). Callers pass identifiers that
// came from signed tokens or from callers; backends must treat a malformed one as unknown.
type Store interface {
	// CreateSession stores a new session, expiring at s.ExpiresAt, and indexes it under its subject.
	CreateSession(ctx context.Context, s *store.Session) error
	// RotateRefresh performs one refresh attempt atomically: exactly one of several concurrent
	// attempts with the same token gets Rotated. It reports RotateInvalid when the session was
	// created before the subject's or the tenant's cut-off (a backend may rotate before it learns of
	// the tenant cut-off: the session is dead either way).
	RotateRefresh(ctx context.Context, req store.RotateRequest) (store.RotateResult, error)
	// CheckAccess reads the session, the jti's revocation mark and both cut-offs.
	CheckAccess(ctx context.Context, tenant, sessionID, jti string) (store.AccessState, error)
	// GetSession returns a live session of the tenant, or store.ErrNotFound.
	GetSession(ctx context.Context, tenant, sessionID string) (*store.Session, error)
	// RevokeToken marks a jti of a live session of the tenant revoked until the given time (when the
	// token expires), with its announcement pending. For an unknown session nothing is written and
	// Announce reports an earlier mark of the tenant whose announcement is still pending.
	RevokeToken(ctx context.Context, tenant, sessionID, jti string, until time.Time) (store.RevokeOutcome, error)
	// EndSession ends a session of the tenant and, in the same atomic step, leaves in its place a
	// tombstone until the given time (when every access token of the session has expired) with the
	// end's announcement pending. For a session that is not there nothing is written and Announce
	// reports a tombstone of the tenant whose announcement is still pending.
	EndSession(ctx context.Context, tenant, sessionID string, until time.Time) (store.RevokeOutcome, error)
	// Announced records that the revocation of jti, or the end of the session when jti is "", was
	// announced to the watchers, so that repeating it announces nothing.
	Announced(ctx context.Context, tenant, sessionID, jti string) error
	// DeleteSession ends a session of the tenant, leaving nothing in its place. It reports whether
	// one was deleted.
	DeleteSession(ctx context.Context, tenant, sessionID string) (bool, error)
	// SetSubjectCutoff records that no session of the subject created at or before at is valid
	// (store.EndedBy). The mark expires after ttl (by then every such session has expired
	// anyway). A later cut-off wins; an earlier one never moves it back.
	SetSubjectCutoff(ctx context.Context, tenant, subject string, at time.Time, ttl time.Duration) error
	// SetTenantCutoff is SetSubjectCutoff for every subject of the tenant.
	SetTenantCutoff(ctx context.Context, tenant string, at time.Time, ttl time.Duration) error
	// ListSessions returns the subject's live sessions newest first, skipping sessions ended by a
	// subject or tenant cut-off, and the cursor of the next page ("" when there is none). A page
	// may be short, even empty, and have a cursor: a backend bounds the work of one call rather
	// than read on past sessions that ended. A cursor that this list did not return (malformed, or
	// of another subject's list: store.DecodeSubjectCursor) is an error wrapping
	// store.ErrInvalidArgument.
	ListSessions(ctx context.Context, tenant, subject string, now time.Time, p store.Page) ([]*store.Session, string, error)
	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
}
