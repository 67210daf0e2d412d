package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
)

// fillEvents writes n live token events into the tenant's stream directly, in pipelined batches,
// as a flood of revocations would have left it, with their floor.
func fillEvents(t *testing.T, client goredis.UniversalClient, tenantID string, n int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	ms := now.Add(-30 * time.Minute).UnixMilli()
	expires := strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)
	const batch = 10_000
	for i := 0; i < n; i += batch {
		_, err := client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for j := i; j < min(i+batch, n); j++ {
				p.XAdd(ctx, &goredis.XAddArgs{Stream: eventsKey(tenantID), ID: strconv.FormatInt(ms, 10) + "-" + strconv.Itoa(j+1),
					Values: []string{eventKind, "1", eventValue, "filler-" + strconv.Itoa(j), eventCutoff, "0", eventExpires, expires}})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("fill the stream: %v", err)
		}
	}
	if err := client.Set(ctx, eventsFloorKey(tenantID), strconv.FormatInt(ms, 10)+"-1", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
}

// scriptMicros returns the mean time Redis spent per script call (EVALSHA) since the last reset.
func scriptMicros(t *testing.T, client goredis.UniversalClient) float64 {
	t.Helper()
	info, err := client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		stats, ok := strings.CutPrefix(line, "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
		}
	}
	t.Fatalf("no evalsha in INFO commandstats:\n%s", info)
	return 0
}

// TestEventsCostDoesNotGrowWithTheStream: an append, and a room check, cost Redis the same at 1k
// and at 100k live entries (the time Redis itself reports per call, the least of three rounds, so
// the machine's load matters little). A probe that walked the stream cost 0.17 ms at 1k entries
// and 13 ms at 100k.
func TestEventsCostDoesNotGrowWithTheStream(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	ctx := context.Background()
	now := time.Now()
	events := NewEvents(client, func() time.Time { return now }, time.Hour, 0)
	ev := revocation.Event{Kind: revocation.KindToken, Value: "j", ExpiresAt: now.Add(time.Hour)}
	const calls = 500
	// perCall returns the Redis time per script call of n calls of f.
	perCall := func(f func() error) float64 {
		if err := client.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for range calls {
			if err := f(); err != nil {
				t.Fatal(err)
			}
		}
		return scriptMicros(t, client)
	}
	sizes := map[string]int{"small": 1_000, "large": 100_000}
	appendUS, roomUS := map[string]float64{}, map[string]float64{}
	for tenantID, n := range sizes {
		fillEvents(t, client, tenantID, n, now)
		if err := events.Append(ctx, tenantID, ev); err != nil { // Loads the script.
			t.Fatal(err)
		}
	}
	for range 3 {
		for tenantID := range sizes {
			a := perCall(func() error { return events.Append(ctx, tenantID, ev) })
			r := perCall(func() error {
				if err := events.Room(ctx, tenantID); err != nil && !errors.Is(err, revocation.ErrFull) {
					return err
				}
				return nil
			})
			if cur, ok := appendUS[tenantID]; !ok || a < cur {
				appendUS[tenantID] = a
			}
			if cur, ok := roomUS[tenantID]; !ok || r < cur {
				roomUS[tenantID] = r
			}
		}
	}
	t.Logf("Redis time per call: append %.1f us at 1k entries, %.1f us at 100k; room check %.1f us, %.1f us",
		appendUS["small"], appendUS["large"], roomUS["small"], roomUS["large"])
	// Generous: the walk this replaces made the ratio about 75.
	const bound = 4
	if appendUS["large"] > bound*appendUS["small"] {
		t.Errorf("an append costs %.1f us at 100k entries, over %d times its %.1f us at 1k", appendUS["large"], bound, appendUS["small"])
	}
	if roomUS["large"] > bound*roomUS["small"] {
		t.Errorf("a room check costs %.1f us at 100k entries, over %d times its %.1f us at 1k", roomUS["large"], bound, roomUS["small"])
	}

	// For the record: once a flood's 100k events stop mattering, each append trims one batch.
	later := now.Add(2 * time.Hour)
	expired := NewEvents(client, func() time.Time { return later }, 3*time.Hour, 0)
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := expired.Append(ctx, "large", revocation.Event{Kind: revocation.KindToken, Value: "j", ExpiresAt: later.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Redis time per append trimming %d expired entries: %.1f us", revocation.TrimBatch, scriptMicros(t, client))
}
