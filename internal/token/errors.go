package token

import (
	"errors"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Sentinel errors of the token domain. They are wrapped with %w and mapped to gRPC status codes in
// one place (grpcserver); messages added by wrapping must help the caller without echoing tokens.
var (
	// ErrInvalidArgument reports a request that can never succeed as sent. It is the store's sentinel,
	// so that a page token a store refuses and a request the domain refuses are one error.
	ErrInvalidArgument = store.ErrInvalidArgument
	// ErrInvalidRefreshToken reports a refresh token that is malformed, forged, expired, of another
	// tenant, or of a session that has ended.
	ErrInvalidRefreshToken = errors.New("invalid refresh token")
	// ErrRefreshReuse reports a rotated refresh token presented after the grace window; the session
	// has been revoked.
	ErrRefreshReuse = errors.New("refresh token reuse detected; session revoked")
	// ErrCertificateMismatch reports a token bound to a client certificate (RFC 8705) presented
	// over a connection without that certificate.
	ErrCertificateMismatch = errors.New("the token is bound to another client certificate")
	// ErrPermissionDenied reports a request outside the tenant's policy.
	ErrPermissionDenied = errors.New("permission denied")
)
