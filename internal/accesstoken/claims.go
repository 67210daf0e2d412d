package accesstoken

import "strings"

// registered lists the claims that the authority writes itself, and those that other parts of the
// token format reserve (`cnf` for certificate binding, `act` and `may_act` for delegation).
var registered = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "scope", "typ", "cnf", "client_id",
	"act", "may_act", "iat_ms",
}

// IsRegistered reports whether name is exactly a claim the authority writes or reserves: a verifier
// reads such a claim as what the authority set, never as an extra claim.
func IsRegistered(name string) bool {
	for _, r := range registered {
		if name == r {
			return true
		}
	}
	return false
}

// IsReservedName reports whether a caller's extra claim called name could be read as a registered
// claim by some consumer. Go's encoding/json (and so golang-jwt's RegisteredClaims) matches object
// keys to struct fields case-insensitively, with Unicode simple folding, and the last duplicate
// wins: an extra claim "Sub", "SUB" or "ſub" (U+017F) written after `sub` would replace the
// subject. Every name equal to a registered one under strings.EqualFold is therefore reserved.
func IsReservedName(name string) bool {
	for _, r := range registered {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// CertificateThumbprint reads the `cnf` claim of a certificate-bound token (RFC 8705): an object
// whose `x5t#S256` member is the thumbprint. It reports false for a claim of any other shape, a
// token that a verifier must then refuse: a binding it cannot read must not read as none.
func CertificateThumbprint(cnf any) (string, bool) {
	m, ok := cnf.(map[string]any)
	if !ok {
		return "", false
	}
	x5t, ok := m["x5t#S256"].(string)
	if !ok || x5t == "" {
		return "", false
	}
	return x5t, true
}
