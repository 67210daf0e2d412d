package authntest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Defaults of an Issuer.
const (
	DefaultIssuer   = "https://authority.test/t/test"
	DefaultAudience = "test-service"
	DefaultKeyID    = "test-key"
	DefaultSubject  = "test-subject"
	DefaultTTL      = 5 * time.Minute
)

// Token types (the typ header).
const (
	TypeAccess  = accesstoken.TypeAccess
	TypeRefresh = accesstoken.TypeRefresh
)

var b64 = base64.RawURLEncoding

// Issuer mints tokens signed by one key. It is safe for concurrent use.
type Issuer struct {
	issuer   string
	audience []string
	kid      string
	alg      string
	method   jwt.SigningMethod
	signKey  crypto.Signer
	now      func() time.Time
	ttl      time.Duration
}

// Option configures an Issuer.
type Option func(*Issuer)

// WithIssuer sets the iss of the tokens (default DefaultIssuer).
func WithIssuer(iss string) Option { return func(i *Issuer) { i.issuer = iss } }

// WithAudience sets the default aud of the tokens, and the audience the Verifier expects (its
// first element; default DefaultAudience).
func WithAudience(aud ...string) Option { return func(i *Issuer) { i.audience = aud } }

// WithKeyID sets the kid of the key (default DefaultKeyID).
func WithKeyID(kid string) Option { return func(i *Issuer) { i.kid = kid } }

// WithClock sets the clock the tokens' times and the Verifier use (default time.Now).
func WithClock(now func() time.Time) Option { return func(i *Issuer) { i.now = now } }

// WithTTL sets the default lifetime of the tokens (default DefaultTTL).
func WithTTL(d time.Duration) Option { return func(i *Issuer) { i.ttl = d } }

// WithAlgorithm makes the Issuer sign with a fresh key of alg: "EdDSA" (the default), "ES256" or
// "RS256", the algorithms an authority tenant may use with public keys.
func WithAlgorithm(alg string) Option { return func(i *Issuer) { i.alg = alg } }

// WithEd25519Key makes the Issuer sign with key, for tokens that stay the same across runs.
func WithEd25519Key(key ed25519.PrivateKey) Option {
	return func(i *Issuer) { i.alg, i.signKey = string(accesstoken.EdDSA), key }
}

// NewIssuer returns an Issuer with a fresh key. It panics on an unknown algorithm.
func NewIssuer(opts ...Option) *Issuer {
	i := &Issuer{issuer: DefaultIssuer, audience: []string{DefaultAudience}, kid: DefaultKeyID, alg: string(accesstoken.EdDSA), now: time.Now, ttl: DefaultTTL}
	for _, o := range opts {
		o(i)
	}
	var err error
	i.method = accesstoken.Algorithm(i.alg).Method()
	switch accesstoken.Algorithm(i.alg) {
	case accesstoken.EdDSA:
		if i.signKey == nil {
			_, i.signKey, err = ed25519.GenerateKey(rand.Reader)
		}
	case accesstoken.ES256:
		i.signKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case accesstoken.RS256:
		i.signKey, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		panic(fmt.Sprintf("authntest: unknown algorithm %q", i.alg))
	}
	if err != nil {
		panic(fmt.Sprintf("authntest: generate key: %v", err))
	}
	return i
}

// Issuer returns the iss of the tokens.
func (i *Issuer) Issuer() string { return i.issuer }

// KeyID returns the kid of the key.
func (i *Issuer) KeyID() string { return i.kid }

// JWK returns the public key as the authority's ListPublicKeys publishes it.
func (i *Issuer) JWK() *tokenauthorityv1.JsonWebKey {
	j := &tokenauthorityv1.JsonWebKey{Kid: i.kid, Use: "sig", Alg: i.alg}
	switch pub := i.signKey.Public().(type) {
	case ed25519.PublicKey:
		j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64.EncodeToString(pub)
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(fmt.Sprintf("authntest: encode key: %v", err))
		}
		j.Kty, j.Crv = "EC", "P-256"
		j.X, j.Y = b64.EncodeToString(raw[1:33]), b64.EncodeToString(raw[33:])
	case *rsa.PublicKey:
		j.Kty = "RSA"
		j.N = b64.EncodeToString(pub.N.Bytes())
		j.E = b64.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	}
	return j
}

// Verifier returns a static local verifier of the Issuer's tokens: it expects the Issuer's iss and
// first audience, and uses its clock. opts come after those defaults and override them. It panics
// if opts make an invalid configuration.
func (i *Issuer) Verifier(opts ...authn.Option) *authn.Local {
	base := []authn.Option{authn.WithIssuer(i.issuer), authn.WithClock(i.now), authn.WithAnyAudience()}
	if len(i.audience) > 0 {
		base = append(base, authn.WithAudience(i.audience[0]))
	}
	v, err := authn.NewStatic([]*tokenauthorityv1.JsonWebKey{i.JWK()}, append(base, opts...)...)
	if err != nil {
		panic(fmt.Sprintf("authntest: %v", err))
	}
	return v
}

// tokenSpec is what Token mints.
type tokenSpec struct {
	accesstoken.Claims
	typ      string
	kid      string
	extra    map[string]any
	issuedAt time.Time
	ttl      time.Duration
	nbfShift time.Duration
}

