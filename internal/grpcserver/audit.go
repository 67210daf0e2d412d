package grpcserver

import (
	"context"
	"log/slog"
)

// AuditLogger returns the logger of audit events: log's lines, marked log=audit, and naming the
// caller of the RPC they happen in (caller_key_id, or caller=master), so that what a leaked key
// did can be reconstructed. The key id is not a secret; the key is never logged.
func AuditLogger(log *slog.Logger) *slog.Logger {
	return slog.New(callerHandler{log.Handler()}).With(slog.String("log", "audit"))
}

// callerHandler adds the authenticated caller of the context to each record.
type callerHandler struct{ slog.Handler }

func (h callerHandler) Handle(ctx context.Context, r slog.Record) error {
	if c, ok := CallerFrom(ctx); ok {
		if c.Master {
			r.AddAttrs(slog.String("caller", "master"), slog.String("master_key", c.MasterFingerprint))
		} else {
			r.AddAttrs(slog.String("caller_key_id", c.KeyID))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h callerHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return callerHandler{h.Handler.WithAttrs(attrs)}
}

func (h callerHandler) WithGroup(name string) slog.Handler {
	return callerHandler{h.Handler.WithGroup(name)}
}
