// Package tenant owns tenants (the isolation boundary: issuer, policy, keys and sessions of their
// own) and the credentials that act inside them: API keys with roles, and the master credential.
// Credentials are random, shown once, stored as SHA-256 hashes (they carry 256 bits of entropy, so a
// slow hash adds nothing) and compared in constant time. Each API key and principal created,
// rotated, given a secret or deleted is an audit event (WithAudit) that names it by its id, never
// by the value handed out. One issuer names one tenant: each issuer has a claim record in the
// store, made and released atomically there (issuer.go), so that two concurrent creations under
// one issuer cannot both succeed.
package tenant
