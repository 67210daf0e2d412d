// Package keys owns every tenant's signing material: access-token signing keys (EdDSA by default;
// ES256, RS256 and HS256 selectable), the server-only refresh-token key, their encryption at rest
// (AES-256-GCM under the key-encryption key, bound to the tenant by the associated data), and the
// JWKS that publishes the public halves. Key sets live in the store so that every replica shares
// them; each replica caches them in memory.
package keys
