package token_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// shapeMutations make an encoded payload malformed in one way each; nil leaves it as encoded.
var shapeMutations = []struct {
	name   string
	mutate func(m map[string]any)
}{
	{"as encoded", nil},
	{"no sid", func(m map[string]any) { delete(m, "sid") }},
	{"empty sid", func(m map[string]any) { m["sid"] = "" }},
	{"numeric sid", func(m map[string]any) { m["sid"] = 7 }},
	{"no jti", func(m map[string]any) { delete(m, "jti") }},
	{"no exp", func(m map[string]any) { delete(m, "exp") }},
	{"fractional exp", func(m map[string]any) { m["exp"] = m["exp"].(float64) + 0.5 }},
	{"fractional iat", func(m map[string]any) { m["iat"] = m["iat"].(float64) + 0.25 }},
	{"fractional nbf", func(m map[string]any) { m["nbf"] = m["nbf"].(float64) + 0.5 }},
	{"string nbf", func(m map[string]any) { m["nbf"] = "soon" }},
	{"iat_ms outside iat's second", func(m map[string]any) { m["iat_ms"] = m["iat_ms"].(float64) + 1000 }},
	{"fractional iat_ms", func(m map[string]any) { m["iat_ms"] = m["iat_ms"].(float64) + 0.5 }},
	{"no iat_ms", func(m map[string]any) { delete(m, "iat_ms") }},
	{"no iss", func(m map[string]any) { delete(m, "iss") }},
	{"null sub", func(m map[string]any) { m["sub"] = nil }},
	{"numeric aud", func(m map[string]any) { m["aud"] = 5 }},
	{"aud of numbers", func(m map[string]any) { m["aud"] = []any{1} }},
	{"single aud", func(m map[string]any) { m["aud"] = "orders" }},
	{"numeric scope", func(m map[string]any) { m["scope"] = 7 }},
	{"unreadable cnf", func(m map[string]any) { m["cnf"] = "x" }},
	{"malformed act", func(m map[string]any) { m["act"] = map[string]any{"sub": ""} }},
}

