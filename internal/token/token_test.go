package token_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokenauthority/tokenauthority/internal/audit/audittest"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

type fixture struct {
	svc    *token.Service
	clock  *storetest.Clock
	keys   *keys.Manager
	tenant *tenant.Tenant
	other  *tenant.Tenant
	audit  *audittest.Log
}

const grace = 5 * time.Second

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith is newFixture with the service's configuration passed through mod (when not nil)
// before the service is made.
func newFixtureWith(t testing.TB, mod func(*token.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	st := memory.New(clock.Now)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	km, err := keys.NewManager(st, kek, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"acme", "globex"} {
		if err := km.Ensure(ctx, id, keys.EdDSA); err != nil {
			t.Fatal(err)
		}
	}
	auditWriter, auditLog := audittest.New()
	cfg := token.Config{
		Store: st, Keys: km, Now: clock.Now,
		AccessTTL: 15 * time.Minute, RefreshTTL: 168 * time.Hour,
		MaxAccessTTL: time.Hour, MaxRefreshTTL: 720 * time.Hour,
		RefreshGrace: grace,
		Audit:        auditWriter,
	}
	if mod != nil {
		mod(&cfg)
	}
	svc := token.New(cfg)
	return &fixture{
		svc: svc, clock: clock, keys: km, audit: auditLog,
		tenant: &tenant.Tenant{ID: "acme", Issuer: "https://acme.example"},
		other:  &tenant.Tenant{ID: "globex", Issuer: "https://acme.example"}, // same issuer on purpose
	}
}

func (f *fixture) issue(t *testing.T, mod func(*token.IssueRequest)) *token.Pair {
	t.Helper()
	req := token.IssueRequest{
		Tenant: f.tenant, Subject: "alice", Audience: []string{"orders"}, Scopes: []string{"read", "write"},
		Extra: map[string]any{"role": "buyer"}, Metadata: store.Metadata{UserAgent: "test", IP: "127.0.0.1"},
	}
	if mod != nil {
		mod(&req)
	}
	p, err := f.svc.Issue(context.Background(), req)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return p
}

func (f *fixture) verify(t *testing.T, tok string, mod func(*token.VerifyRequest)) *token.Verification {
	t.Helper()
	req := token.VerifyRequest{Tenant: f.tenant, Token: tok}
	if mod != nil {
		mod(&req)
	}
	v, err := f.svc.Verify(context.Background(), req)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

// sign makes a token with the tenant's current signing key and arbitrary header and claims.
func (f *fixture) sign(t *testing.T, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	k, err := f.keys.SigningKey(context.Background(), f.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(k.Method, jwt.MapClaims(claims))
	tok.Header["kid"] = k.ID
	tok.Header["typ"] = token.TypeAccess
	for name, v := range hdr {
		if v == nil {
			delete(tok.Header, name)
		} else {
			tok.Header[name] = v
		}
	}
	s, err := tok.SignedString(k.SignKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeSegment(t *testing.T, tok string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIssueAccessTokenShape(t *testing.T) {
	f := newFixture(t)
	p := f.issue(t, nil)
	h := decodeSegment(t, p.AccessToken, 0)
	if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] == "" {
		t.Errorf("header = %v", h)
	}
	c := decodeSegment(t, p.AccessToken, 1)
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "scope", "role"} {
		if _, ok := c[name]; !ok {
			t.Errorf("claim %q missing from %v", name, c)
		}
	}
	if c["sid"] != p.SessionID || c["scope"] != "read write" || c["iss"] != f.tenant.Issuer {
		t.Errorf("claims = %v", c)
	}
	if got := p.AccessExpiresAt.Sub(f.clock.Now()); got != 15*time.Minute {
		t.Errorf("access lifetime = %v, want 15m", got)
	}
	if got := p.RefreshExpiresAt.Sub(f.clock.Now()); got != 168*time.Hour {
		t.Errorf("refresh lifetime = %v, want 168h", got)
	}
	if rh := decodeSegment(t, p.RefreshToken, 0); rh["typ"] != "rt+jwt" || rh["alg"] != "HS256" {
		t.Errorf("refresh header = %v", rh)
	}
	v := f.verify(t, p.AccessToken, nil)
	if !v.Active {
		t.Fatalf("fresh token inactive: %v", v.Reason)
	}
	want := token.Claims{
		Issuer: f.tenant.Issuer, Subject: "alice", Audience: []string{"orders"},
		ExpiresAt: p.AccessExpiresAt, NotBefore: f.clock.Now(), IssuedAt: f.clock.Now(), IssuedAtExact: f.clock.Now(),
		JTI: c["jti"].(string), SessionID: p.SessionID, Scopes: []string{"read", "write"},
		Extra: map[string]any{"role": "buyer"},
	}
	if !reflect.DeepEqual(*v.Claims, want) {
		t.Errorf("claims\n got %+v\nwant %+v", *v.Claims, want)
	}
}

func TestIssueRefusesBadRequests(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*token.IssueRequest)
	}{
		{"no subject", func(r *token.IssueRequest) { r.Subject = "" }},
		{"access ttl above bound", func(r *token.IssueRequest) { r.AccessTTL = 2 * time.Hour }},
		{"refresh ttl above bound", func(r *token.IssueRequest) { r.RefreshTTL = 1000 * time.Hour }},
		{"negative ttl", func(r *token.IssueRequest) { r.AccessTTL = -time.Second }},
		{"extra overrides sub", func(r *token.IssueRequest) { r.Extra = map[string]any{"sub": "root"} }},
		{"extra overrides scope", func(r *token.IssueRequest) { r.Extra = map[string]any{"scope": "admin"} }},
		// encoding/json matches struct fields case-insensitively (with Unicode folding), so each of
		// these would replace the registered claim for a consumer decoding into a struct.
		{"extra Sub", func(r *token.IssueRequest) { r.Extra = map[string]any{"Sub": "root"} }},
		{"extra SUB", func(r *token.IssueRequest) { r.Extra = map[string]any{"SUB": "root"} }},
		{"extra long s ub", func(r *token.IssueRequest) { r.Extra = map[string]any{"\u017fub": "root"} }},
		{"extra Exp", func(r *token.IssueRequest) { r.Extra = map[string]any{"Exp": 4102444800} }},
		{"extra Aud", func(r *token.IssueRequest) { r.Extra = map[string]any{"Aud": "admin"} }},
		{"extra Iss", func(r *token.IssueRequest) { r.Extra = map[string]any{"Iss": "https://evil.example"} }},
		{"extra Scope", func(r *token.IssueRequest) { r.Extra = map[string]any{"Scope": "admin"} }},
		{"extra cnf", func(r *token.IssueRequest) { r.Extra = map[string]any{"cnf": map[string]any{"x5t#S256": "x"}} }},
		{"extra act", func(r *token.IssueRequest) { r.Extra = map[string]any{"act": map[string]any{"sub": "svc"}} }},
		{"scope with space", func(r *token.IssueRequest) { r.Scopes = []string{"a b"} }},
		{"scope with NBSP", func(r *token.IssueRequest) { r.Scopes = []string{"orders.read\u00a0orders.write"} }},
		{"scope with tab", func(r *token.IssueRequest) { r.Scopes = []string{"a\tb"} }},
		{"scope not ASCII", func(r *token.IssueRequest) { r.Scopes = []string{"caf\u00e9"} }},
		{"token over the verify limit", func(r *token.IssueRequest) {
			// Every field within its own limit, the token above what VerifyToken accepts.
			for i := range 16 {
				r.Audience = append(r.Audience, strings.Repeat(string(rune('a'+i)), 256))
			}
			for i := range 20 {
				r.Scopes = append(r.Scopes, strings.Repeat(string(rune('a'+i)), 256))
			}
		}},
		{"empty audience", func(r *token.IssueRequest) { r.Audience = []string{""} }},
		{"huge extra", func(r *token.IssueRequest) { r.Extra = map[string]any{"blob": strings.Repeat("x", 5000)} }},
		{"audience not allowed", func(r *token.IssueRequest) {
			r.Tenant = &tenant.Tenant{ID: "acme", Issuer: "https://acme.example", AllowedAudiences: []string{"billing"}}
			r.Audience = []string{"orders"}
		}},
		{"tenant bound tighter", func(r *token.IssueRequest) {
			r.Tenant = &tenant.Tenant{ID: "acme", Issuer: "https://acme.example", MaxAccessTTL: time.Minute}
			r.AccessTTL = 2 * time.Minute
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			req := token.IssueRequest{Tenant: f.tenant, Subject: "alice"}
			tt.mod(&req)
			_, err := f.svc.Issue(context.Background(), req)
			if !errors.Is(err, token.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

func TestVerifyReasons(t *testing.T) {
	ctx := context.Background()
	_, pub, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		// make returns the token to verify and the request modifier.
		make func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest))
		want token.Reason
	}{
		{"active", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			return f.issue(t, nil).AccessToken, nil
		}, token.ReasonNone},
		{"not a jwt", func(*testing.T, *fixture) (string, func(*token.VerifyRequest)) { return "hello", nil }, token.ReasonMalformed},
		{"bad base64", func(*testing.T, *fixture) (string, func(*token.VerifyRequest)) { return "a!.b!.c!", nil }, token.ReasonMalformed},
		{"alg none", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil).AccessToken
			parts := strings.Split(p, ".")
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
			return h + "." + parts[1] + ".", nil
		}, token.ReasonUnsupportedAlgorithm},
		{"alg confusion HS256 with public key", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			k, _ := f.keys.SigningKey(ctx, f.tenant.ID)
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
			tok.Header["kid"], tok.Header["typ"] = k.ID, "at+jwt"
			s, _ := tok.SignedString([]byte(k.VerifyKey.(ed25519.PublicKey)))
			return s, nil
		}, token.ReasonUnsupportedAlgorithm},
		{"iat_ms outside iat's second", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			c["iat_ms"] = c["iat"].(float64)*1000 + 1000
			return f.sign(t, nil, c), nil
		}, token.ReasonMalformed},
		{"iat_ms a string", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			c["iat_ms"] = "now"
			return f.sign(t, nil, c), nil
		}, token.ReasonMalformed},
		{"unknown kid", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			return f.sign(t, map[string]any{"kid": "nope"}, decodeSegment(t, f.issue(t, nil).AccessToken, 1)), nil
		}, token.ReasonUnknownKey},
		{"another tenant's token", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, func(r *token.IssueRequest) { r.Tenant = f.other })
			return p.AccessToken, nil
		}, token.ReasonUnknownKey},
		{"another tenant's key under a colliding kid", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			// Same issuer (the fixture's tenants share one), same algorithm, same audience, and
			// the kid of this tenant's key: only the signature tells, and it does not verify.
			mine, _ := f.keys.SigningKey(ctx, f.tenant.ID)
			theirs, _ := f.keys.SigningKey(ctx, f.other.ID)
			tok := jwt.NewWithClaims(theirs.Method, jwt.MapClaims(decodeSegment(t, f.issue(t, nil).AccessToken, 1)))
			tok.Header["kid"], tok.Header["typ"] = mine.ID, "at+jwt"
			s, err := tok.SignedString(theirs.SignKey)
			if err != nil {
				t.Fatal(err)
			}
			return s, nil
		}, token.ReasonBadSignature},
		{"tampered payload", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			parts := strings.Split(f.issue(t, nil).AccessToken, ".")
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			c["sub"] = "mallory"
			raw, _ := json.Marshal(c)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2], nil
		}, token.ReasonBadSignature},
		{"signature of another key", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			_ = pub
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			k, _ := f.keys.SigningKey(ctx, f.tenant.ID)
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(decodeSegment(t, f.issue(t, nil).AccessToken, 1)))
			tok.Header["kid"], tok.Header["typ"] = k.ID, "at+jwt"
			s, _ := tok.SignedString(priv)
			return s, nil
		}, token.ReasonBadSignature},
		{"refresh token as access token", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			// HS256 is on the allow-list, but the refresh key is no key of the tenant's.
			return f.issue(t, nil).RefreshToken, nil
		}, token.ReasonUnknownKey},
		{"wrong typ", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			return f.sign(t, map[string]any{"typ": "JWT"}, decodeSegment(t, f.issue(t, nil).AccessToken, 1)), nil
		}, token.ReasonWrongType},
		{"expired", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil)
			f.clock.Advance(16 * time.Minute)
			return p.AccessToken, nil
		}, token.ReasonExpired},
		{"not yet valid", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			c["nbf"] = f.clock.Now().Add(time.Hour).Unix()
			return f.sign(t, nil, c), nil
		}, token.ReasonNotYetValid},
		{"missing exp", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			delete(c, "exp")
			return f.sign(t, nil, c), nil
		}, token.ReasonMalformed},
		{"wrong issuer", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			c["iss"] = "https://evil.example"
			return f.sign(t, nil, c), nil
		}, token.ReasonWrongIssuer},
		{"wrong audience", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			return f.issue(t, nil).AccessToken, func(r *token.VerifyRequest) { r.Audience = "billing" }
		}, token.ReasonWrongAudience},
		{"session ended", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil)
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{SessionID: p.SessionID}); err != nil {
				t.Fatal(err)
			}
			return p.AccessToken, nil
		}, token.ReasonSessionEnded},
		{"session unknown (forged sid)", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			c := decodeSegment(t, f.issue(t, nil).AccessToken, 1)
			sid := store.NewSessionID("acme", "alice")
			c["sid"], c["jti"] = sid, sid+".AAAAAAAAAAAAAAAA"
			return f.sign(t, nil, c), nil
		}, token.ReasonSessionEnded},
		{"token revoked by jti", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil)
			jti := decodeSegment(t, p.AccessToken, 1)["jti"].(string)
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{JTI: jti}); err != nil {
				t.Fatal(err)
			}
			return p.AccessToken, nil
		}, token.ReasonRevoked},
		{"token revoked by value", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil)
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{Token: p.AccessToken}); err != nil {
				t.Fatal(err)
			}
			return p.AccessToken, nil
		}, token.ReasonRevoked},
		{"subject cut-off", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil)
			f.clock.Advance(time.Millisecond)
			if _, err := f.svc.RevokeSubject(ctx, f.tenant, "alice"); err != nil {
				t.Fatal(err)
			}
			return p.AccessToken, nil
		}, token.ReasonCutOff},
		{"subject cut-off in the session's own millisecond", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			// No clock advance: the revocation lands in the millisecond the session was opened.
			p := f.issue(t, nil)
			if _, err := f.svc.RevokeSubject(ctx, f.tenant, "alice"); err != nil {
				t.Fatal(err)
			}
			return p.AccessToken, nil
		}, token.ReasonCutOff},
		{"tenant cut-off", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			p := f.issue(t, nil)
			f.clock.Advance(time.Millisecond)
			if _, err := f.svc.RevokeTenant(ctx, f.tenant); err != nil {
				t.Fatal(err)
			}
			return p.AccessToken, nil
		}, token.ReasonCutOff},
		{"insufficient scope", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			return f.issue(t, nil).AccessToken, func(r *token.VerifyRequest) { r.RequiredScopes = []string{"read", "admin"} }
		}, token.ReasonInsufficientScope},
		{"required scopes present", func(t *testing.T, f *fixture) (string, func(*token.VerifyRequest)) {
			return f.issue(t, nil).AccessToken, func(r *token.VerifyRequest) { r.RequiredScopes = []string{"write", "read"}; r.Audience = "orders" }
		}, token.ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tok, mod := tt.make(t, f)
			v := f.verify(t, tok, mod)
			if v.Reason != tt.want || v.Active != (tt.want == token.ReasonNone) {
				t.Fatalf("got active=%v reason=%v, want reason %v", v.Active, v.Reason, tt.want)
			}
			if !v.Active && v.Claims != nil {
				t.Errorf("inactive answer carries claims")
			}
		})
	}
}

