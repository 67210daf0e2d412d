// Package redis is the Redis backend of the token authority's storage: it implements token.Store
// (sessions, refresh rotation, revocation marks, subject and tenant cut-offs) and tenant.Store
// (long-lived records such as tenants, API keys, principals and encrypted key sets).
//
// The package owns the key schema (keys.go) and the Lua scripts (scripts/*.lua) that make every
// multi-key update atomic. Every key a script touches shares one hash tag, so the store works
// unchanged on a Redis Cluster; calls that need keys of two slots pipeline one command per slot.
// Every key expires on its own except records, which live until deleted. It needs Redis 7.0 or
// later (PEXPIRETIME, SET ... PXAT).
package redis
