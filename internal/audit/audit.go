// Package audit is the authority's audit trail: what was done to a tenant's tokens, sessions,
// keys and callers, and by whom. The domain packages (token, tenant, keys, the tenant lifecycle)
// emit typed Events; one Writer turns each into a structured log line marked log=audit, with the
// event's name, the tenant, the ids the event names and the caller of the RPC it happened in.
//
// An Event carries ids (session ids, jtis, API key ids, kids, principal identifiers), never a
// token, a secret or an API key: there is no field to put one in.
package audit

import (
	"context"
	"log/slog"
	"time"
)

// Kind is what happened. Each kind has one name (the line's audit=<name>, listed in
// docs/observability.md), one message and one level.
type Kind uint8

// The kinds of audit events.
const (
	TokenIssued Kind = iota + 1
	TokenRefreshed
	RefreshReuse
	RefreshKeyUnknown
	RefreshCertificateMismatch
	AnnounceFailed
	TokenRevoked
	SessionRevoked
	SubjectCutoff
	TenantCutoff
	TokenExchanged
	ExchangeRefused
	TenantCreated
	TenantDeleted
	APIKeyCreated
	APIKeyRotated
	APIKeyDeleted
	PrincipalCreated
	PrincipalSecretSet
	PrincipalDeleted
	SigningKeyRotated
	SigningKeyWithdrawn
	RefreshKeyRotated
	kindEnd
)

type kindInfo struct {
	name    string
	message string
	level   slog.Level
}

var kinds = [kindEnd]kindInfo{
	TokenIssued:                {"issued", "token issued", slog.LevelInfo},
	TokenRefreshed:             {"refreshed", "token refreshed", slog.LevelInfo},
	RefreshReuse:               {"refresh_reuse", "refresh token reuse detected; session revoked", slog.LevelWarn},
	RefreshKeyUnknown:          {"refresh_key_unknown", "refresh token refused: its key is no longer held", slog.LevelWarn},
	RefreshCertificateMismatch: {"refresh_certificate_mismatch", "refresh refused: the connection lacks the session's client certificate", slog.LevelWarn},
	AnnounceFailed:             {"announce_failed", "the revoked session could not be announced to watchers", slog.LevelError},
	TokenRevoked:               {"token_revoked", "token revoked", slog.LevelInfo},
	SessionRevoked:             {"session_revoked", "session revoked", slog.LevelInfo},
	SubjectCutoff:              {"subject_cutoff", "subject sessions revoked", slog.LevelWarn},
	TenantCutoff:               {"tenant_cutoff", "tenant sessions revoked", slog.LevelWarn},
	TokenExchanged:             {"exchanged", "token exchanged", slog.LevelInfo},
	ExchangeRefused:            {"exchange_refused", "token exchange refused", slog.LevelWarn},
	TenantCreated:              {"tenant_created", "tenant created", slog.LevelInfo},
	TenantDeleted:              {"tenant_deleted", "tenant deleted", slog.LevelWarn},
	APIKeyCreated:              {"api_key_created", "API key created", slog.LevelInfo},
	APIKeyRotated:              {"api_key_rotated", "API key rotated", slog.LevelInfo},
	APIKeyDeleted:              {"api_key_deleted", "API key deleted", slog.LevelInfo},
	PrincipalCreated:           {"principal_created", "principal created", slog.LevelInfo},
	PrincipalSecretSet:         {"principal_secret_set", "principal secret set", slog.LevelInfo},
	PrincipalDeleted:           {"principal_deleted", "principal deleted", slog.LevelInfo},
	SigningKeyRotated:          {"key_rotated", "signing key rotated", slog.LevelWarn},
	SigningKeyWithdrawn:        {"key_withdrawn", "signing key withdrawn", slog.LevelWarn},
	RefreshKeyRotated:          {"refresh_key_rotated", "refresh-token key rotated", slog.LevelWarn},
}

