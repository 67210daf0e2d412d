package redis

import (
	"context"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

// TestSentinelConformance runs the conformance suites of the store and of the revocation log through a failover client of a
// Sentinel-managed master with a replica.
func TestSentinelConformance(t *testing.T) {
	s := redistest.StartSentinel(t)
	client := s.Client(t)
	flush := func(t *testing.T) {
		if err := client.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("FLUSHDB: %v", err)
		}
	}
	t.Run("Store", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, clock *storetest.Clock) storetest.Backend {
			flush(t)
			return inspected{Store: New(client, WithClock(clock.Now)), client: client}
		})
	})
	t.Run("Events", func(t *testing.T) {
		storetest.RunEvents(t, func(t *testing.T, clock *storetest.Clock) revocation.Log {
			flush(t)
			return NewEvents(client, clock.Now, storetest.EventsRetention, storetest.EventsCap)
		})
	})
}
