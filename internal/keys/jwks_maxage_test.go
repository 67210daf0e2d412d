package keys_test

import (
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
)

// TestJWKSMaxAgeStaysBelowThePrePublishDelay: a cache that honours the JWKS's max-age has a new
// key before it signs, even behind a second cache, whatever the delay.
func TestJWKSMaxAgeStaysBelowThePrePublishDelay(t *testing.T) {
	tests := []struct {
		prePublish, want time.Duration
	}{
		{0, 0},
		{time.Second, 0},
		{3 * time.Second, time.Second},
		{2 * time.Minute, time.Minute},
		{5 * time.Minute, 150 * time.Second},
		{10 * time.Minute, 5 * time.Minute},
		{30 * time.Minute, 5 * time.Minute},
		{24 * time.Hour, 5 * time.Minute},
	}
	for _, tt := range tests {
		got := keys.JWKSMaxAge(tt.prePublish)
		if got != tt.want {
			t.Errorf("JWKSMaxAge(%v) = %v, want %v", tt.prePublish, got, tt.want)
		}
		if tt.prePublish > 0 && 2*got > tt.prePublish {
			t.Errorf("JWKSMaxAge(%v) = %v: two caches in a row outlast the delay", tt.prePublish, got)
		}
	}
}
