package memory_test

import (
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(_ *testing.T, clock *storetest.Clock) storetest.Backend {
		return memory.New(clock.Now)
	})
}
