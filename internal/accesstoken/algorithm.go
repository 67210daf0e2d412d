package accesstoken

import "github.com/golang-jwt/jwt/v5"

// Algorithm is a JWS algorithm name as it appears in a token's `alg` header and a key's `alg`.
type Algorithm string

// The algorithms a tenant's keys may use. HS256 keys never leave the authority: a verifier without
// the secret (authn) accepts only the algorithms for which Public is true.
const (
	EdDSA Algorithm = "EdDSA"
	ES256 Algorithm = "ES256"
	RS256 Algorithm = "RS256"
	HS256 Algorithm = "HS256"
)

// Algorithms returns every supported algorithm, the default (EdDSA) first.
func Algorithms() []Algorithm { return []Algorithm{EdDSA, ES256, RS256, HS256} }

// ParseAlgorithm returns the algorithm named s (exactly, as in a JWS header), or false.
func ParseAlgorithm(s string) (Algorithm, bool) {
	switch a := Algorithm(s); a {
	case EdDSA, ES256, RS256, HS256:
		return a, true
	}
	return "", false
}

// Public reports whether a token signed with a can be verified with a published public key.
func (a Algorithm) Public() bool { return a == EdDSA || a == ES256 || a == RS256 }

// Method returns the golang-jwt signing method of a, or nil for an unsupported algorithm.
func (a Algorithm) Method() jwt.SigningMethod {
	switch a {
	case EdDSA:
		return jwt.SigningMethodEdDSA
	case ES256:
		return jwt.SigningMethodES256
	case RS256:
		return jwt.SigningMethodRS256
	case HS256:
		return jwt.SigningMethodHS256
	}
	return nil
}
