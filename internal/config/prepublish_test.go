package config

import (
	"testing"
	"time"
)

// TestParseKeyPrePublish: the default pre-publish delay outlasts the JWKS caches of Envoy's
// jwt_authn (10 minutes) and istiod (20 minutes), in development and production, and it can be
// set.
func TestParseKeyPrePublish(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want time.Duration
	}{
		{name: "default", want: 30 * time.Minute},
		{name: "production default", env: production(nil), want: 30 * time.Minute},
		{name: "set", env: map[string]string{varKeyPrePublish: "45m"}, want: 45 * time.Minute},
		{name: "flag", args: []string{"-key-prepublish", "0s"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.KeyPrePublish != tt.want {
				t.Errorf("KeyPrePublish = %v, want %v", c.KeyPrePublish, tt.want)
			}
		})
	}
}
