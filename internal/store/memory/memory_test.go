package memory_test

import (
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(_ *testing.T, clock *storetest.Clock) storetest.Backend {
		return memory.New(clock.Now)
	})
}

func TestEventsConformance(t *testing.T) {
	storetest.RunEvents(t, func(_ *testing.T, clock *storetest.Clock) revocation.Log {
		return memory.NewEvents(clock.Now, storetest.EventsRetention, storetest.EventsCap)
	})
}