func TestVerifyRefusesBadFields(t *testing.T) {
	f := newFixture(t)
	for _, tok := range []string{"", strings.Repeat("a", token.MaxTokenSize+1)} {
		_, err := f.svc.Verify(context.Background(), token.VerifyRequest{Tenant: f.tenant, Token: tok})
		if !errors.Is(err, token.ErrInvalidArgument) {
			t.Errorf("len %d: err = %v, want ErrInvalidArgument", len(tok), err)
		}
	}
	// Every caller of Verify (gRPC, ext_authz, introspection) gets the thumbprint's spelling checked.
	tok := f.issue(t, nil).AccessToken
	for _, tp := range []string{"not one", strings.Repeat("A", 42) + "B"} {
		_, err := f.svc.Verify(context.Background(), token.VerifyRequest{Tenant: f.tenant, Token: tok, CertThumbprint: tp})
		if !errors.Is(err, token.ErrInvalidArgument) {
			t.Errorf("thumbprint %q: err = %v, want ErrInvalidArgument", tp, err)
		}
	}
}

func TestCutOffSparesLaterSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	before := f.issue(t, nil)
	f.clock.Advance(time.Millisecond)
	if _, err := f.svc.RevokeTenant(ctx, f.tenant); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Millisecond)
	after := f.issue(t, nil)
	if v := f.verify(t, before.AccessToken, nil); v.Reason != token.ReasonCutOff {
		t.Errorf("before cut-off: %v", v.Reason)
	}
	if v := f.verify(t, after.AccessToken, nil); !v.Active {
		t.Errorf("after cut-off: %v", v.Reason)
	}
	if _, err := f.svc.Refresh(ctx, f.tenant, before.RefreshToken); !errors.Is(err, token.ErrInvalidRefreshToken) {
		t.Errorf("refresh of a cut-off session: %v", err)
	}
}

