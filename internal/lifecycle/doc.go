// Package lifecycle is the tenant lifecycle: the domain workflow that spans the tenant service
// (internal/tenant), the key manager (internal/keys) and the token service (internal/token). A
// tenant is usable only with its signing keys and a first admin API key, and is gone only once its
// sessions are cut off, its record deleted and its keys removed; each of those packages owns one
// step, and this one owns their order and the promise that a creation is all-or-nothing.
//
// The admin service's CreateTenant and DeleteTenant call it, and so does the development
// bootstrap (internal/app), so that there is one way to make a tenant. It depends on small
// interfaces of its own, not on those packages' concrete types, and knows nothing of gRPC.
package lifecycle