// String returns the kind's name, as written in the audit attribute.
func (k Kind) String() string {
	if k == 0 || k >= kindEnd {
		return "unknown"
	}
	return kinds[k].name
}

// Kinds returns every kind, in declaration order.
func Kinds() []Kind {
	out := make([]Kind, 0, kindEnd-1)
	for k := Kind(1); k < kindEnd; k++ {
		out = append(out, k)
	}
	return out
}

// Event is one audit event. Kind and Tenant are always set; the other fields are set where the
// kind has them, and a field left empty is not written.
type Event struct {
	Kind   Kind
	Tenant string

	// Subject, SessionID and JTI name the session or token the event is about.
	Subject   string
	SessionID string
	JTI       string
	// KeyID is an API key's id (never the key); Kid a signing or refresh-token key's id.
	KeyID string
	Kid   string
	// Principal is a client_credentials principal's identifier.
	Principal string
	// Cutoff is the instant a subject or tenant cut-off covers.
	Cutoff time.Time
	// ActivatesAt is when a rotated signing key starts signing.
	ActivatesAt time.Time
	// Actor names the API key whose holder acted for a subject (token exchange); ActorChain the
	// chain of actors of an exchanged token, outermost first.
	Actor      string
	ActorChain []string
	// Audience is an exchanged token's audience.
	Audience []string
	// AcceptAudience and TargetAudiences are an API key's exchange policy.
	AcceptAudience  string
	TargetAudiences []string
	// Emergency marks a refresh-key rotation that dropped the earlier keys at once; DroppedKids
	// names them.
	Emergency   bool
	DroppedKids []string
	// Reason says why a request was refused, or what failed; it must not quote a token.
	Reason string
}

// CallerFunc returns the attributes that name the caller of the RPC ctx belongs to (an API key's
// id, or the master key's fingerprint), or none.
type CallerFunc func(ctx context.Context) []slog.Attr

// Writer writes audit events. It is safe for concurrent use; a nil *Writer discards events.
type Writer struct {
	log    *slog.Logger
	caller CallerFunc
}

// NewWriter returns a writer of log lines to log, marked log=audit and naming the caller that
// caller finds in the context (nil: none).
func NewWriter(log *slog.Logger, caller CallerFunc) *Writer {
	if log == nil {
		log = slog.Default()
	}
	return &Writer{log: log.With(slog.String("log", "audit")), caller: caller}
}

// Emit writes e.
func (w *Writer) Emit(ctx context.Context, e Event) {
	if w == nil || e.Kind == 0 || e.Kind >= kindEnd {
		return
	}
	info := kinds[e.Kind]
	if !w.log.Enabled(ctx, info.level) {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("audit", info.name), slog.String("tenant", e.Tenant))
	str := func(key, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(key, v))
		}
	}
	list := func(key string, v []string) {
		if v != nil {
			attrs = append(attrs, slog.Any(key, v))
		}
	}
	tm := func(key string, v time.Time) {
		if !v.IsZero() {
			attrs = append(attrs, slog.Time(key, v))
		}
	}
	str("subject", e.Subject)
	str("session_id", e.SessionID)
	str("jti", e.JTI)
	str("key_id", e.KeyID)
	str("kid", e.Kid)
	str("principal", e.Principal)
	tm("cutoff", e.Cutoff)
	tm("activates_at", e.ActivatesAt)
	str("actor", e.Actor)
	list("actor_chain", e.ActorChain)
	list("audience", e.Audience)
	str("accept_audience", e.AcceptAudience)
	list("target_audiences", e.TargetAudiences)
	if e.Kind == RefreshKeyRotated {
		attrs = append(attrs, slog.Bool("emergency", e.Emergency))
	}
	list("dropped_kids", e.DroppedKids)
	str("reason", e.Reason)
	if w.caller != nil {
		attrs = append(attrs, w.caller(ctx)...)
	}
	w.log.LogAttrs(ctx, info.level, info.message, attrs...)
}