// TokenOption changes one token.
type TokenOption func(*tokenSpec)

// Subject sets sub (default DefaultSubject).
func Subject(sub string) TokenOption { return func(s *tokenSpec) { s.Subject = sub } }

// Scopes sets the scopes.
func Scopes(scopes ...string) TokenOption {
	return func(s *tokenSpec) { s.Scope = strings.Join(scopes, " ") }
}

// Audience sets aud (default: the Issuer's audience); none leaves aud out.
func Audience(aud ...string) TokenOption { return func(s *tokenSpec) { s.Audience = aud } }

// TTL sets the lifetime from iat to exp.
func TTL(d time.Duration) TokenOption { return func(s *tokenSpec) { s.ttl = d } }

// IssuedAt sets iat and nbf (default: the Issuer's clock).
func IssuedAt(t time.Time) TokenOption { return func(s *tokenSpec) { s.issuedAt = t } }

// Expired makes a token that expired a minute ago (well past any leeway).
func Expired() TokenOption {
	return func(s *tokenSpec) { s.nbfShift, s.ttl = -2*time.Hour, 2*time.Hour-time.Minute }
}

// NotYetValid makes a token whose iat and nbf are a minute ahead (well past any leeway).
func NotYetValid() TokenOption { return func(s *tokenSpec) { s.nbfShift = time.Minute } }

// Type sets the typ header (default TypeAccess); TypeRefresh makes a token that must never pass as
// an access token.
func Type(typ string) TokenOption { return func(s *tokenSpec) { s.typ = typ } }

// KeyID sets the kid header (default: the Issuer's), for unknown-key tests.
func KeyID(kid string) TokenOption { return func(s *tokenSpec) { s.kid = kid } }

// IssuerName sets iss (default: the Issuer's), for wrong-issuer tests.
func IssuerName(iss string) TokenOption { return func(s *tokenSpec) { s.Issuer = iss } }

// SessionID sets sid (default: a fresh one); the jti stays of the session.
func SessionID(sid string) TokenOption { return func(s *tokenSpec) { s.SessionID = sid } }

// JTI sets jti (default: a fresh one of the session).
func JTI(jti string) TokenOption { return func(s *tokenSpec) { s.JTI = jti } }

// Actors makes a token obtained by token exchange, acting for its subject along the chain actors,
// outermost first (actors[0] is the service presenting it), as the authority writes it.
func Actors(actors ...string) TokenOption {
	return func(s *tokenSpec) {
		chain := make([]accesstoken.Actor, len(actors))
		for i, a := range actors {
			chain[i] = accesstoken.Actor{Subject: a}
		}
		s.Act = accesstoken.ActorClaim(chain)
	}
}

// BoundTo binds the token to the client certificate whose x5t#S256 thumbprint (unpadded
// base64url of the SHA-256 of its DER) is thumbprint: the cnf claim of RFC 8705.
func BoundTo(thumbprint string) TokenOption {
	return func(s *tokenSpec) {
		s.Confirmation = &accesstoken.Confirmation{X5tS256: thumbprint}
	}
}

// Extra adds an extra claim; it cannot replace a registered one.
func Extra(name string, value any) TokenOption {
	return func(s *tokenSpec) {
		if s.extra == nil {
			s.extra = map[string]any{}
		}
		s.extra[name] = value
	}
}

// Token mints a token. It panics if an extra claim is registered or not JSON.
func (i *Issuer) Token(opts ...TokenOption) string {
	s := &tokenSpec{typ: TypeAccess, kid: i.kid, ttl: i.ttl, issuedAt: i.now()}
	s.Issuer, s.Subject, s.Audience = i.issuer, DefaultSubject, i.audience
	for _, o := range opts {
		o(s)
	}
	if s.SessionID == "" {
		s.SessionID = randomString(12) + randomString(16) // 38 characters, as the authority's
	}
	if s.JTI == "" {
		s.JTI = s.SessionID + "." + randomString(12)
	}
	iat := s.issuedAt.Add(s.nbfShift)
	s.IssuedAt, s.NotBefore, s.ExpiresAt = iat.Unix(), iat.Unix(), iat.Add(s.ttl).Unix()
	s.IssuedAtMS = iat.UnixMilli()
	var extra []byte
	if len(s.extra) > 0 {
		for name := range s.extra {
			if accesstoken.IsReservedName(name) {
				panic(fmt.Sprintf("authntest: extra claim %q is registered", name))
			}
		}
		var err error
		if extra, err = json.Marshal(s.extra); err != nil {
			panic(fmt.Sprintf("authntest: extra claims: %v", err))
		}
	}
	payload, err := accesstoken.Encode(&s.Claims, extra)
	if err != nil {
		panic(fmt.Sprintf("authntest: %v", err))
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{i.alg, s.kid, s.typ})
	if err != nil {
		panic(fmt.Sprintf("authntest: %v", err))
	}
	signing := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sig, err := i.method.Sign(signing, i.signKey)
	if err != nil {
		panic(fmt.Sprintf("authntest: sign: %v", err))
	}
	return signing + "." + b64.EncodeToString(sig)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return b64.EncodeToString(b)
}
