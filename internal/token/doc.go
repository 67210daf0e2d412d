// Package token is the domain of the authority: sessions and the access and refresh tokens that
// point at them. It issues, refreshes (with rotation, an idempotent retry window and reuse
// detection), verifies with introspection semantics, and revokes. It owns the Store and Keys
// interfaces it needs, takes its clock as a function, and knows nothing of gRPC.
//
// Access tokens are JWTs (`typ: at+jwt`) signed with the tenant's signing key. Refresh tokens are
// JWTs (`typ: rt+jwt`) signed with HS256 under the tenant's server-only refresh key; they are
// deterministic in (session, generation, rotation time), so a retry within the grace window gets
// the very token the winning refresh returned without the store keeping it, and the store keeps
// only its hash.
package token
