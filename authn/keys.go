package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/golang-jwt/jwt/v5"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// ErrNoUsableKeys reports a key set without a single public key this package can verify with:
// the tenant signs with HS256 (whose key is secret), or publishes nothing. Local verification
// cannot work for such a tenant; use NewRemote.
var ErrNoUsableKeys = errors.New("the tenant publishes no usable public key (HS256 tenants need remote verification)")

// verifyKey is one public key, ready for golang-jwt.
type verifyKey struct {
	kid    string
	alg    string
	method jwt.SigningMethod
	key    any
}

// keySet is an immutable set of keys by kid; a new set replaces it whole.
type keySet struct {
	byKid map[string]*verifyKey
}

var b64 = base64.RawURLEncoding.Strict()

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

// parseJWK returns the verification key of j, or why it is unusable.
func parseJWK(j *tokenauthorityv1.JsonWebKey) (*verifyKey, error) {
	if j.GetKid() == "" {
		return nil, errors.New("no kid")
	}
	if u := j.GetUse(); u != "" && u != "sig" {
		return nil, fmt.Errorf("use %q is not sig", u)
	}
	k := &verifyKey{kid: j.GetKid(), alg: j.GetAlg()}
	// HS256 keys are the authority's secret: none is ever published, and none can verify here.
	switch accesstoken.Algorithm(k.alg) {
	case accesstoken.EdDSA:
		if j.GetKty() != "OKP" || j.GetCrv() != "Ed25519" {
			return nil, fmt.Errorf("alg EdDSA needs kty OKP and crv Ed25519, not %s/%s", j.GetKty(), j.GetCrv())
		}
		x, err := b64.DecodeString(j.GetX())
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("x is not a base64url Ed25519 public key")
		}
		k.method, k.key = jwt.SigningMethodEdDSA, ed25519.PublicKey(x)
	case accesstoken.ES256:
		if j.GetKty() != "EC" || j.GetCrv() != "P-256" {
			return nil, fmt.Errorf("alg ES256 needs kty EC and crv P-256, not %s/%s", j.GetKty(), j.GetCrv())
		}
		x, errX := b64.DecodeString(j.GetX())
		y, errY := b64.DecodeString(j.GetY())
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("x and y are not base64url P-256 coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("not a P-256 point: %w", err)
		}
		k.method, k.key = jwt.SigningMethodES256, pub
	case accesstoken.RS256:
		if j.GetKty() != "RSA" {
			return nil, fmt.Errorf("alg RS256 needs kty RSA, not %s", j.GetKty())
		}
		n, errN := b64.DecodeString(j.GetN())
		e, errE := b64.DecodeString(j.GetE())
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("n and e are not a base64url RSA public key")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return nil, fmt.Errorf("RSA key of %d bits with exponent %d is too weak", pub.N.BitLen(), pub.E)
		}
		k.method, k.key = jwt.SigningMethodRS256, pub
	default:
		return nil, fmt.Errorf("alg %q cannot be verified with a public key", k.alg)
	}
	return k, nil
}

// newKeySet returns the usable keys of jwks, leaving out the kids for which skip is true (keys
// withdrawn by an event), and the problems of the unusable ones.
func newKeySet(jwks []*tokenauthorityv1.JsonWebKey, skip func(kid string) bool) (*keySet, []error) {
	ks := &keySet{byKid: make(map[string]*verifyKey, len(jwks))}
	var problems []error
	for _, j := range jwks {
		k, err := parseJWK(j)
		if err != nil {
			problems = append(problems, fmt.Errorf("key %q: %w", j.GetKid(), err))
			continue
		}
		if skip != nil && skip(k.kid) {
			continue
		}
		ks.byKid[k.kid] = k
	}
	return ks, problems
}

// reusing returns ks with the keys that old holds unchanged (same kid, algorithm and public key)
// replaced by old's, so that tokens verified by them stay remembered across a refetch.
func (ks *keySet) reusing(old *keySet) *keySet {
	if old == nil {
		return ks
	}
	for kid, k := range ks.byKid {
		o := old.byKid[kid]
		if o == nil || o.alg != k.alg {
			continue
		}
		if pub, ok := o.key.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(k.key) {
			ks.byKid[kid] = o
		}
	}
	return ks
}

// without returns a copy of ks without kid.
func (ks *keySet) without(kid string) *keySet {
	out := &keySet{byKid: make(map[string]*verifyKey, len(ks.byKid))}
	for id, k := range ks.byKid {
		if id != kid {
			out.byKid[id] = k
		}
	}
	return out
}
