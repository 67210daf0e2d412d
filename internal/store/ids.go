package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Identifier layout. A session id is a 16-character tag derived from (tenant, subject) followed by
// 22 random characters (128 bits); a jti is its session id, a dot, and 16 characters (JTISuffixLen
// bytes, random or derived from a secret). The tag lets a backend place every key of one subject
// together (one Redis Cluster slot) and find a session's keys from its id or a jti alone, without
// an index. It reveals nothing that the token's `sub` claim does not already carry.
const (
	tagLen       = 16
	sessionIDLen = tagLen + 22
	jtiLen       = sessionIDLen + 1 + JTISuffixLen*4/3
)

var b64 = base64.RawURLEncoding.Strict()

// SubjectTag returns the tag shared by every session of subject in tenant.
func SubjectTag(tenant, subject string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(subject))
	return b64.EncodeToString(h.Sum(nil))[:tagLen]
}

// NewSessionID returns a fresh session id for subject in tenant.
func NewSessionID(tenant, subject string) string {
	return SubjectTag(tenant, subject) + randomString(16)
}

// SessionTag returns the subject tag of a session id, and false when the id is malformed.
func SessionTag(sessionID string) (string, bool) {
	if !ValidSessionID(sessionID) {
		return "", false
	}
	return sessionID[:tagLen], true
}

// ValidSessionID reports whether s has the shape of a session id.
func ValidSessionID(s string) bool {
	return len(s) == sessionIDLen && isB64URL(s)
}

// SessionOfJTI returns the session id a jti belongs to, and false when the jti is malformed.
func SessionOfJTI(jti string) (string, bool) {
	if len(jti) != jtiLen || jti[sessionIDLen] != '.' {
		return "", false
	}
	sid, rest := jti[:sessionIDLen], jti[sessionIDLen+1:]
	if !ValidSessionID(sid) || !isB64URL(rest) {
		return "", false
	}
	return sid, true
}

// JTIOf reports whether jti is a well-formed jti of the session sessionID, and returns the
// session's subject tag when it is.
func JTIOf(sessionID, jti string) (tag string, ok bool) {
	owner, ok := SessionOfJTI(jti)
	if !ok || owner != sessionID {
		return "", false
	}
	return sessionID[:tagLen], true
}

func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// JTISuffixLen is the number of bytes that follow a jti's session id (16 characters once encoded).
const JTISuffixLen = 12

// JTI returns the jti of the session whose last part encodes suffix.
func JTI(sessionID string, suffix [JTISuffixLen]byte) string {
	return sessionID + "." + b64.EncodeToString(suffix[:])
}

// NewJTI returns a fresh jti of the session, with a random last part.
func NewJTI(sessionID string) string {
	var suffix [JTISuffixLen]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand.Read never fails (Go 1.24+).
	return JTI(sessionID, suffix)
}

func randomString(nBytes int) string {
	b := make([]byte, nBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return b64.EncodeToString(b)
}
