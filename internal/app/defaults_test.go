package app

import (
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/grpcserver"
)

// TestServerLimitDefaultsAgree: config repeats the defaults of the server's limits for its
// settings table (it does not import the server); the values it applies when nothing is set must
// stay grpcserver's.
func TestServerLimitDefaultsAgree(t *testing.T) {
	cfg, err := config.Parse(nil, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	for name, got := range map[string][2]int64{
		"watch recheck":            {int64(cfg.WatchRecheck), int64(grpcserver.DefaultWatchRecheck)},
		"max connection age":       {int64(cfg.MaxConnectionAge), int64(grpcserver.DefaultMaxConnectionAge)},
		"max connection age grace": {int64(cfg.MaxConnectionAgeGrace), int64(grpcserver.DefaultMaxConnectionAgeGrace)},
		"max public streams":       {int64(cfg.MaxPublicStreams), int64(grpcserver.DefaultMaxPublicStreams)},
		"max watches per tenant":   {int64(cfg.MaxWatchesPerTenant), int64(grpcserver.DefaultMaxWatchesPerTenant)},
	} {
		if got[0] != got[1] {
			t.Errorf("config's default %s is %d, the server's %d", name, got[0], got[1])
		}
	}
}
