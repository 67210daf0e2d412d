package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Role is a permission carried by an API key.
type Role string

// The roles.
const (
	RoleIssue  Role = "issue"
	RoleVerify Role = "verify"
	RoleRevoke Role = "revoke"
	RoleAdmin  Role = "admin"
	// RoleExchange allows ExchangeToken within the key's ExchangePolicy, which a key with this
	// role must have.
	RoleExchange Role = "exchange"
)

// AllRoles lists every role that an API key may carry without further settings: every role but
// RoleExchange, which needs an ExchangePolicy.
var AllRoles = []Role{RoleIssue, RoleVerify, RoleRevoke, RoleAdmin}

// Tenant is an isolation boundary with its own issuer, keys, sessions and policy.
type Tenant struct {
	ID     string `json:"id"`
	Issuer string `json:"iss"`
	// Algorithm is the JWS algorithm of the tenant's new signing keys.
	Algorithm accesstoken.Algorithm `json:"alg"`
	// MaxAccessTTL and MaxRefreshTTL bound what callers may request; zero means the server's bound.
	MaxAccessTTL  time.Duration `json:"max_at,omitempty"`
	MaxRefreshTTL time.Duration `json:"max_rt,omitempty"`
	// AllowedAudiences and AllowedScopes restrict what callers may request; empty allows any.
	AllowedAudiences []string  `json:"auds,omitempty"`
	AllowedScopes    []string  `json:"scopes,omitempty"`
	CreatedAt        time.Time `json:"created"`
	// IssueLimit and RefreshLimit bound the IssueToken and RefreshToken calls of each API key on
	// each replica; nil means DefaultRateLimit.
	IssueLimit   *RateLimit `json:"issue_limit,omitempty"`
	RefreshLimit *RateLimit `json:"refresh_limit,omitempty"`
	// ExchangeLimit bounds the ExchangeToken calls of each API key on each replica; nil means
	// DefaultRateLimit.
	ExchangeLimit *RateLimit `json:"exchange_limit,omitempty"`
	// RequireCertificateBinding refuses to issue a token that is not bound to a client
	// certificate (RFC 8705), and makes an unbound token of the tenant inactive.
	RequireCertificateBinding bool `json:"require_cnf,omitempty"`
	// Incarnation is drawn at random when the tenant is created: a tenant deleted and created
	// again under the same id is another incarnation, and what was granted to the first (an open
	// revocation stream) does not carry over to the second. Records written before incarnations
	// existed have none (""), which is an incarnation like any other.
	Incarnation string `json:"inc,omitempty"`
	// RevokeLimit bounds the RevokeToken calls, and apart the RevokeSessions calls, of each API key
	// on each replica; nil means DefaultRevokeRateLimit.
	RevokeLimit *RateLimit `json:"revoke_limit,omitempty"`
}

// RateLimit is a token bucket: PerSecond sustained, Burst at once.
type RateLimit struct {
	PerSecond float64 `json:"rate"`
	Burst     int     `json:"burst"`
}

// DefaultRateLimit applies when a tenant sets no limit.
var DefaultRateLimit = RateLimit{PerSecond: 1000, Burst: 2000}

// DefaultRevokeRateLimit applies to revocations when a tenant sets no limit. Lower than issuing:
// a revocation may add an event to the tenant's revocation log, which every verifier in local mode
// replays, and a service revokes far less often than it issues.
var DefaultRevokeRateLimit = RateLimit{PerSecond: 100, Burst: 200}

// Bounds of a RateLimit.
const (
	minRate  = 0.01
	maxRate  = 100_000
	maxBurst = 100_000
)

func (l *RateLimit) validate(name string) error {
	if l == nil {
		return nil
	}
	if !(l.PerSecond >= minRate && l.PerSecond <= maxRate) || l.Burst < 1 || l.Burst > maxBurst {
		return fmt.Errorf("%s: per_second must be %g-%d and burst 1-%d", name, minRate, maxRate, maxBurst)
	}
	return nil
}

// Or returns the limit, or def when l is nil.
func (l *RateLimit) Or(def RateLimit) RateLimit {
	if l == nil {
		return def
	}
	return *l
}

var (
	// ErrInvalid reports a tenant or credential definition that cannot be stored.
	ErrInvalid = errors.New("invalid tenant definition")
	// ErrNotFound reports an unknown tenant.
	ErrNotFound = errors.New("tenant not found")
	// ErrLimit reports a credential that was not created because its tenant holds the most it may.
	ErrLimit = errors.New("limit reached")
	// ErrLastAdminKey refuses to delete the last API key with role admin of a tenant.
	ErrLastAdminKey = errors.New("this is the tenant's last API key with role admin: create another admin key first (or delete the tenant with the master credential)")
)

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidID reports whether id is a valid tenant identifier.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Validate reports what is wrong with t.
func (t *Tenant) Validate() error {
	var errs []error
	if !ValidID(t.ID) {
		errs = append(errs, errors.New("tenant id must be 1-63 lower-case letters, digits or dashes"))
	}
	if t.Issuer == "" || len(t.Issuer) > 256 || !printable(t.Issuer) {
		// The issuer is written into every token and compared byte for byte by every consumer; a
		// NUL or a line break in it breaks logs, headers and consumers' configuration files.
		errs = append(errs, errors.New("issuer must be 1-256 bytes of UTF-8 without control characters"))
	}
	for _, sc := range t.AllowedScopes {
		if len(sc) > 256 || !accesstoken.ValidScope(sc) {
			errs = append(errs, fmt.Errorf("allowed_scopes: each scope must be 1-256 bytes of %s", accesstoken.ScopeRule))
			break
		}
	}
	for _, a := range t.AllowedAudiences {
		if !validAudience(a) {
			errs = append(errs, errors.New("allowed_audiences: each audience must be 1-256 bytes of UTF-8 without control characters"))
			break
		}
	}
	if t.MaxAccessTTL < 0 || t.MaxRefreshTTL < 0 {
		errs = append(errs, errors.New("TTL bounds must not be negative"))
	}
	if err := t.IssueLimit.validate("issue_rate_limit"); err != nil {
		errs = append(errs, err)
	}
	if err := t.RefreshLimit.validate("refresh_rate_limit"); err != nil {
		errs = append(errs, err)
	}
	if err := t.RevokeLimit.validate("revoke_rate_limit"); err != nil {
		errs = append(errs, err)
	}
	if err := t.ExchangeLimit.validate("exchange_rate_limit"); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters (C0, DEL, C1) or Unicode
// line and paragraph separators.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// Allows reports whether v may be requested under the list allowed (empty allows any).
func Allows(allowed []string, v string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range allowed {
		if a == v {
			return true
		}
	}
	return false
}

func getTenant(ctx context.Context, s Store, id string) (*Tenant, error) {
	return getRecord[Tenant](ctx, s, store.KindTenant, id, ErrNotFound)
}

// getRecord reads and decodes the record kind/id, answering notFound when there is none.
func getRecord[T any](ctx context.Context, s Store, kind, id string, notFound error) (*T, error) {
	raw, err := s.GetRecord(ctx, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode %s record: %w", kind, err)
	}
	return &v, nil
}
