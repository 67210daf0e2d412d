package grpcserver

import (
	"context"
	"log/slog"
)

// AuditLogger returns the logger of audit events: log's lines, marked log=audit, and naming the
// caller of the RPC they happen in (CallerAttrs), so that what a leaked key did can be
// reconstructed.
func AuditLogger(log *slog.Logger) *slog.Logger {
	return slog.New(callerHandler{log.Handler()}).With(slog.String("log", "audit"))
}

// CallerAttrs returns the attributes that name the authenticated caller of the RPC ctx belongs
// to: caller=master and the master key's fingerprint, or caller_key_id; none outside an RPC. The
// key id is not a secret; the key is never logged. It is the audit.CallerFunc of the audit writer.
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
