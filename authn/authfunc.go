package authn

import (
	"context"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxTokenLen bounds the tokens a verifier looks at, as the authority does.
const maxTokenLen = 8 << 10

// AuthFunc returns an auth.AuthFunc for go-grpc-middleware v2's auth interceptors (unary and
// stream) that enforces p with tokens checked by v. For each call it:
//
//   - lets public methods through without looking for a token;
//   - refuses methods p denies with PermissionDenied;
//   - reads exactly one `authorization: Bearer <token>` header (scheme case-insensitive) and
//     answers Unauthenticated when it is missing or malformed;
//   - verifies the token with v: Unauthenticated when it is invalid, expired or revoked,
//     PermissionDenied when it is for another audience, Unavailable when v cannot tell;
//   - answers PermissionDenied when the token lacks a scope the method requires, or is delegated
//     (obtained by token exchange) where p refuses delegated tokens, or is not delegated (or by
//     another actor) where p requires them;
//   - otherwise places the claims in the context (see ClaimsFromContext).
//
// The method name comes from grpc.Method, so the AuthFunc works only inside a server interceptor.
// Public methods are also meant to be skipped before the interceptor runs, with p.Matcher and the
// selector package; UnaryServerInterceptor and StreamServerInterceptor wire both.
//
// A service implementing auth.ServiceAuthFuncOverride replaces this function for its methods, as
// the auth package documents; do not implement it unless that is the intent.
func AuthFunc(v Verifier, p Policy) auth.AuthFunc {
	cp := p.compile()
	return func(ctx context.Context) (context.Context, error) {
		method, ok := grpc.Method(ctx)
		if !ok {
			return nil, status.Error(codes.Internal, "authn: no method name in the context; use the AuthFunc in a server interceptor")
		}
		r := cp.rule(method)
		switch {
		case r.public:
			return ctx, nil
		case r.deny:
			return nil, status.Errorf(codes.PermissionDenied, "method %s is not open to any token", method)
		}
		tok, err := BearerToken(ctx)
		if err != nil {
			return nil, err
		}
		claims, err := v.Verify(ctx, tok)
		if err != nil {
			return nil, StatusError(ctx, err)
		}
		for _, s := range r.scopes {
			if !claims.HasScope(s) {
				return nil, status.Errorf(codes.PermissionDenied, "token lacks scope %q, which %s requires", s, method)
			}
		}
		if err := r.checkDelegation(method, claims); err != nil {
			return nil, err
		}
		return ContextWithClaims(ctx, claims), nil
	}
}

// BearerToken returns the token of the single `authorization: Bearer <token>` header of an
// incoming call, or an Unauthenticated status saying what is wrong with the header (without
// echoing it).
func BearerToken(ctx context.Context) (string, error) {
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	switch len(vals) {
	case 0:
		return "", status.Error(codes.Unauthenticated, `missing bearer token: send the metadata "authorization: Bearer <access token>"`)
	case 1:
	default:
		return "", status.Error(codes.Unauthenticated, "more than one authorization header")
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", status.Error(codes.Unauthenticated, `authorization header must be "Bearer <access token>"`)
	}
	switch {
	case tok == "" || strings.ContainsAny(tok, " \t"):
		return "", status.Error(codes.Unauthenticated, `authorization header must be "Bearer <access token>" with a single token`)
	case len(tok) > maxTokenLen:
		return "", status.Errorf(codes.Unauthenticated, "bearer token is longer than %d bytes", maxTokenLen)
	}
	return tok, nil
}

// UnaryServerInterceptor returns the unary interceptor that enforces p with v: go-grpc-middleware's
// auth interceptor around AuthFunc, wrapped in a selector that skips p's public methods.
func UnaryServerInterceptor(v Verifier, p Policy) grpc.UnaryServerInterceptor {
	return selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(AuthFunc(v, p)), p.Matcher())
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming methods.
func StreamServerInterceptor(v Verifier, p Policy) grpc.StreamServerInterceptor {
	return selector.StreamServerInterceptor(auth.StreamServerInterceptor(AuthFunc(v, p)), p.Matcher())
}
