package token

import (
	"encoding/json"
	"fmt"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Token types (the `typ` header).
const (
	TypeAccess  = accesstoken.TypeAccess
	TypeRefresh = accesstoken.TypeRefresh
)

type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// signJWT returns the compact JWS of the JSON payload under method and key.
func signJWT(method jwt.SigningMethod, key any, kid, typ string, payload []byte) (string, error) {
	h, err := json.Marshal(header{Alg: method.Alg(), Kid: kid, Typ: typ})
	if err != nil {
		return "", fmt.Errorf("encode header: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(payload)
	sig, err := method.Sign(signing, key)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// refreshClaims are a refresh token's claims, written and read by the authority alone. Every field
// is derived from the session, so the token of a given generation can be made again, byte for
// byte.
type refreshClaims struct {
	Issuer     string `json:"iss"`
	Subject    string `json:"sub"`
	ExpiresAt  int64  `json:"exp"`
	IssuedAt   int64  `json:"iat"`
	SessionID  string `json:"sid"`
	Generation uint64 `json:"gen"`
	// CertThumbprint is the session's certificate binding, checked before the store is asked to
	// rotate; absent when the session is unbound.
	CertThumbprint string `json:"x5t,omitempty"`
}

// refreshToken returns the refresh token of s's current generation, signed by key and naming it.
func refreshToken(key *keys.RefreshKey, issuer string, s *store.Session) (string, error) {
	c := refreshClaims{
		Issuer:     issuer,
		Subject:    s.Subject,
		ExpiresAt:  s.ExpiresAt.Unix(),
		IssuedAt:   s.RotatedAt.Unix(),
		SessionID:  s.ID,
		Generation: s.Generation,

		CertThumbprint: s.CertThumbprint,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode claims: %w", err)
	}
	return signJWT(jwt.SigningMethodHS256, key.Secret, key.ID, TypeRefresh, payload)
}
