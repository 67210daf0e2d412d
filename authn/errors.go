package authn

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The error classes. Every error a Verifier returns matches exactly one of them with errors.Is,
// and the AuthFunc maps each class to one status code.
var (
	// ErrInvalidToken is the class of a token that is missing, malformed, forged, expired, not
	// yet valid, of the wrong type or issuer, or revoked. It maps to codes.Unauthenticated.
	ErrInvalidToken = errors.New("invalid token")
	// ErrPermissionDenied is the class of a genuine token that does not grant this call: it is
	// for another audience, or lacks a scope. It maps to codes.PermissionDenied.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnavailable is the class of a token that could not be checked: the authority did not
	// answer, or the revocation stream has been down longer than the staleness bound. A verifier
	// never accepts a token then (it fails closed). It maps to codes.Unavailable.
	ErrUnavailable = errors.New("token verification unavailable")
)

// The specific reasons. Each matches its class with errors.Is as well as itself.
var (
	// ErrMalformed: the token is not a well-formed compact JWS with the expected claims.
	ErrMalformed = classed("malformed token", ErrInvalidToken)
	// ErrUnsupportedAlgorithm: the token's alg is not its key's algorithm.
	ErrUnsupportedAlgorithm = classed("unsupported token algorithm", ErrInvalidToken)
	// ErrUnknownKey: the token's kid is not a key of the tenant.
	ErrUnknownKey = classed("unknown signing key", ErrInvalidToken)
	// ErrBadSignature: the signature does not verify.
	ErrBadSignature = classed("bad token signature", ErrInvalidToken)
	// ErrWrongType: the token is not an access token (typ is not at+jwt), a refresh token say.
	ErrWrongType = classed("not an access token", ErrInvalidToken)
	// ErrExpired: the token has expired.
	ErrExpired = classed("token expired", ErrInvalidToken)
	// ErrNotYetValid: the token's nbf or iat is in the future.
	ErrNotYetValid = classed("token not yet valid", ErrInvalidToken)
	// ErrWrongIssuer: the token's iss is not the configured issuer.
	ErrWrongIssuer = classed("wrong token issuer", ErrInvalidToken)
	// ErrRevoked: the token, its session, its subject or its tenant was revoked, or its signing
	// key was withdrawn.
	ErrRevoked = classed("token revoked", ErrInvalidToken)
	// ErrCutOff: the token was issued at or before a cut-off of its subject or tenant ("log
	// everyone out"). It also matches ErrRevoked.
	ErrCutOff error = &classedError{msg: "token cut off: every session of its subject or tenant was ended", class: ErrInvalidToken, also: ErrRevoked}
	// ErrCertificateMismatch: the token is bound to a client certificate (cnf) that the call's
	// connection did not present.
	ErrCertificateMismatch = classed("token bound to another client certificate", ErrInvalidToken)
	// ErrWrongAudience: the token is not meant for this service.
	ErrWrongAudience = classed("token not issued for this audience", ErrPermissionDenied)
	// ErrInsufficientScope: the token lacks a scope the method requires.
	ErrInsufficientScope = classed("token lacks a required scope", ErrPermissionDenied)
	// ErrStale: the revocation stream has been down longer than the staleness bound, or has not
	// caught up yet.
	ErrStale = classed("revocation stream not live", ErrUnavailable)
	// ErrCredentialsRejected: the authority refused this service's own API key (unknown, deleted,
	// or without the role the call needs), so no token can be checked. Retrying does not help: fix
	// the key.
	ErrCredentialsRejected = classed("the authority refused this service's API key", ErrUnavailable)
)

// classedError is a sentinel that also matches its class. Sentinels are returned as they are on
// the hot path, so rejecting a token allocates nothing.
type classedError struct {
	msg   string
	class error
	also  error // a second sentinel it matches, or nil
}

func classed(msg string, class error) error { return &classedError{msg: msg, class: class} }

func (e *classedError) Error() string { return e.msg }
func (e *classedError) Is(target error) bool {
	return target == e.class || (e.also != nil && target == e.also)
}

// unavailableError wraps the cause of an ErrUnavailable, for logs; the AuthFunc never shows it to
// the caller.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string {
	return "token verification unavailable: " + e.cause.Error()
}
func (e *unavailableError) Unwrap() error        { return e.cause }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

func unavailable(cause error) error { return &unavailableError{cause: cause} }

// StatusError converts an error of a Verifier into the gRPC status the AuthFunc returns: the class
// picks the code, and the message names the reason without echoing the token or the internals
// behind an unavailable answer. A cancelled or expired ctx gives Canceled or DeadlineExceeded.
func StatusError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	var ce *classedError
	switch {
	case errors.Is(err, ErrPermissionDenied):
		if errors.As(err, &ce) {
			return status.Error(codes.PermissionDenied, ce.msg)
		}
		return status.Error(codes.PermissionDenied, "permission denied")
	case errors.Is(err, ErrInvalidToken):
		if errors.As(err, &ce) {
			return status.Error(codes.Unauthenticated, ce.msg)
		}
		return status.Error(codes.Unauthenticated, "invalid token")
	case errors.Is(err, ErrStale):
		return status.Error(codes.Unavailable, "token verification unavailable: the revocation stream is not live; retry later")
	}
	// ErrUnavailable and anything unexpected: fail closed, reveal nothing.
	return status.Error(codes.Unavailable, "token verification unavailable; retry later")
}

// rejected reports whether the authority refused the caller's own credentials.
func rejected(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}
