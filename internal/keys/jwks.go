package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
)

var b64 = base64.RawURLEncoding

// JWK is the public half of a key in JSON Web Key form (RFC 7517).
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK returns k's public half as a JWK, and false for keys that have none (HS256).
func PublicJWK(k *Key) (JWK, bool) {
	j := JWK{Kid: k.ID, Use: "sig", Alg: string(k.Algorithm)}
	switch pub := k.VerifyKey.(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64.EncodeToString(pub)
	case *ecdsa.PublicKey:
		ecdh, err := pub.ECDH()
		if err != nil {
			return JWK{}, false
		}
		raw := ecdh.Bytes() // 0x04 || X || Y, fixed width
		size := (len(raw) - 1) / 2
		j.Kty, j.Crv = "EC", "P-256"
		j.X, j.Y = b64.EncodeToString(raw[1:1+size]), b64.EncodeToString(raw[1+size:])
	case *rsa.PublicKey:
		j.Kty = "RSA"
		j.N = b64.EncodeToString(pub.N.Bytes())
		j.E = b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	default:
		return JWK{}, false
	}
	return j, true
}

// ToJWKS returns the JWKS of keys, skipping those without a public half.
func ToJWKS(keys []*Key) JWKS {
	out := JWKS{Keys: []JWK{}}
	for _, k := range keys {
		if j, ok := PublicJWK(k); ok {
			out.Keys = append(out.Keys, j)
		}
	}
	return out
}
