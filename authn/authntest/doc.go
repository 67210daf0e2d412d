// Package authntest mints access tokens in exactly the token authority's format, so that a service
// can test its authn-protected methods without an authority.
//
// An Issuer holds a signing key (Ed25519 unless told otherwise); Token mints tokens with options
// for every claim and for the broken cases a test needs (expired, not yet valid, another typ,
// another issuer or kid); Verifier returns an authn.Local over the Issuer's public key, which
// checks them as a service's local verifier would, with no network:
//
//	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
//	v := iss.Verifier()
//	srv := grpc.NewServer(
//		grpc.UnaryInterceptor(authn.UnaryServerInterceptor(v, policy)),
//	)
//	// ... call the server with iss.Token(authntest.Scopes("orders:read")) as the bearer token.
package authntest
