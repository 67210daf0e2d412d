package token

import (
	"log/slog"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// auditLevel is the level of audit events; they carry ids, never tokens.
const auditLevel = slog.LevelInfo

func auditAttrs(event, tenant string, s *store.Session) []slog.Attr {
	return []slog.Attr{
		slog.String("audit", event),
		slog.String("tenant", tenant),
		slog.String("subject", s.Subject),
		slog.String("session_id", s.ID),
	}
}
