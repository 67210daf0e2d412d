package token

import (
	"encoding/json"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/keys"
)

// Token types (the `typ` header).
const (
	TypeAccess  = "at+jwt"
	TypeRefresh = "rt+jwt"
)

// refreshKID names the refresh key in refresh tokens' headers.
const refreshKID = "rt"

// registered lists the claims that callers' extra claims cannot set.
var registered = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true,
	"jti": true, "sid": true, "scope": true, "typ": true, "cnf": true, "client_id": true,
}

// IsRegisteredClaim reports whether name is a claim that the authority sets itself.
func IsRegisteredClaim(name string) bool { return registered[name] }

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// signJWT returns the compact JWS of claims under method and key.
func signJWT(method jwt.SigningMethod, key any, kid, typ string, claims any) (string, error) {
	h, err := json.Marshal(header{Alg: method.Alg(), Kid: kid, Typ: typ})
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sig, err := method.Sign(signing, key)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

func signAccess(k *keys.Key, claims map[string]any) (string, error) {
	return signJWT(k.Method, k.SignKey, k.ID, TypeAccess, claims)
}

// refreshClaims are a refresh token's claims. Every field is derived from the session, so the
// token of a given generation can be made again, byte for byte.
type refreshClaims struct {
	jwt.RegisteredClaims
	SessionID  string `json:"sid"`
	Generation uint64 `json:"gen"`
}

// refreshToken returns the refresh token of s's current generation.
func refreshToken(key []byte, issuer string, s *Session) (string, error) {
	c := refreshClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   s.Subject,
			IssuedAt:  jwt.NewNumericDate(s.RotatedAt),
			ExpiresAt: jwt.NewNumericDate(s.ExpiresAt),
		},
		SessionID:  s.ID,
		Generation: s.Generation,
	}
	return signJWT(jwt.SigningMethodHS256, key, refreshKID, TypeRefresh, c)
}
