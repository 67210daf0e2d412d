// Package memory is the in-memory storage backend, the default for development and tests: it
// implements token.Store and tenant.Store with exactly the semantics of the Redis backend, in one
// process and without persistence.
//
// Entries expire by the store's clock: an expired entry is invisible at once, removed when it is
// next touched, and swept with every other expired entry after every few hundred writes, so memory
// stays bounded without a background goroutine.
package memory
