package tenant

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// ExchangePolicy says which tokens an API key with RoleExchange may exchange, and for what.
type ExchangePolicy struct {
	// AcceptAudience must be in a subject token's audience: a service exchanges only tokens that
	// were meant for itself.
	AcceptAudience string `json:"accept_aud"`
	// TargetAudiences are the audiences the key may ask for.
	TargetAudiences []string `json:"target_auds"`
}

// maxTargetAudiences bounds a policy's target audiences, as a token's audiences are bounded.
const maxTargetAudiences = 16

// validateExchange checks that a key's roles and exchange policy go together: RoleExchange needs a
// policy whose audiences the tenant allows, and a name (the actor its exchanged tokens name); a
// policy without the role is refused rather than stored to no effect.
func validateExchange(t *Tenant, name string, roles []Role, p *ExchangePolicy) error {
	exchange := slices.Contains(roles, RoleExchange)
	switch {
	case !exchange && p == nil:
		return nil
	case !exchange:
		return fmt.Errorf("%w: exchange_policy is only for keys with role exchange", ErrInvalid)
	case p == nil:
		return fmt.Errorf("%w: a key with role exchange needs an exchange_policy (accept_audience and target_audiences)", ErrInvalid)
	}
	var problems []string
	if !accesstoken.ValidActor(name) || !printable(name) {
		problems = append(problems, "a key with role exchange needs a name (1-256 bytes of UTF-8 without control characters): its exchanged tokens name it as their actor")
	}
	if !validAudience(p.AcceptAudience) {
		problems = append(problems, "exchange_policy.accept_audience must be 1-256 bytes of UTF-8 without control characters")
	}
	if len(p.TargetAudiences) == 0 || len(p.TargetAudiences) > maxTargetAudiences {
		problems = append(problems, fmt.Sprintf("exchange_policy.target_audiences needs 1-%d audiences", maxTargetAudiences))
	}
	for _, a := range p.TargetAudiences {
		if !validAudience(a) {
			problems = append(problems, "exchange_policy.target_audiences: each must be 1-256 bytes of UTF-8 without control characters")
			break
		}
		if t != nil && !Allows(t.AllowedAudiences, a) {
			problems = append(problems, fmt.Sprintf("exchange_policy.target_audiences: audience %q is not allowed for this tenant", a))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

func validAudience(a string) bool { return a != "" && len(a) <= 256 && printable(a) }
