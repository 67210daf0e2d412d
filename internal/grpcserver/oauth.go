package grpcserver

import (
	"context"
	"time"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// OAuth runs VerifyToken and RevokeToken for a credential presented over HTTP (RFC 7662
// introspection, RFC 7009 revocation): the same authentication and method policy, the same rate
// limit buckets (one per API key and method, whichever port the calls arrive on), the same store
// budget and the same answers. Errors are gRPC statuses, which the HTTP server maps.
type OAuth struct {
	tokens       *tokenService
	authorize    func(ctx context.Context, method, credential string) (context.Context, error)
	storeTimeout time.Duration
}

func (o *OAuth) call(ctx context.Context, method, credential string) (context.Context, error) {
	return o.authorize(withStoreBudget(ctx, o.storeTimeout), method, credential)
}

// Introspect answers VerifyToken for tok with the caller of credential.
func (o *OAuth) Introspect(ctx context.Context, credential, tok string) (*tokenauthorityv1.VerifyTokenResponse, error) {
	ctx, err := o.call(ctx, tokenauthorityv1.TokenService_VerifyToken_FullMethodName, credential)
	if err != nil {
		return nil, err
	}
	return o.tokens.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: tok})
}

// Revoke answers RevokeToken for tok with the caller of credential.
func (o *OAuth) Revoke(ctx context.Context, credential, tok string) error {
	ctx, err := o.call(ctx, tokenauthorityv1.TokenService_RevokeToken_FullMethodName, credential)
	if err != nil {
		return err
	}
	_, err = o.tokens.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: tok}})
	return err
}
