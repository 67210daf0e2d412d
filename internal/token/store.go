package token

import (
	"context"
	"time"
)

// Session is one login, as the store keeps it.
type Session struct {
	ID      string
	Tenant  string
	Subject string
	// Audience, Scopes and Extra are copied into every access token of the session.
	Audience []string
	Scopes   []string
	// Extra is the JSON object of the caller's extra claims, or nil.
	Extra    []byte
	Metadata Metadata
	// CreatedAt is when the session was opened; cut-offs compare against it.
	CreatedAt time.Time
	// ExpiresAt is the absolute end of the session; refreshing never moves it.
	ExpiresAt time.Time
	// AccessTTL is the lifetime of each access token of the session.
	AccessTTL time.Duration
	// Generation counts refresh rotations; the current refresh token is of this generation.
	Generation uint64
	// RefreshHash is the SHA-256 of the current refresh token.
	RefreshHash []byte
	// RotatedAt is when the current generation began (CreatedAt for generation 0).
	RotatedAt time.Time
	// CertThumbprint is the x5t#S256 thumbprint of the client certificate the session's tokens
	// are bound to (RFC 8705); empty when they are not bound.
	CertThumbprint string
}

// Metadata describes the device that opened a session.
type Metadata struct {
	UserAgent string `json:"ua,omitempty"`
	IP        string `json:"ip,omitempty"`
	Device    string `json:"dev,omitempty"`
}

// RotateOutcome is the result of a refresh attempt in the store.
type RotateOutcome int

const (
	// RotateInvalid means no live session of the tenant matches (unknown, expired, ended, cut off by a
	// subject cut-off, or the presented generation is ahead of the stored one).
	RotateInvalid RotateOutcome = iota
	// Rotated means the presented token was current; the session moved to Generation+1 at Now.
	Rotated
	// RotateRetry means the presented token is the previous generation and the rotation happened within
	// the grace window; the session is unchanged and its current state is returned.
	RotateRetry
	// RotateReuse means an older token, or the previous one after the grace window, was presented. The
	// session has been deleted.
	RotateReuse
)

// RotateRequest is one refresh attempt, executed atomically by Store.RotateRefresh.
type RotateRequest struct {
	Tenant    string
	SessionID string
	// Generation and Hash describe the presented refresh token.
	Generation uint64
	Hash       []byte
	// NewHash is the hash of the refresh token of generation Generation+1 rotated at Now.
	NewHash []byte
	Now     time.Time
	Grace   time.Duration
}

// RotateResult reports the outcome and, for Rotated and RotateRetry, the session after the call;
// for RotateReuse, the session as it was before deletion (for the audit log).
type RotateResult struct {
	Outcome RotateOutcome
	Session *Session
}

// EndedBy reports whether a session created at created is ended by the cut-off (zero: none). A
// cut-off ends every session created at or before it: cut-offs and creation times are kept in
// milliseconds, and a session opened in the same millisecond as a revocation may have been opened
// before it, so it is ended too (a session opened just after, in that millisecond, is as well: the
// safe side).
func EndedBy(created, cutoff time.Time) bool {
	return !cutoff.IsZero() && !created.After(cutoff)
}

// RevokeOutcome is what the store did for the revocation of one token or session.
type RevokeOutcome struct {
	// Revoked is true when this call revoked a token that was not revoked yet, or ended a live
	// session.
	Revoked bool
	// Announce is true while the revocation has not been announced to the watchers: it was made by
	// this call, or by an earlier one whose announcement failed (Announced was not called since).
	// It is false for a target the store does not know: there is nothing to announce.
	Announce bool
}

// AccessState is what the store knows about an access token's session, read in one round trip.
type AccessState struct {
	// SessionFound is false when the session is unknown, expired, ended, or of another tenant.
	SessionFound bool
	// SessionCreatedAt is the session's creation time, compared with the cut-offs.
	SessionCreatedAt time.Time
	// TokenRevoked is true when the token's jti was revoked.
	TokenRevoked bool
	// SubjectCutoff and TenantCutoff are zero when none is set.
	SubjectCutoff time.Time
	TenantCutoff  time.Time
}

