package store

import (
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
