// Package app wires the authority together: it picks the store (in-memory by default in
// development, Redis otherwise), bootstraps the development tenant, builds the domain services and
// the gRPC and HTTP servers, reports readiness from the store, and stops everything together.
package app