func TestRefreshRotates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.issue(t, nil)
	f.clock.Advance(time.Minute)
	n, err := f.svc.Refresh(ctx, f.tenant, p.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if n.RefreshToken == p.RefreshToken || n.AccessToken == p.AccessToken || n.SessionID != p.SessionID {
		t.Fatalf("refresh did not rotate")
	}
	if !n.RefreshExpiresAt.Equal(p.RefreshExpiresAt) {
		t.Errorf("refresh moved the session's end from %v to %v", p.RefreshExpiresAt, n.RefreshExpiresAt)
	}
	c := decodeSegment(t, n.AccessToken, 1)
	if c["role"] != "buyer" || c["scope"] != "read write" {
		t.Errorf("refreshed claims lost the session's: %v", c)
	}
	// The new pair works; the new refresh token rotates again.
	if v := f.verify(t, n.AccessToken, nil); !v.Active {
		t.Fatalf("refreshed access token: %v", v.Reason)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.svc.Refresh(ctx, f.tenant, n.RefreshToken); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshConcurrentSameToken(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.issue(t, nil)
	f.clock.Advance(time.Second)
	const n = 50
	var wg sync.WaitGroup
	results := make([]*token.Pair, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.svc.Refresh(ctx, f.tenant, p.RefreshToken)
		}()
	}
	wg.Wait()
	distinct, distinctAccess := map[string]bool{}, map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("refresh %d: %v", i, errs[i])
		}
		distinct[results[i].RefreshToken] = true
		distinctAccess[results[i].AccessToken] = true
	}
	if len(distinct) != 1 {
		t.Fatalf("%d distinct new refresh tokens among %d successes, want 1", len(distinct), n)
	}
	// A retry gets the same pair back, access token included: a grace window mints one.
	if len(distinctAccess) != 1 {
		t.Fatalf("%d distinct new access tokens among %d successes, want 1", len(distinctAccess), n)
	}
	f.clock.Advance(grace - time.Second)
	late, err := f.svc.Refresh(ctx, f.tenant, p.RefreshToken)
	if err != nil {
		t.Fatalf("retry late in the grace window: %v", err)
	}
	if late.AccessToken != results[0].AccessToken || late.RefreshToken != results[0].RefreshToken || !late.AccessExpiresAt.Equal(results[0].AccessExpiresAt) {
		t.Fatal("a retry late in the grace window got a different pair")
	}
	if v := f.verify(t, results[0].AccessToken, nil); !v.Active {
		t.Fatalf("session not alive after concurrent refresh: %v", v.Reason)
	}
	// After the grace window the old token is reuse: the session dies.
	f.clock.Advance(grace + time.Second)
	if _, err := f.svc.Refresh(ctx, f.tenant, p.RefreshToken); !errors.Is(err, token.ErrRefreshReuse) {
		t.Fatalf("reuse after grace: err = %v, want ErrRefreshReuse", err)
	}
	if v := f.verify(t, results[0].AccessToken, nil); v.Reason != token.ReasonSessionEnded {
		t.Fatalf("after reuse: %v, want session_ended", v.Reason)
	}
	if _, err := f.svc.Refresh(ctx, f.tenant, results[0].RefreshToken); !errors.Is(err, token.ErrInvalidRefreshToken) {
		t.Fatalf("refresh of the revoked family: %v", err)
	}
	if !strings.Contains(f.audit.String(), `"audit":"refresh_reuse"`) {
		t.Errorf("no audit line for reuse: %s", f.audit.String())
	}
	for _, secret := range []string{p.RefreshToken, results[0].RefreshToken, results[0].AccessToken} {
		if strings.Contains(f.audit.String(), secret) {
			t.Fatal("audit log contains a token")
		}
	}
}

