// Package extauthz answers Envoy's external authorization API
// (envoy.service.auth.v3.Authorization/Check) with this authority's tokens, so that a service in
// any language behind Envoy, Istio, Envoy Gateway or Contour gets the checks the authn interceptors
// give a Go service: signature, expiry, revocation, audience and scopes.
//
// One implementation serves two placements, which differ only in the authn.Verifier they are
// given: the authority itself (strict, every answer reflects the store, like VerifyToken) and the
// `tokenauthority extauthz` sidecar (authn.NewLocal: keys in memory, revocations pushed, an answer
// costs no network hop, fail closed past the staleness bound). Envoy does not cache ext_authz
// answers, which is why the sidecar answers from memory.
//
// A per-route Policy, loaded from a JSON file and validated strictly, maps a host and path prefix,
// or a gRPC method, to the audience and scopes a token needs. A request no route covers is refused.
package extauthz
