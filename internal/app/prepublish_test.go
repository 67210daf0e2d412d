package app

import (
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJWKSCacheLifetimeIsBelowThePrePublishDelay serves the JWKS over HTTP with the default
// configuration: the pre-publish delay outlasts the mesh consumers' caches (Envoy's jwt_authn 10
// minutes, istiod 20), and a cache that honours the JWKS's max-age, even behind another one, has
// a rotated key before it signs.
func TestJWKSCacheLifetimeIsBelowThePrePublishDelay(t *testing.T) {
	cfg := testConfig(t, "")
	if cfg.KeyPrePublish < 30*time.Minute {
		t.Errorf("default pre-publish delay %v; want at least 30m", cfg.KeyPrePublish)
	}
	_, httpAddr := startWith(t, cfg, nil, func(log *slog.Logger) (*App, error) { return New(cfg, log) })
	resp, err := http.Get("http://" + httpAddr + "/.well-known/jwks.json?tenant=dev")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the JWKS: %s", resp.Status)
	}
	cc := resp.Header.Get("Cache-Control")
	_, v, ok := strings.Cut(cc, "max-age=")
	seconds, err := strconv.Atoi(v)
	if !ok || err != nil {
		t.Fatalf("Cache-Control %q has no max-age", cc)
	}
	maxAge := time.Duration(seconds) * time.Second
	if maxAge <= 0 || 2*maxAge > cfg.KeyPrePublish {
		t.Errorf("Cache-Control %q with a pre-publish delay of %v: want a max-age above 0 and at most half the delay",
			cc, cfg.KeyPrePublish)
	}
}
