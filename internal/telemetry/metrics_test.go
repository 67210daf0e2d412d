package telemetry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/telemetry"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

func newMetrics(t *testing.T, src telemetry.Sources) (*telemetry.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg, src)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// gather returns the value of each series of reg: a counter's or gauge's value, a histogram's
// sample count; keyed by name and label values ("name/value1/value2").
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = mt.GetCounter().GetValue() + mt.GetGauge().GetValue() + float64(mt.GetHistogram().GetSampleCount())
		}
	}
	return out
}

// series counts the series of the family name in values.
func series(values map[string]float64, name string) int {
	n := 0
	for k := range values {
		if k == name || strings.HasPrefix(k, name+"/") {
			n++
		}
	}
	return n
}

func TestObserverCounts(t *testing.T) {
	m, reg := newMetrics(t, telemetry.Sources{})
	m.Issued()
	m.Issued()
	m.Refreshed(store.Rotated)
	m.Refreshed(store.RotateRetry)
	m.Refreshed(store.RotateReuse)
	m.Refreshed(store.RotateInvalid)
	m.Refreshed(store.RotateOutcome(99)) // ignored
	m.Verified(token.ReasonNone)
	m.Verified(token.ReasonExpired)
	m.Verified(token.Reason(99)) // ignored
	m.Revoked(revocation.KindToken)
	m.Revoked(revocation.KindKeyPublished)
	m.Revoked(revocation.Kind(0)) // ignored
	m.RevocationDelivered(20 * time.Millisecond)
	m.RevocationDelivered(-time.Second) // a clock behind the writer's: counted as no lag

	values := gather(t, reg)
	for key, want := range map[string]float64{
		"tokenauthority_tokens_issued_total":                    2,
		"tokenauthority_refreshes_total/rotated":                1,
		"tokenauthority_refreshes_total/retry":                  1,
		"tokenauthority_refreshes_total/reuse":                  1,
		"tokenauthority_refreshes_total/invalid":                1,
		"tokenauthority_refresh_reuse_detected_total":           1,
		"tokenauthority_verifications_total/active":             1,
		"tokenauthority_verifications_total/expired":            1,
		"tokenauthority_verifications_total/insufficient_scope": 0,
		"tokenauthority_revocations_total/token":                1,
		"tokenauthority_revocations_total/key_published":        1,
		"tokenauthority_revocations_total/tenant_cutoff":        0,
		"tokenauthority_revocation_lag_seconds":                 2,
	} {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	// Every label value exists from the start, at zero: a rate over a series that appears only on
	// its first event misses that event.
	for name, n := range map[string]int{
		"tokenauthority_verifications_total": len(token.Reasons()) + 1,
		"tokenauthority_revocations_total":   6,
		"tokenauthority_refreshes_total":     4,
	} {
		if got := series(values, name); got != n {
			t.Errorf("%s: %d series, want %d", name, got, n)
		}
	}
}

// TestObserverAllocatesNothing guards the hot paths: a report is a counter increment.
func TestObserverAllocatesNothing(t *testing.T) {
	m, _ := newMetrics(t, telemetry.Sources{})
	var obs token.Observer = m
	allocs := testing.AllocsPerRun(1000, func() {
		obs.Issued()
		obs.Refreshed(store.Rotated)
		obs.Verified(token.ReasonRevoked)
		obs.Revoked(revocation.KindSession)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per report, want 0", allocs)
	}
}

func TestScrapeTimeGauges(t *testing.T) {
	watches := 3
	ages := map[keys.Algorithm]time.Duration{keys.EdDSA: 90 * time.Second, keys.RS256: time.Hour}
	var sealed *keys.SealStats
	_, reg := newMetrics(t, telemetry.Sources{
		Watches:        func() int { return watches },
		SigningKeyAges: func() map[keys.Algorithm]time.Duration { return ages },
		SealedRecords: func() (keys.SealStats, bool) {
			if sealed == nil {
				return keys.SealStats{}, false
			}
			return *sealed, true
		},
	})
	if n := series(gather(t, reg), "tokenauthority_sealed_records"); n != 0 {
		t.Errorf("%d sealed-record series before the first pass, want none", n)
	}
	sealed = &keys.SealStats{Current: 5, Previous: 2, Unknown: 1, Resealed: 4}
	values := gather(t, reg)
	for key, want := range map[string]float64{
		"tokenauthority_revocation_watchers":           3,
		"tokenauthority_signing_key_age_seconds/EdDSA": 90,
		"tokenauthority_signing_key_age_seconds/RS256": 3600,
		"tokenauthority_sealed_records/current":        5,
		"tokenauthority_sealed_records/previous":       2,
		"tokenauthority_sealed_records/unknown":        1,
	} {
		if got, ok := values[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	watches, ages = 0, nil
	values = gather(t, reg)
	if got, ok := values["tokenauthority_revocation_watchers"]; !ok || got != 0 {
		t.Errorf("watchers after the streams ended = %v (present %v)", got, ok)
	}
	if n := series(values, "tokenauthority_signing_key_age_seconds"); n != 0 {
		t.Errorf("%d key age series without cached keys", n)
	}
}

// TestRedisHook sends commands through an instrumented client of a real Redis: each is timed under
// its name, a pipeline under "pipeline", and only real failures count as errors.
func TestRedisHook(t *testing.T) {
	srv := redistest.Start(t)
	m, reg := newMetrics(t, telemetry.Sources{})
	opts, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	client.AddHook(m.RedisHook())
	ctx := context.Background()

	if err := client.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := client.Get(ctx, "missing").Err(); err != redis.Nil { //nolint:errorlint // go-redis returns redis.Nil itself
		t.Fatalf("get missing: %v", err)
	}
	if err := client.Do(ctx, "nosuchcommand").Err(); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	if _, err := client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "missing") // a miss first must not hide the failure after it
		p.Do(ctx, "nosuchcommand")
		return nil
	}); err == nil {
		t.Fatal("the pipeline succeeded")
	}
	if _, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "k")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A script the server does not have yet: NOSCRIPT, then EVAL, with no error counted.
	if err := redis.NewScript(`return 1`).Run(ctx, client, nil).Err(); err != nil {
		t.Fatal(err)
	}

	values := gather(t, reg)
	for op, want := range map[string]float64{"set": 1, "get": 1, "nosuchcommand": 1, "pipeline": 2, "evalsha": 1, "eval": 1} {
		if got := values["tokenauthority_store_duration_seconds/"+op]; got != want {
			t.Errorf("op %q timed %v times, want %v (all: %v)", op, got, want, values)
		}
	}
	// The connection's set-up (HELLO, CLIENT SETINFO, which Redis before 7.2 refuses) is no store call.
	for _, op := range []string{"hello", "client"} {
		if _, ok := values["tokenauthority_store_duration_seconds/"+op]; ok {
			t.Errorf("the handshake command %q was timed", op)
		}
	}
	for op, want := range map[string]float64{"set": 0, "get": 0, "nosuchcommand": 1, "pipeline": 1, "evalsha": 0, "eval": 0} {
		if got := values["tokenauthority_store_errors_total/"+op]; got != want {
			t.Errorf("op %q: %v errors, want %v", op, got, want)
		}
	}
}
