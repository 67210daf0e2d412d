package grpcserver

import (
	"context"
	"log/slog"
)

// CallerAttrs returns the attributes that name the authenticated caller of the RPC ctx belongs
// to: caller=master and the master key's fingerprint, or the caller's API key id (caller_key_id);
// none outside an authenticated call. They let what a leaked key did be reconstructed from the
// audit log; the key id and the fingerprint are not secrets, and the key is never logged. It is
// the audit.CallerFunc of the authority's one audit writer.
func CallerAttrs(ctx context.Context) []slog.Attr {
	c, ok := CallerFrom(ctx)
	if !ok {
		return nil
	}
	if c.Master {
		return []slog.Attr{slog.String("caller", "master"), slog.String("master_key", c.MasterFingerprint)}
	}
	return []slog.Attr{slog.String("caller_key_id", c.KeyID)}
}

// AuditLogger returns a logger of audit lines: log's lines, marked log=audit, and naming the
// caller as CallerAttrs does.
//
// Transitional: only the tenant_created and tenant_deleted lines of the admin handlers still use
// it, until tenant creation and deletion move into the domain and emit audit.Events through the
// one audit.Writer like every other event.
func AuditLogger(log *slog.Logger) *slog.Logger {
	return slog.New(callerHandler{log.Handler()}).With(slog.String("log", "audit"))
}

// callerHandler adds the authenticated caller of the context to each record.
type callerHandler struct{ slog.Handler }

func (h callerHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(CallerAttrs(ctx)...)
	return h.Handler.Handle(ctx, r)
}

func (h callerHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return callerHandler{h.Handler.WithAttrs(attrs)}
}

func (h callerHandler) WithGroup(name string) slog.Handler {
	return callerHandler{h.Handler.WithGroup(name)}
}
