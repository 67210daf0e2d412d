package authn

import "context"

// Verifier checks an access token and returns its claims. Every error it returns matches exactly
// one of ErrInvalidToken, ErrPermissionDenied and ErrUnavailable; StatusError turns it into the
// status a gRPC method returns.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Claims, error)
}

var (
	_ Verifier = (*Local)(nil)
	_ Verifier = (*Remote)(nil)
)
