package token

import (
	"crypto/sha256"
	"encoding/base64"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

var b64 = base64.RawURLEncoding.Strict()

// generationJTI returns the jti of the access token of the session generation whose refresh token
// is rt: its session id, a dot, and 12 bytes of a hash of rt. The refresh token is random to anyone
// without the tenant's refresh key, and so is the jti; the access token does not reveal rt.
func generationJTI(sessionID, rt string) string {
	h := sha256.Sum256([]byte("jti\x00" + rt))
	return store.JTI(sessionID, [store.JTISuffixLen]byte(h[:store.JTISuffixLen]))
}

// hashToken returns the SHA-256 of a token, as stored for refresh tokens.
func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}