func TestRefreshRejects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		make func(t *testing.T, f *fixture) (*tenant.Tenant, string)
	}{
		{"access token as refresh token", func(t *testing.T, f *fixture) (*tenant.Tenant, string) {
			return f.tenant, f.issue(t, nil).AccessToken
		}},
		{"another tenant's refresh token", func(t *testing.T, f *fixture) (*tenant.Tenant, string) {
			return f.other, f.issue(t, nil).RefreshToken
		}},
		{"garbage", func(*testing.T, *fixture) (*tenant.Tenant, string) { return nil, "x.y.z" }},
		{"expired session", func(t *testing.T, f *fixture) (*tenant.Tenant, string) {
			p := f.issue(t, func(r *token.IssueRequest) { r.RefreshTTL = time.Hour })
			f.clock.Advance(time.Hour + time.Second)
			return f.tenant, p.RefreshToken
		}},
		{"revoked session", func(t *testing.T, f *fixture) (*tenant.Tenant, string) {
			p := f.issue(t, nil)
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{Token: p.RefreshToken}); err != nil {
				t.Fatal(err)
			}
			return f.tenant, p.RefreshToken
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tn, tok := tt.make(t, f)
			if tn == nil {
				tn = f.tenant
			}
			if _, err := f.svc.Refresh(ctx, tn, tok); !errors.Is(err, token.ErrInvalidRefreshToken) {
				t.Fatalf("err = %v, want ErrInvalidRefreshToken", err)
			}
		})
	}
}

