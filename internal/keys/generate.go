package keys

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"time"
)

func generate(alg Algorithm, now time.Time) (*Key, error) {
	k := &Key{ID: newKID(), Algorithm: alg, Method: alg.Method(), CreatedAt: now}
	var err error
	switch alg {
	case EdDSA:
		var priv ed25519.PrivateKey
		_, priv, err = ed25519.GenerateKey(rand.Reader)
		k.SignKey, k.VerifyKey = priv, priv.Public()
	case ES256:
		var priv *ecdsa.PrivateKey
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err == nil {
			k.SignKey, k.VerifyKey = priv, priv.Public()
		}
	case RS256:
		var priv *rsa.PrivateKey
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			k.SignKey, k.VerifyKey = priv, priv.Public()
		}
	case HS256:
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		k.SignKey, k.VerifyKey = secret, secret
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return k, nil
}

func newKID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return b64.EncodeToString(b)
}