// Page is a cursor position in a subject's session list.
type Page struct {
	// After is the opaque cursor returned by the previous page; empty for the first page.
	After string
	Limit int
}

// Store keeps sessions, revocation marks and cut-offs. Every key it writes expires on its own
// (nothing outlives its session) and every multi-key update is atomic. CreateSession, RotateRefresh
// and CheckAccess are one network round trip each (a pipeline at most), since they are on the hot
// path. Backend failures are returned wrapped in store.ErrUnavailable.
//
// Session identifiers are made by NewSessionID and carry a tag derived from (tenant, subject), so
// that a backend can co-locate every key of one subject (SessionTag). Callers pass identifiers that
// came from signed tokens or from callers; backends must treat a malformed one as unknown.
type Store interface {
	// CreateSession stores a new session, expiring at s.ExpiresAt, and indexes it under its subject.
	CreateSession(ctx context.Context, s *Session) error
	// RotateRefresh performs one refresh attempt atomically: exactly one of several concurrent
	// attempts with the same token gets Rotated. It reports RotateInvalid when the session was
	// created before the subject's or the tenant's cut-off (a backend may rotate before it learns of
	// the tenant cut-off: the session is dead either way).
	RotateRefresh(ctx context.Context, req RotateRequest) (RotateResult, error)
	// CheckAccess reads the session, the jti's revocation mark and both cut-offs.
	CheckAccess(ctx context.Context, tenant, sessionID, jti string) (AccessState, error)
	// GetSession returns a live session of the tenant, or store.ErrNotFound.
	GetSession(ctx context.Context, tenant, sessionID string) (*Session, error)
	// RevokeToken marks a jti of a live session of the tenant revoked until the given time (when the
	// token expires), with its announcement pending. For an unknown session nothing is written and
	// Announce reports an earlier mark of the tenant whose announcement is still pending.
	RevokeToken(ctx context.Context, tenant, sessionID, jti string, until time.Time) (RevokeOutcome, error)
	// EndSession ends a session of the tenant and, in the same atomic step, leaves in its place a
	// tombstone until the given time (when every access token of the session has expired) with the
	// end's announcement pending. For a session that is not there nothing is written and Announce
	// reports a tombstone of the tenant whose announcement is still pending.
	EndSession(ctx context.Context, tenant, sessionID string, until time.Time) (RevokeOutcome, error)
	// Announced records that the revocation of jti, or the end of the session when jti is "", was
	// announced to the watchers, so that repeating it announces nothing.
	Announced(ctx context.Context, tenant, sessionID, jti string) error
	// DeleteSession ends a session of the tenant, leaving nothing in its place. It reports whether
	// one was deleted.
	DeleteSession(ctx context.Context, tenant, sessionID string) (bool, error)
	// SetSubjectCutoff records that no session of the subject created at or before at is valid
	// (EndedBy). The mark
	// expires after ttl (by then every such session has expired anyway). A later cut-off wins; an
	// earlier one never moves it back.
	SetSubjectCutoff(ctx context.Context, tenant, subject string, at time.Time, ttl time.Duration) error
	// SetTenantCutoff is SetSubjectCutoff for every subject of the tenant.
	SetTenantCutoff(ctx context.Context, tenant string, at time.Time, ttl time.Duration) error
	// ListSessions returns the subject's live sessions newest first, skipping sessions ended by a
	// subject or tenant cut-off, and the cursor of the next page ("" when there is none). A page
	// may be short, even empty, and have a cursor: a backend bounds the work of one call rather
	// than read on past sessions that ended. A cursor that this list did not return (malformed, or
	// of another subject's list: DecodeSubjectCursor) is an error wrapping ErrInvalidArgument.
	ListSessions(ctx context.Context, tenant, subject string, now time.Time, p Page) ([]*Session, string, error)
	// Ping checks that the backend answers.
	Ping(ctx context.Context) error
}
