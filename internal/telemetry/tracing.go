package telemetry

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"google.golang.org/grpc/stats"
)

// ServiceName is the service.name of the spans, unless OTEL_SERVICE_NAME or
// OTEL_RESOURCE_ATTRIBUTES says otherwise.
const ServiceName = "tokenauthority"

// healthService is the gRPC health service, whose probes are not traced: an orchestrator calls it
// every few seconds, and its spans would bury the others.
const healthService = "/grpc.health.v1.Health/"

// Tracing is the OpenTelemetry tracing of the RPCs and the store calls. It is made only when
// tracing is on: when it is off, nothing of OpenTelemetry is installed.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// NewOTLPExporter returns an exporter of spans over OTLP/gRPC, configured by the standard
// variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_INSECURE, ...). It connects lazily: an
// unreachable collector delays no start-up and fails no call; spans are dropped instead.
func NewOTLPExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// NewTracing returns tracing whose spans go to p. The sampler follows OTEL_TRACES_SAMPLER
// (default: sample what the caller sampled, and every call that comes without a trace).
func NewTracing(ctx context.Context, p sdktrace.SpanProcessor) (*Tracing, error) {
	// The service name first, so that OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override it.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	return &Tracing{tp: sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSpanProcessor(p))}, nil
}

// ServerHandler returns the gRPC stats handler that makes a server span of each call (health
// checks excepted). It takes the caller's trace from the W3C traceparent header. Messages are not
// recorded, neither their contents nor their sizes: requests carry tokens and secrets.
func (t *Tracing) ServerHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
		// RPC metrics are Prometheus's (grpc_server_*): none from OpenTelemetry.
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return !strings.HasPrefix(info.FullMethodName, healthService)
		}),
	)
}

// InstrumentRedis makes a client span of each command and pipeline that client sends. Spans name
// the commands but never carry their arguments, which hold token hashes and sealed keys.
func (t *Tracing) InstrumentRedis(client redis.UniversalClient) error {
	return redisotel.InstrumentTracing(client,
		redisotel.WithTracerProvider(t.tp),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false))
}

// Shutdown sends the spans still buffered and stops tracing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	return t.tp.Shutdown(ctx)
}
