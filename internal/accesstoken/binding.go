package accesstoken

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// Certificate-bound tokens (RFC 8705): a session may be bound to a client certificate, named by
// its x5t#S256 thumbprint. Its access tokens carry the thumbprint in `cnf`, its refresh tokens in
// their own claims, and both are refused when presented over a connection without that
// certificate.

// Thumbprint returns the x5t#S256 thumbprint of a certificate given in DER: the
// unpadded base64url of its SHA-256.
func Thumbprint(der []byte) string {
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ThumbprintRule says how a thumbprint is spelled, for messages to callers.
const ThumbprintRule = "the unpadded base64url of a SHA-256 (43 characters), as in x5t#S256"

// ValidThumbprint reports whether s is spelled as an x5t#S256 thumbprint: 43 characters of
// unpadded base64url encoding 32 bytes.
func ValidThumbprint(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// ThumbprintMatches reports whether a token bound to bound may be used over a connection whose
// client certificate has the thumbprint presented ("" when it has none). An unbound token may be
// used anywhere.
func ThumbprintMatches(bound, presented string) bool {
	if bound == "" {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(bound), []byte(presented)) == 1
}