func TestRevokeUnknownTargetsSucceed(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, target := range []token.RevokeTarget{
		{Token: "not.a.token"},
		{JTI: "nonsense"},
		{JTI: store.NewSessionID("acme", "bob") + ".AAAAAAAAAAAAAAAA"},
		{SessionID: store.NewSessionID("acme", "bob")},
		{SessionID: "short"},
	} {
		if err := f.svc.Revoke(ctx, f.tenant, target); err != nil {
			t.Errorf("Revoke(%+v) = %v, want nil", target, err)
		}
	}
	if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{}); !errors.Is(err, token.ErrInvalidArgument) {
		t.Errorf("empty target: %v", err)
	}
}

func TestRevokeIsTenantScoped(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.issue(t, nil)
	jti := decodeSegment(t, p.AccessToken, 1)["jti"].(string)
	for _, target := range []token.RevokeTarget{{JTI: jti}, {SessionID: p.SessionID}, {Token: p.RefreshToken}} {
		if err := f.svc.Revoke(ctx, f.other, target); err != nil {
			t.Fatal(err)
		}
	}
	if v := f.verify(t, p.AccessToken, nil); !v.Active {
		t.Fatalf("another tenant's revocation took effect: %v", v.Reason)
	}
}

func TestListSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var ids []string
	for range 5 {
		ids = append(ids, f.issue(t, nil).SessionID)
		f.clock.Advance(time.Second)
	}
	f.issue(t, func(r *token.IssueRequest) { r.Subject = "bob" })
	var got []string
	next := ""
	for {
		page, n, err := f.svc.ListSessions(ctx, f.tenant, "alice", 2, next)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			got = append(got, s.ID)
		}
		if n == "" {
			break
		}
		next = n
	}
	if len(got) != 5 {
		t.Fatalf("listed %d sessions, want 5", len(got))
	}
	for i := range got {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("order: got %v, want newest first of %v", got, ids)
		}
	}
}

// TestWithdrawnKeyDropsCachedVerifications: a token verified once is remembered (signature and
// claims); withdrawing its key makes it inactive at the next Verify on the same replica, although
// its verification is cached.
func TestWithdrawnKeyDropsCachedVerifications(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.issue(t, nil)
	for range 2 { // the second is answered from the cache
		if v := f.verify(t, p.AccessToken, nil); !v.Active {
			t.Fatalf("before the withdrawal: %v", v.Reason)
		}
	}
	k, err := f.keys.SigningKey(ctx, f.tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.keys.Withdraw(ctx, f.tenant.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if v := f.verify(t, p.AccessToken, nil); v.Active || v.Reason != token.ReasonUnknownKey {
		t.Fatalf("after the withdrawal: active %v, reason %v; want inactive, unknown key", v.Active, v.Reason)
	}
}
