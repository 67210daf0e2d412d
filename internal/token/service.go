package token

import (
	"context"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Keys is what the domain needs of the key manager.
type Keys interface {
	// SigningKey returns the key that signs the tenant's access tokens now.
	SigningKey(ctx context.Context, tenant string) (*keys.Key, error)
	// VerificationKey returns the tenant's key kid, or an error wrapping keys.ErrUnknownKey.
	VerificationKey(ctx context.Context, tenant, kid string) (*keys.Key, error)
	// RefreshKeys returns the tenant's refresh-token keys that verify now, oldest first; the last
	// one signs.
	RefreshKeys(ctx context.Context, tenant string) ([]*keys.RefreshKey, error)
	// RefreshVerificationKey returns the tenant's refresh-token key kid, or an error wrapping
	// keys.ErrUnknownKey.
	RefreshVerificationKey(ctx context.Context, tenant, kid string) (*keys.RefreshKey, error)
}

// Config configures a Service.
type Config struct {
	Store Store
	Keys  Keys
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// AccessTTL and RefreshTTL are the defaults; MaxAccessTTL and MaxRefreshTTL the server-wide
	// bounds (a tenant may set tighter ones).
	AccessTTL, RefreshTTL       time.Duration
	MaxAccessTTL, MaxRefreshTTL time.Duration
	// RefreshGrace is how long after a rotation a retry with the previous refresh token gets the
	// same new pair instead of being treated as reuse.
	RefreshGrace time.Duration
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
	// Audit writes the audit events of issues, refreshes, revocations and exchanges; none are
	// written when nil.
	Audit *audit.Writer
	// Events receives a revocation event for each revocation, for WatchRevocations; none are
	// announced when nil.
	Events revocation.Log
	// Observer is told the outcome of each operation, for metrics; nothing is reported when nil.
	Observer Observer
}

// Service implements the token lifecycle.
type Service struct {
	cfg   Config
	now   func() time.Time
	audit *audit.Writer
	cache *verifyCache
	obs   Observer
}

// DefaultLeeway is the clock-skew tolerance on time claims.
const DefaultLeeway = accesstoken.DefaultLeeway

// MaxTokenSize bounds a presented token (8 KiB).
const MaxTokenSize = 8 << 10

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, now: cfg.Now, audit: cfg.Audit, cache: newVerifyCache(defaultVerifyCacheSize), obs: cfg.Observer}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.Leeway == 0 {
		s.cfg.Leeway = DefaultLeeway
	}
	return s
}
