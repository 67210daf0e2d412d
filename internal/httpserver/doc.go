// Package httpserver serves the authority's HTTP side: liveness (/healthz), readiness (/readyz),
// Prometheus metrics (/metrics) and each tenant's JWKS (/.well-known/jwks.json?tenant=ID).
package httpserver
