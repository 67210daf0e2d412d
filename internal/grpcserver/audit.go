package grpcserver

import (
	"context"
	"log/slog"
)

// CallerAttrs returns the attributes that name the authenticated caller of the RPC ctx belongs
// to: caller=master and the master key's fingerprint, or the caller's API key id (caller_key_id);
// none outside an authenticated call. They let what a leaked key did be reconstructed from the
// audit log; the key id and the fingerprint are not secrets, and the key is never logged. It is
// the audit.CallerFunc of the authority's one audit writer (internal/audit).
func CallerAttrs(ctx context.Context) []slog.Attr {
	c, ok := CallerFrom(ctx)
	if !ok || c == nil {
		return nil
	}
	if c.Master {
		return []slog.Attr{slog.String("caller", "master"), slog.String("master_key", c.MasterFingerprint)}
	}
	return []slog.Attr{slog.String("caller_key_id", c.KeyID)}
}