// TestCodecPropertyBothVerifiersAgree encodes random claims with accesstoken.Encode (made
// malformed in one way or not), signs them with the tenant's key, and verifies each token with the
// authority (Service.Verify) and with authn's local verifier: both must give the same answer, and
// the same claims when they accept it.
func TestCodecPropertyBothVerifiersAgree(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid := f.issue(t, nil).SessionID
	signer, err := f.keys.SigningKey(ctx, f.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	j, ok := keys.PublicJWK(signer)
	if !ok {
		t.Fatal("the fixture's key has no public half")
	}
	local, err := authn.NewStatic([]*tokenauthorityv1.JsonWebKey{{Kty: j.Kty, Kid: j.Kid, Use: j.Use, Alg: j.Alg, Crv: j.Crv, X: j.X}},
		authn.WithIssuer(f.tenant.Issuer), authn.WithAnyAudience(), authn.WithClock(f.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()

	// The authority's reasons that authn reports as an error of its own.
	same := map[token.Reason]error{
		token.ReasonMalformed: authn.ErrMalformed, token.ReasonExpired: authn.ErrExpired,
		token.ReasonNotYetValid: authn.ErrNotYetValid, token.ReasonWrongIssuer: authn.ErrWrongIssuer,
		token.ReasonCertificateMismatch: authn.ErrCertificateMismatch,
	}
	rng := rand.New(rand.NewPCG(17, 1))
	seen := map[string]int{}
	for i := range 600 {
		c, presented := randomClaims(rng, f.tenant.Issuer, sid, f.clock.Now().Unix())
		var extra []byte
		if rng.IntN(2) == 0 {
			extra = []byte(`{"role":"buyer","n":` + fmt.Sprint(rng.IntN(100)) + `}`)
		}
		payload, err := accesstoken.Encode(c, extra)
		if err != nil {
			t.Fatal(err)
		}
		mut := shapeMutations[0]
		if rng.IntN(2) == 0 {
			mut = shapeMutations[rng.IntN(len(shapeMutations))]
		}
		if mut.mutate != nil {
			var m map[string]any
			if err := json.Unmarshal(payload, &m); err != nil {
				t.Fatal(err)
			}
			mut.mutate(m)
			if payload, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
		}
		tok := signPayload(t, signer, payload)

		v, err := f.svc.Verify(ctx, token.VerifyRequest{Tenant: f.tenant, Token: tok, CertThumbprint: presented})
		if err != nil {
			t.Fatalf("#%d (%s): authority: %v", i, mut.name, err)
		}
		lc, lerr := local.Verify(authn.WithPresentedThumbprint(ctx, presented), tok)
		seen[v.Reason.String()]++

		switch want, known := same[v.Reason]; {
		case v.Active:
			if lerr != nil {
				t.Fatalf("#%d (%s): the authority accepts %s, authn refuses it: %v", i, mut.name, payload, lerr)
			}
			compareClaims(t, i, v.Claims, lc)
		case known:
			if !errors.Is(lerr, want) {
				t.Fatalf("#%d (%s): the authority answers %v for %s, authn %v", i, mut.name, v.Reason, payload, lerr)
			}
		default:
			t.Fatalf("#%d (%s): unexpected authority answer %v for %s", i, mut.name, v.Reason, payload)
		}
	}
	// The loop must have reached both acceptance and each kind of refusal it can produce.
	for _, r := range []string{"none", "malformed", "expired", "not_yet_valid", "wrong_issuer", "certificate_mismatch"} {
		if seen[r] == 0 {
			t.Errorf("no token was answered %s: the generator misses a case (answers: %v)", r, seen)
		}
	}
}

// randomClaims returns claims of the session sid around now, and the thumbprint a resource
// server is presented with (empty, the bound one, or another).
func randomClaims(rng *rand.Rand, issuer, sid string, now int64) (*accesstoken.Claims, string) {
	iat := now + rng.Int64N(240) - 180 // up to 3 minutes back, 1 minute ahead
	c := &accesstoken.Claims{
		Issuer: issuer, Subject: pick(rng, "alice", "bob", "", "ünïcode"),
		ExpiresAt: iat + rng.Int64N(300), NotBefore: iat, IssuedAt: iat,
		IssuedAtMS: iat*1000 + rng.Int64N(1000),
		JTI:        sid + "." + randomB64(rng, 16), SessionID: sid,
	}
	if rng.IntN(8) == 0 {
		c.Issuer = "https://other.example"
	}
	for range rng.IntN(3) {
		c.Audience = append(c.Audience, pick(rng, "orders", "billing", "svc-b"))
	}
	var scopes []string
	for range rng.IntN(4) {
		scopes = append(scopes, pick(rng, "read", "write", "orders.read\u00a0orders.write", "x:y"))
	}
	c.Scope = accesstoken.JoinScope(scopes)
	if n := rng.IntN(4); n > 0 {
		chain := make([]accesstoken.Actor, n)
		for i := range chain {
			chain[i] = accesstoken.Actor{Subject: pick(rng, "svc-a", "svc-b", "svc-c")}
		}
		c.Act = accesstoken.ActorClaim(chain)
	}
	presented := ""
	if rng.IntN(3) == 0 {
		c.Confirmation = &accesstoken.Confirmation{X5tS256: randomThumbprint(rng)}
		presented = pick(rng, "", c.Confirmation.X5tS256, randomThumbprint(rng))
	}
	return c, presented
}

func compareClaims(t *testing.T, i int, a *token.Claims, l *authn.Claims) {
	t.Helper()
	actors := l.Actor
	got := &token.Claims{
		Issuer: l.Issuer, Subject: l.Subject, Audience: l.Audience, ExpiresAt: l.ExpiresAt,
		NotBefore: a.NotBefore, IssuedAt: a.IssuedAt, IssuedAtExact: l.IssuedAt, JTI: l.JTI,
		SessionID: l.SessionID, Scopes: l.Scopes, CertThumbprint: l.CertificateThumbprint,
		Extra: l.Extra, Actor: actors,
	}
	if !l.NotBefore.Equal(a.NotBefore) {
		t.Fatalf("#%d: nbf: authority %v, authn %v", i, a.NotBefore, l.NotBefore)
	}
	if !reflect.DeepEqual(a, got) {
		t.Fatalf("#%d: claims differ:\nauthority %+v\nauthn     %+v", i, a, got)
	}
}

func signPayload(t *testing.T, k *keys.Key, payload []byte) string {
	t.Helper()
	b64 := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": string(k.Algorithm), "kid": k.ID, "typ": token.TypeAccess})
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(payload)
	sig, err := k.Method.Sign(signing, k.SignKey)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64.EncodeToString(sig)
}

func pick(rng *rand.Rand, s ...string) string { return s[rng.IntN(len(s))] }

// randomThumbprint is the x5t#S256 thumbprint of a random certificate.
func randomThumbprint(rng *rand.Rand) string {
	return accesstoken.Thumbprint([]byte(randomB64(rng, 32)))
}

func randomB64(rng *rand.Rand, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}
