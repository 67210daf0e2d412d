package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"time"
)

var b64 = base64.RawURLEncoding

// MaxJWKSMaxAge bounds JWKSMaxAge: a JWKS cached longer helps no rotation, and a consumer may keep
// a withdrawn key for that long.
const MaxJWKSMaxAge = 5 * time.Minute

// JWKSMaxAge is the Cache-Control max-age of the JWKS served with a pre-publish delay of
// prePublish (WithPrePublish), in whole seconds: half the delay, at most MaxJWKSMaxAge.
//
// Below the delay, so that a cache that fetched the JWKS just before a rotation fetches it again
// before the new key signs. Half of it, so that a consumer behind an HTTP cache or CDN that
// honours it too (a copy max-age old, which a consumer that ignores Age keeps max-age more) still
// has the key when it signs; a consumer without a cache in front has half the delay left to retry
// a failed fetch.
func JWKSMaxAge(prePublish time.Duration) time.Duration {
	return min(prePublish/2, MaxJWKSMaxAge).Truncate(time.Second)
}

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
