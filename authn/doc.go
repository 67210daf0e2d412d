// Package authn protects a service's gRPC methods with access tokens of the token authority, and
// attaches such tokens to a client's calls.
//
// # Verifying
//
// A Verifier checks a token and returns its Claims. Two kinds exist:
//
//   - Local (NewLocal) verifies signatures in-process against the tenant's public keys, fetched
//     with ListPublicKeys (again, rate-limited, when a token names an unknown kid), and applies the
//     revocations pushed by WatchRevocations to a deny-set: revoked tokens, sessions, subject and
//     tenant cut-offs, withdrawn keys. Entries leave the deny-set once the tokens they cover have
//     expired. When the revocation stream has been down longer than the staleness bound
//     (WithStalenessBound), every verification fails closed with ErrStale until the stream is back
//     and has replayed what was missed. Local mode needs public keys: an HS256 tenant cannot use it.
//   - Remote (NewRemote) asks the authority with VerifyToken and caches the answers briefly
//     (WithCacheTTL, never beyond the token's exp), optionally evicting them as revocation events
//     arrive (WithRevocationWatch). When the authority does not answer it fails closed with
//     ErrUnavailable.
//
// NewStatic is a local verifier over a fixed key set, without revocation; the authntest package
// uses it to let a service test itself without an authority.
//
// Every verifier checks that a token is an access token (typ at+jwt; a refresh token never passes),
// is signed by a key of the tenant with that key's algorithm, is within its validity (exp, nbf, iat,
// with a small leeway), and, when configured, names the issuer (WithIssuer) and the service's
// audience (WithAudience). Errors match one of three classes with errors.Is: ErrInvalidToken,
// ErrPermissionDenied and ErrUnavailable.
//
// A token bound to a client certificate (RFC 8705: `cnf` with `x5t#S256`) is accepted only on a
// call whose connection presented that certificate (mutual TLS; PresentedThumbprint), otherwise it
// is ErrCertificateMismatch (Unauthenticated). Behind a sidecar that terminates the mutual TLS, a
// service opts in with WithForwardedClientCert to take the certificate from the `Hash` of Envoy's
// x-forwarded-client-cert header instead. Remote mode sends the thumbprint to VerifyToken and
// caches answers per token and certificate.
//
// # Protecting methods
//
// AuthFunc is a go-grpc-middleware v2 auth.AuthFunc. It reads `authorization: Bearer <token>`,
// verifies it, enforces a Policy (public methods, scopes per full method name, and what to do with
// methods the policy does not list), and places the claims in the context, where handlers find them
// with ClaimsFromContext. Failures are Unauthenticated (no token, or a bad, expired or revoked one),
// PermissionDenied (a valid token without the method's scope or the service's audience) or
// Unavailable (verification impossible). Public methods are skipped before authentication by
// wrapping the interceptor in a selector with Policy.Matcher; UnaryServerInterceptor and
// StreamServerInterceptor do that wiring.
//
// The interceptors check a stream's token when the stream opens. A long-lived stream outlives
// revocations and expiry unless its handler verifies again from time to time (cmd/demo-orders
// does it every second with the same Verifier).
//
// # Connecting to the authority
//
// NewLocal takes the tenant's issuer from ListPublicKeys unless WithIssuer sets it. Its revocation
// stream reconnects on its own schedule (WithReconnectBackoff) and resets a *grpc.ClientConn's
// connection backoff before each attempt, so that a returning authority is found within that
// schedule rather than grpc's own (up to two minutes).
//
// # Calling protected methods
//
// A TokenSource is a credentials.PerRPCCredentials: it obtains a token with IssueToken (for a
// subject, or with a principal's credentials), attaches it to every call, and renews it with
// RefreshToken before it expires; concurrent calls share one renewal. With
// TokenRequest.BindClientCertificate, on a connection to the authority that presents the
// workload's client certificate, its tokens are bound to that certificate and renewed under it.
package authn
