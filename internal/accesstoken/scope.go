package accesstoken

import "strings"

// ValidScope reports whether s is a scope token of RFC 6749 section 3.3: one or more printable ASCII
// characters other than space, double quote and backslash (%x21 / %x23-5B / %x5D-7E).
func ValidScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ScopeRule says what ValidScope accepts, for error messages.
const ScopeRule = "printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)"

// ParseScope splits a `scope` claim into its scope tokens. The claim is a list delimited by single
// spaces (U+0020) and nothing else; a part that is not a valid scope token is dropped, so no byte
// other than a space ever separates two granted scopes.
func ParseScope(claim string) []string {
	if claim == "" {
		return nil
	}
	parts := strings.Split(claim, " ")
	out := parts[:0]
	for _, p := range parts {
		if ValidScope(p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// JoinScope writes scope tokens as a `scope` claim.
func JoinScope(scopes []string) string { return strings.Join(scopes, " ") }
