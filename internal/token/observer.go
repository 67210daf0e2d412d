package token

import (
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Observer is told the outcome of each lifecycle operation, for metrics. It is called on the hot
// paths (Issue, Refresh, Verify), so its methods must be cheap, must not block, and must be safe
// for concurrent use. It receives no tenant, subject or token: what it counts carries no identity.
type Observer interface {
	// Issued is called once per session opened.
	Issued()
	// Refreshed is called once per refresh token presented whose fate was decided: Rotated,
	// RotateRetry, RotateReuse, or RotateInvalid (which includes tokens that fail their signature
	// or have expired). Malformed requests and store failures are not reported.
	Refreshed(outcome store.RotateOutcome)
	// Verified is called once per Verify answer: ReasonNone for an active token, the reason
	// otherwise. Calls that fail (an oversized token, a store that cannot answer) are not reported.
	Verified(reason Reason)
	// Revoked is called once per revocation recorded, by kind: a token, a session ended (by a
	// caller or by refresh-token reuse), a subject or tenant cut-off, a signing key published or
	// withdrawn.
	Revoked(kind revocation.Kind)
}

// nopObserver is the Observer of a Service configured without one.
type nopObserver struct{}

func (nopObserver) Issued()                       {}
func (nopObserver) Refreshed(store.RotateOutcome) {}
func (nopObserver) Verified(Reason)               {}
func (nopObserver) Revoked(revocation.Kind)       {}
