// Package telemetry owns the service's Prometheus metrics and its OpenTelemetry tracing: every
// metric is defined here, once, and the domain reports to it through small interfaces it owns
// (token.Observer), so that no other package depends on Prometheus to be measured.
//
// Metrics carry no tenant, subject or key label: tenant ids are unbounded, and a label per tenant
// would let one caller grow the series without limit. Per-tenant figures come from the audit log.
//
// Tracing is off unless asked for. When it is on, gRPC calls are traced by the otelgrpc stats
// handler and Redis commands by redisotel, neither recording payloads or command arguments, so no
// token, key or secret reaches a span.
package telemetry
