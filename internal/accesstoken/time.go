package accesstoken

import "time"

// DefaultLeeway is the clock skew tolerated on exp, nbf and iat by every verifier: the authority's
// VerifyToken and authn's interceptors. One value, so that a token a few seconds off is not active at
// the authority and refused by an interceptor.
const DefaultLeeway = 30 * time.Second

// Timing is where an instant falls in a token's validity.
type Timing int

// The timings, in the order CheckTimes tests them.
const (
	Current Timing = iota
	Expired
	NotYetValid
)

// CheckTimes places now in the validity of a token with exp, nbf (zero when absent) and iat in
// whole seconds, tolerating leeway: expired from exp+leeway on, not yet valid while now+leeway is
// before iat or nbf. Both verifiers use it, with iat in whole seconds (the iat claim, not iat_ms),
// so that a token is never current at one and not yet valid at the other.
func CheckTimes(exp, nbf, iat, now time.Time, leeway time.Duration) Timing {
	if !now.Before(exp.Add(leeway)) {
		return Expired
	}
	if skewed := now.Add(leeway); skewed.Before(iat) || skewed.Before(nbf) {
		return NotYetValid
	}
	return Current
}
