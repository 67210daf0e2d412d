// Package keys owns every tenant's signing material: access-token signing keys (EdDSA by default;
// ES256, RS256 and HS256 selectable), the server-only refresh-token key, their encryption at rest
// (AES-256-GCM under the key-encryption key, bound to the tenant by the associated data), and the
// JWKS that publishes the public halves. Key sets live in the store so that every replica shares
// them; each replica caches them in memory.
//
// # Lifecycle
//
// Every key carries three times, stored with it in the sealed set:
//
//   - PublishedAt: the key is in the JWKS from then on.
//   - ActivatesAt: the key signs from then on. The signer is always the newest key whose
//     ActivatesAt has come, so a key takes over on every replica when its time comes, without
//     another write.
//   - RetiredAt: the ActivatesAt of the key's successor, zero while it has none. A retired key
//     stays published and verifies for the retention (WithRetention, which must cover the longest
//     access-token lifetime plus the leeway); after that it is gone everywhere at once, and the
//     next write drops it from the set.
//
// Key sets written before these times existed open with every key published and active since its
// creation.
//
// Rotate publishes a new key at once and activates it after the pre-publish delay
// (WithPrePublish), so that verifiers caching the JWKS for no longer than the delay have the key
// before the first token it signs; the old key keeps signing meanwhile, and verifying for the
// retention after it. Nobody is logged out. Withdraw removes a key at once, for a key that may have
// leaked: every token it signed stops verifying. If no remaining key has started signing, a
// replacement of the same algorithm is published and signs at once.
//
// Both are atomic updates of the tenant's sealed record (Store.UpdateRecord, a compare-and-swap in
// the store): a change is applied to the set as stored, and written only if nobody wrote it
// meanwhile, else applied again to what the other writer stored. Of two racing writers one wins
// and the other builds on its result, so no change is lost and a withdrawn key never comes back.
//
// Rotate, Withdraw and RotateRefreshKey each write an audit event (WithAudit) naming the kids
// concerned: a key's id, never its material.
//
// KeyStatuses names each key's state for operators: published (in the JWKS, not signing yet),
// active (the signer), retiring (verifying within the retention) or withdrawn. A set remembers
// its withdrawn keys, without their key material, for the retention after the withdrawal.
//
// The code is laid out by concern: keys.go (types), keyset.go (a set and its order), manager.go
// (the cache and reads), lifecycle.go (rotation, withdrawal, refresh), status.go (the states
// operators see), seal.go (encryption at rest), kek.go (the ring of key-encryption keys),
// reseal.go (re-sealing under the current one), generate.go (new keys), refresh.go (the
// refresh-token key), jwks.go and age.go.
//
// Each replica answers from its cache. Refresh re-reads every cached set, so that a rotation or
// withdrawal elsewhere takes effect within the refresh period; an unknown kid also makes
// VerificationKey re-read the set, at most once per reload interval (50 ms) per tenant, so that a key published
// elsewhere is found at once.
package keys
