package grpcserver

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TestCallerAttrsNameTheCaller: the audit writer's caller attributes name a master caller by the
// fingerprint of the key presented, an API key by its id, and nobody outside an authenticated call.
func TestCallerAttrsNameTheCaller(t *testing.T) {
	tests := []struct {
		name   string
		caller *tenant.Caller
		want   []slog.Attr
	}{
		{"master", &tenant.Caller{Master: true, MasterFingerprint: "0123456789abcdef"},
			[]slog.Attr{slog.String("caller", "master"), slog.String("master_key", "0123456789abcdef")}},
		{"api key", &tenant.Caller{KeyID: "k-1", KeyName: "svc", Tenant: &tenant.Tenant{ID: "acme"}},
			[]slog.Attr{slog.String("caller_key_id", "k-1")}},
		{"none", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.caller != nil {
				ctx = context.WithValue(ctx, callerKey{}, tt.caller)
			}
			got := CallerAttrs(ctx)
			if !slices.EqualFunc(got, tt.want, slog.Attr.Equal) {
				t.Errorf("CallerAttrs = %v, want %v", got, tt.want)
			}
		})
	}
}
