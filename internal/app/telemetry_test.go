package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// scrape returns the text exposition of /metrics.
func scrape(t *testing.T, httpAddr string) string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

// TestMetricsExposed makes a few RPCs against Redis, a revocation watched, and finds every metric
// family of docs/observability.md in /metrics, with the values those calls imply.
func TestMetricsExposed(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	r, httpAddr := startWith(t, cfg, nil, func(log *slog.Logger) (*App, error) { return New(cfg, log) })
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	ctx := withKey(r.devKey)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ts.WatchRevocations(wctx, &tokenauthorityv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetKind() != tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED {
		t.Fatalf("first message: %v %v, want the live marker", m, err)
	}
	issued := must(ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	must(ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: issued.GetAccessToken()}))
	must(ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: "a.b.c"}))
	must(ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: issued.GetRefreshToken()}))
	must(ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: issued.GetSessionId()}}))
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetKind() == tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION {
			break
		}
	}

	// The lag is observed after the send returns: wait for it rather than race it.
	var text string
	for deadline := time.Now().Add(5 * time.Second); ; {
		text = scrape(t, httpAddr)
		if strings.Contains(text, "tokenauthority_revocation_lag_seconds_count 1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	families := map[string]string{
		// Ours.
		"tokenauthority_tokens_issued_total":          "counter",
		"tokenauthority_refreshes_total":              "counter",
		"tokenauthority_refresh_reuse_detected_total": "counter",
		"tokenauthority_revocations_total":            "counter",
		"tokenauthority_verifications_total":          "counter",
		"tokenauthority_store_duration_seconds":       "histogram",
		"tokenauthority_store_errors_total":           "counter",
		"tokenauthority_revocation_watchers":          "gauge",
		"tokenauthority_revocation_lag_seconds":       "histogram",
		"tokenauthority_signing_key_age_seconds":      "gauge",
		"tokenauthority_sealed_records":               "gauge",
		// go-grpc-middleware's.
		"grpc_server_started_total":      "counter",
		"grpc_server_handled_total":      "counter",
		"grpc_server_msg_received_total": "counter",
		"grpc_server_msg_sent_total":     "counter",
		"grpc_server_handling_seconds":   "histogram",
		// The Go runtime's and the process's.
		"go_goroutines":             "gauge",
		"process_cpu_seconds_total": "counter",
	}
	for name, typ := range families {
		if !strings.Contains(text, fmt.Sprintf("# TYPE %s %s\n", name, typ)) {
			t.Errorf("/metrics has no %s %s", typ, name)
		}
	}
	for _, line := range []string{
		"tokenauthority_tokens_issued_total 1",
		`tokenauthority_refreshes_total{outcome="rotated"} 1`,
		`tokenauthority_verifications_total{reason="active"} 1`,
		`tokenauthority_verifications_total{reason="malformed"} 1`,
		`tokenauthority_revocations_total{kind="session"} 1`,
		"tokenauthority_revocation_watchers 1",
		"tokenauthority_revocation_lag_seconds_count 1",
		`tokenauthority_sealed_records{key="previous"} 0`,
		`tokenauthority_store_errors_total{op="evalsha"} 0`,
		`grpc_server_handled_total{grpc_code="OK",grpc_method="IssueToken",grpc_service="tokenauthority.v1.TokenService",grpc_type="unary"} 1`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("/metrics has no line %q", line)
		}
	}
	if !strings.Contains(text, `tokenauthority_signing_key_age_seconds{algorithm="EdDSA"} `) {
		t.Error("/metrics has no age of the development tenant's EdDSA key")
	}
	if !strings.Contains(text, `tokenauthority_store_duration_seconds_count{op="evalsha"} `) {
		t.Error("/metrics times no script call")
	}
	// No series names a tenant: their number is not the callers' to grow.
	if strings.Contains(text, `tenant="`) {
		t.Error("a metric has a tenant label")
	}
}

// TestTracing checks that with tracing on an RPC makes a server span named after its method, whose
// store calls are its child spans, and that no span carries a credential; with tracing off, the
// same calls make no span at all.
func TestTracing(t *testing.T) {
	for _, mode := range []string{config.TracingOTLP, config.TracingOff} {
		t.Run(mode, func(t *testing.T) {
			srv := redistest.Start(t)
			cfg := testConfig(t, srv.URL())
			cfg.Tracing = mode
			exp := tracetest.NewInMemoryExporter()
			r, _ := startWith(t, cfg, nil, func(log *slog.Logger) (*App, error) {
				return newApp(cfg, log, sdktrace.NewSimpleSpanProcessor(exp))
			})
			ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
			issued := must(ts.IssueToken(withKey(r.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))

			if mode == config.TracingOff {
				if spans := exp.GetSpans(); len(spans) != 0 {
					t.Fatalf("tracing off: %d spans, the first %q", len(spans), spans[0].Name)
				}
				return
			}
			// The server span ends after the response is sent: wait for it.
			const method = "tokenauthority.v1.TokenService/IssueToken"
			var server *tracetest.SpanStub
			var spans tracetest.SpanStubs
			for deadline := time.Now().Add(5 * time.Second); server == nil && time.Now().Before(deadline); {
				spans = exp.GetSpans()
				for i := range spans {
					if spans[i].Name == method && spans[i].SpanKind == trace.SpanKindServer {
						server = &spans[i]
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			if server == nil {
				t.Fatalf("no server span %q among %d spans", method, len(spans))
			}
			children := 0
			for _, s := range spans {
				if s.Parent.SpanID() == server.SpanContext.SpanID() && s.SpanKind == trace.SpanKindClient {
					children++
				}
				for _, kv := range s.Attributes {
					if kv.Key == "db.statement" {
						t.Errorf("span %q records the Redis command's arguments", s.Name)
					}
					v := kv.Value.String()
					for _, secret := range []string{r.devKey, r.master, issued.GetAccessToken(), issued.GetRefreshToken()} {
						if len(v) >= 20 && strings.Contains(secret, v) || strings.Contains(v, secret) {
							t.Errorf("span %q attribute %s carries a credential", s.Name, kv.Key)
						}
					}
				}
			}
			if children == 0 {
				t.Fatalf("the server span has no Redis child span among %d spans", len(spans))
			}
			for _, s := range spans {
				if strings.HasPrefix(s.Name, "grpc.health.v1.Health/") {
					t.Errorf("a health check was traced")
				}
			}
		})
	}
}
