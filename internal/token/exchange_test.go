package token_test

import (
	"context"
	"crypto/rand"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// policyA is the exchange policy of service A: it accepts tokens meant for "svc-a" and may ask for
// tokens for "svc-b" and "svc-c".
var policyA = &tenant.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b", "svc-c"}}

// userToken issues alice's token for service A (and "orders"), with scopes read and write.
func (f *fixture) userToken(t *testing.T) *token.Pair {
	t.Helper()
	return f.issue(t, func(r *token.IssueRequest) { r.Audience = []string{"svc-a", "orders"} })
}

func (f *fixture) exchangeReq(subjectToken string) token.ExchangeRequest {
	return token.ExchangeRequest{
		Tenant: f.tenant, SubjectToken: subjectToken, Actor: "svc-a", Policy: policyA,
		Audience: []string{"svc-b"}, Scopes: []string{"read"},
	}
}

func (f *fixture) exchange(t *testing.T, req token.ExchangeRequest) *token.Exchanged {
	t.Helper()
	ex, err := f.svc.Exchange(context.Background(), req)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	return ex
}

func TestExchange(t *testing.T) {
	f := newFixture(t)
	p := f.userToken(t)
	subject := f.verify(t, p.AccessToken, nil).Claims
	f.clock.Advance(time.Minute)
	ex := f.exchange(t, f.exchangeReq(p.AccessToken))

	v := f.verify(t, ex.AccessToken, func(r *token.VerifyRequest) { r.Audience = "svc-b" })
	if !v.Active {
		t.Fatalf("the exchanged token is inactive: %v", v.Reason)
	}
	c := v.Claims
	want := &token.Claims{
		Issuer: f.tenant.Issuer, Subject: "alice", Audience: []string{"svc-b"},
		ExpiresAt: time.Unix(f.clock.Now().Add(14*time.Minute).Unix(), 0).UTC(), // the subject token's exp
		NotBefore: f.clock.Now(), IssuedAt: f.clock.Now(), IssuedAtExact: f.clock.Now(),
		JTI: c.JTI, SessionID: subject.SessionID, Scopes: []string{"read"},
		Extra: map[string]any{"role": "buyer"}, Actor: []accesstoken.Actor{{Subject: "svc-a"}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("claims =\n%+v\nwant\n%+v", c, want)
	}
	if c.JTI == subject.JTI {
		t.Error("the exchanged token shares the subject token's jti")
	}
	if sid, ok := store.SessionOfJTI(c.JTI); !ok || sid != subject.SessionID {
		t.Errorf("jti %q does not name the session %q", c.JTI, subject.SessionID)
	}
	if !reflect.DeepEqual(ex.Claims, c) || !ex.ExpiresAt.Equal(c.ExpiresAt) {
		t.Errorf("Exchanged = %+v, %v; want the verified claims", ex.Claims, ex.ExpiresAt)
	}
	act := decodeSegment(t, ex.AccessToken, 1)["act"]
	if !reflect.DeepEqual(act, map[string]any{"sub": "svc-a"}) {
		t.Errorf("act = %v", act)
	}
	if v := f.verify(t, ex.AccessToken, func(r *token.VerifyRequest) { r.Audience = "svc-a" }); v.Active {
		t.Error("the exchanged token is active for the audience it was exchanged away from")
	}
	line := auditLine(t, f, "exchanged")
	for _, w := range []string{`"subject":"alice"`, `"actor":"svc-a"`, `"session_id":"` + subject.SessionID} {
		if !strings.Contains(line, w) {
			t.Errorf("audit line %s lacks %s", line, w)
		}
	}
	if strings.Contains(f.audit.String(), ex.AccessToken) || strings.Contains(f.audit.String(), p.AccessToken) {
		t.Error("a token was written to the audit log")
	}
}

// auditLine returns the first audit line of event.
func auditLine(t *testing.T, f *fixture, event string) string {
	t.Helper()
	for l := range strings.Lines(f.audit.String()) {
		if strings.Contains(l, `"audit":"`+event+`"`) {
			return l
		}
	}
	t.Fatalf("no %s audit line in %s", event, f.audit.String())
	return ""
}

// TestExchangeChain exchanges along A -> B -> C -> D: each token names its whole chain,
// outermost first, keeps the session, and narrows; a fifth actor is refused.
func TestExchangeChain(t *testing.T) {
	f := newFixture(t)
	p := f.userToken(t)
	policies := map[string]*tenant.ExchangePolicy{
		"svc-a": {AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b"}},
		"svc-b": {AcceptAudience: "svc-b", TargetAudiences: []string{"svc-c"}},
		"svc-c": {AcceptAudience: "svc-c", TargetAudiences: []string{"svc-d"}},
		"svc-d": {AcceptAudience: "svc-d", TargetAudiences: []string{"svc-e"}},
		"svc-e": {AcceptAudience: "svc-e", TargetAudiences: []string{"svc-f"}},
	}
	hops := []struct{ actor, target string }{{"svc-a", "svc-b"}, {"svc-b", "svc-c"}, {"svc-c", "svc-d"}, {"svc-d", "svc-e"}}
	tok := p.AccessToken
	var chain []string
	sid := f.verify(t, tok, nil).Claims.SessionID
	for i, h := range hops {
		ex := f.exchange(t, token.ExchangeRequest{
			Tenant: f.tenant, SubjectToken: tok, Actor: h.actor, Policy: policies[h.actor],
			Audience: []string{h.target}, Scopes: []string{"read"},
		})
		chain = append([]string{h.actor}, chain...)
		v := f.verify(t, ex.AccessToken, func(r *token.VerifyRequest) { r.Audience = h.target })
		if !v.Active {
			t.Fatalf("hop %d: inactive: %v", i+1, v.Reason)
		}
		var got []string
		for _, a := range v.Claims.Actor {
			got = append(got, a.Subject)
		}
		if !reflect.DeepEqual(got, chain) || v.Claims.SessionID != sid || v.Claims.Subject != "alice" {
			t.Fatalf("hop %d: chain %v, session %s, subject %s; want %v, %s, alice", i+1, got, v.Claims.SessionID, v.Claims.Subject, chain, sid)
		}
		tok = ex.AccessToken
	}
	_, err := f.svc.Exchange(context.Background(), token.ExchangeRequest{
		Tenant: f.tenant, SubjectToken: tok, Actor: "svc-e", Policy: policies["svc-e"], Audience: []string{"svc-f"},
	})
	if !errors.Is(err, token.ErrPermissionDenied) || !strings.Contains(err.Error(), "4 actors") {
		t.Fatalf("a fifth actor: %v; want PermissionDenied for the chain's length", err)
	}
}

// TestExchangeRefusals: every refusal, with its error class, and an audit line naming the actor
// without the token.
func TestExchangeRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// setup returns the request to refuse, given a fixture with alice's token p for svc-a.
		setup func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest
		want  error
		msg   string
	}{
		{"no policy", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Policy = nil
			return r
		}, token.ErrPermissionDenied, "no exchange policy"},
		{"no actor name", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Actor = ""
			return r
		}, token.ErrPermissionDenied, "no exchange policy"},
		{"empty subject token", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			return f.exchangeReq("")
		}, token.ErrInvalidArgument, "subject_token is required"},
		{"oversized subject token", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			return f.exchangeReq(strings.Repeat("a", token.MaxTokenSize+1))
		}, token.ErrInvalidArgument, "larger than"},
		{"no audience", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Audience = nil
			return r
		}, token.ErrInvalidArgument, "audience is required"},
		{"empty audience entry", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Audience = []string{"svc-b", ""}
			return r
		}, token.ErrInvalidArgument, "each audience"},
		{"repeated audience", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Audience = []string{"svc-b", "svc-b"}
			return r
		}, token.ErrInvalidArgument, "repeat"},
		{"repeated scope", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Scopes = []string{"read", "read"}
			return r
		}, token.ErrInvalidArgument, "repeat"},
		{"malformed scope", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Scopes = []string{"read write"}
			return r
		}, token.ErrInvalidArgument, "each scope"},
		{"ttl above the bound", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.AccessTTL = 2 * time.Hour
			return r
		}, token.ErrInvalidArgument, "exceeds the bound"},
		{"negative ttl", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.AccessTTL = -time.Second
			return r
		}, token.ErrInvalidArgument, "positive"},
		{"refresh token", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			return f.exchangeReq(p.RefreshToken)
		}, token.ErrInvalidSubjectToken, ""},
		{"malformed token", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			return f.exchangeReq("a.b.c")
		}, token.ErrInvalidSubjectToken, "malformed"},
		{"forged signature", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			return f.exchangeReq(p.AccessToken[:len(p.AccessToken)-4] + "AAAA")
		}, token.ErrInvalidSubjectToken, "bad_signature"},
		{"expired", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			f.clock.Advance(16 * time.Minute)
			return f.exchangeReq(p.AccessToken)
		}, token.ErrInvalidSubjectToken, "expired"},
		{"expired but within the leeway", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			f.clock.Advance(15*time.Minute + time.Second)
			return f.exchangeReq(p.AccessToken)
		}, token.ErrInvalidSubjectToken, "expired"},
		{"revoked", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{Token: p.AccessToken}); err != nil {
				t.Fatal(err)
			}
			return f.exchangeReq(p.AccessToken)
		}, token.ErrInvalidSubjectToken, "revoked"},
		{"session ended", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{SessionID: p.SessionID}); err != nil {
				t.Fatal(err)
			}
			return f.exchangeReq(p.AccessToken)
		}, token.ErrInvalidSubjectToken, "session_ended"},
		{"subject cut off", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			if _, err := f.svc.RevokeSubject(ctx, f.tenant, "alice"); err != nil {
				t.Fatal(err)
			}
			return f.exchangeReq(p.AccessToken)
		}, token.ErrInvalidSubjectToken, "cut_off"},
		{"other tenant's token", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Tenant = f.other
			return r
		}, token.ErrInvalidSubjectToken, ""},
		{"subject token not meant for the caller", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			q := f.issue(t, func(r *token.IssueRequest) { r.Audience = []string{"orders"} })
			return f.exchangeReq(q.AccessToken)
		}, token.ErrPermissionDenied, `does not contain "svc-a"`},
		{"subject token without audience", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			q := f.issue(t, func(r *token.IssueRequest) { r.Audience = nil })
			return f.exchangeReq(q.AccessToken)
		}, token.ErrPermissionDenied, `does not contain "svc-a"`},
		{"target outside the policy", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Audience = []string{"svc-b", "orders"}
			return r
		}, token.ErrPermissionDenied, `"orders" is not among`},
		{"target no longer allowed by the tenant", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Tenant = &tenant.Tenant{ID: f.tenant.ID, Issuer: f.tenant.Issuer, AllowedAudiences: []string{"svc-a", "orders", "svc-c"}}
			return r
		}, token.ErrPermissionDenied, `"svc-b" is not allowed for this tenant`},
		{"wider scope", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Scopes = []string{"read", "admin"}
			return r
		}, token.ErrPermissionDenied, `scope "admin" is not one of the subject token's`},
		{"scope no longer allowed by the tenant", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			r := f.exchangeReq(p.AccessToken)
			r.Tenant = &tenant.Tenant{ID: f.tenant.ID, Issuer: f.tenant.Issuer, AllowedScopes: []string{"write"}}
			return r
		}, token.ErrPermissionDenied, `scope "read" is not allowed for this tenant`},
		{"chain already at its bound", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			// A genuine token whose act chain is as long as a chain may be (as if made by four hops).
			act := map[string]any{"sub": "d", "act": map[string]any{"sub": "c", "act": map[string]any{"sub": "b", "act": map[string]any{"sub": "a"}}}}
			c := decodeSegment(t, p.AccessToken, 1)
			c["act"] = act
			return f.exchangeReq(f.sign(t, nil, c))
		}, token.ErrPermissionDenied, "4 actors"},
		{"act claim deeper than any chain", func(t *testing.T, f *fixture, p *token.Pair) token.ExchangeRequest {
			act := map[string]any{"sub": "e", "act": map[string]any{"sub": "d", "act": map[string]any{"sub": "c", "act": map[string]any{"sub": "b", "act": map[string]any{"sub": "a"}}}}}
			c := decodeSegment(t, p.AccessToken, 1)
			c["act"] = act
			return f.exchangeReq(f.sign(t, nil, c))
		}, token.ErrInvalidSubjectToken, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.userToken(t)
			req := tt.setup(t, f, p)
			ex, err := f.svc.Exchange(ctx, req)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Exchange = %v, %v; want %v containing %q", ex, err, tt.want, tt.msg)
			}
			line := auditLine(t, f, "exchange_refused")
			// A key without a name has no actor to name: the writer leaves an empty field out.
			namesActor := strings.Contains(line, `"actor":"`+req.Actor+`"`)
			if req.Actor == "" {
				namesActor = !strings.Contains(line, `"actor"`)
			}
			if !namesActor || !strings.Contains(line, `"tenant":"`+req.Tenant.ID+`"`) {
				t.Errorf("audit line %s does not name the actor and tenant", line)
			}
			for _, tok := range []string{p.AccessToken, p.RefreshToken} {
				if strings.Contains(f.audit.String(), tok) || strings.Contains(err.Error(), tok) {
					t.Error("a token was written to the audit log or the error")
				}
			}
		})
	}
}

func TestExchangeLifetime(t *testing.T) {
	tests := []struct {
		name    string
		ttl     time.Duration
		wantTTL time.Duration // from the exchange
	}{
		{"default, cut to the subject token's expiry", 0, 10 * time.Minute},
		{"shorter than what is left", 2 * time.Minute, 2 * time.Minute},
		{"longer than what is left, within the bound", 30 * time.Minute, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.userToken(t) // expires in 15 minutes
			f.clock.Advance(5 * time.Minute)
			req := f.exchangeReq(p.AccessToken)
			req.AccessTTL = tt.ttl
			ex := f.exchange(t, req)
			if want := f.clock.Now().Add(tt.wantTTL); !ex.ExpiresAt.Equal(want) {
				t.Errorf("expires at %v; want %v", ex.ExpiresAt, want)
			}
			if ex.ExpiresAt.After(p.AccessExpiresAt) {
				t.Errorf("the exchanged token outlives the subject token")
			}
		})
	}
}

// TestExchangeCascade: the exchanged token belongs to the subject's session, so every revocation
// that ends the session ends it and the tokens exchanged from it; revoking it by jti ends it alone
// (not the session, and not the tokens exchanged from it: that would need a record per exchange).
func TestExchangeCascade(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		revoke func(f *fixture, p *token.Pair, ex *token.Exchanged) error
		// userActive says whether alice's own token, and the token exchanged from the exchanged
		// one, stay active.
		userActive bool
		reason     token.Reason
	}{
		{"session", func(f *fixture, p *token.Pair, _ *token.Exchanged) error {
			return f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{SessionID: p.SessionID})
		}, false, token.ReasonSessionEnded},
		{"subject token's refresh token", func(f *fixture, p *token.Pair, _ *token.Exchanged) error {
			return f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{Token: p.RefreshToken})
		}, false, token.ReasonSessionEnded},
		{"subject", func(f *fixture, _ *token.Pair, _ *token.Exchanged) error {
			_, err := f.svc.RevokeSubject(ctx, f.tenant, "alice")
			return err
		}, false, token.ReasonCutOff},
		{"tenant", func(f *fixture, _ *token.Pair, _ *token.Exchanged) error {
			_, err := f.svc.RevokeTenant(ctx, f.tenant)
			return err
		}, false, token.ReasonCutOff},
		{"exchanged token by jti", func(f *fixture, _ *token.Pair, ex *token.Exchanged) error {
			return f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{JTI: ex.Claims.JTI})
		}, true, token.ReasonRevoked},
		{"exchanged token by value", func(f *fixture, _ *token.Pair, ex *token.Exchanged) error {
			return f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{Token: ex.AccessToken})
		}, true, token.ReasonRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.userToken(t)
			f.clock.Advance(time.Second)
			ex := f.exchange(t, f.exchangeReq(p.AccessToken))
			// An exchange of the exchanged token (B for C) goes with it.
			second := f.exchange(t, token.ExchangeRequest{Tenant: f.tenant, SubjectToken: ex.AccessToken, Actor: "svc-b",
				Policy: &tenant.ExchangePolicy{AcceptAudience: "svc-b", TargetAudiences: []string{"svc-c"}}, Audience: []string{"svc-c"}})
			f.clock.Advance(time.Second)
			if err := tt.revoke(f, p, ex); err != nil {
				t.Fatal(err)
			}
			if v := f.verify(t, ex.AccessToken, nil); v.Active || v.Reason != tt.reason {
				t.Errorf("exchanged token after the revocation: active %v, reason %v; want inactive, %v", v.Active, v.Reason, tt.reason)
			}
			if v := f.verify(t, second.AccessToken, nil); v.Active != tt.userActive {
				t.Errorf("token exchanged from it: active %v; want %v", v.Active, tt.userActive)
			}
			if v := f.verify(t, p.AccessToken, nil); v.Active != tt.userActive {
				t.Errorf("alice's own token: active %v; want %v", v.Active, tt.userActive)
			}
		})
	}
}

// hookStore runs a hook once, right after a CheckAccess has read the store.
type hookStore struct {
	token.Store
	once sync.Once
	hook func()
}

func (h *hookStore) CheckAccess(ctx context.Context, tenantID, sid, jti string) (store.AccessState, error) {
	st, err := h.Store.CheckAccess(ctx, tenantID, sid, jti)
	h.once.Do(h.hook)
	return st, err
}

// newRaceEnv returns a service on a memory store seen through wrap, on an injected clock, and
// alice's token for service A issued a second before the clock's time.
func newRaceEnv(t *testing.T, wrap func(token.Store) token.Store) (context.Context, *storetest.Clock, *token.Service, *tenant.Tenant, *token.Pair) {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	mem := memory.New(clock.Now)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	km, err := keys.NewManager(mem, kek, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := km.Ensure(ctx, "acme", keys.EdDSA); err != nil {
		t.Fatal(err)
	}
	svc := token.New(token.Config{Store: wrap(mem), Keys: km, Now: clock.Now, AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour,
		MaxAccessTTL: time.Hour, MaxRefreshTTL: time.Hour})
	ten := &tenant.Tenant{ID: "acme", Issuer: "https://acme.example"}
	p, err := svc.Issue(ctx, token.IssueRequest{Tenant: ten, Subject: "alice", Audience: []string{"svc-a"}})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	return ctx, clock, svc, ten, p
}

// TestExchangeRacingCutoff: a subject cut-off made between the exchange's read of the session and
// its signature covers the new token wherever only iat can be compared (authn's local mode): the
// token's iat is not after the cut-off.
func TestExchangeRacingCutoff(t *testing.T) {
	for _, kind := range []string{"subject", "tenant"} {
		t.Run(kind, func(t *testing.T) {
			st := &hookStore{}
			ctx, clock, svc, ten, p := newRaceEnv(t, func(mem token.Store) token.Store { st.Store = mem; return st })
			var cutoff time.Time
			st.hook = func() {
				clock.Advance(time.Millisecond)
				var err error
				if kind == "subject" {
					cutoff, err = svc.RevokeSubject(ctx, ten, "alice")
				} else {
					cutoff, err = svc.RevokeTenant(ctx, ten)
				}
				if err != nil {
					t.Error(err)
				}
				clock.Advance(time.Millisecond)
			}
			ex, err := svc.Exchange(ctx, token.ExchangeRequest{Tenant: ten, SubjectToken: p.AccessToken, Actor: "svc-a",
				Policy: policyA, Audience: []string{"svc-b"}})
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			iatMS := int64(decodeSegment(t, ex.AccessToken, 1)["iat_ms"].(float64))
			if iatMS > cutoff.UnixMilli() {
				t.Fatalf("the exchanged token's iat_ms %d is after the racing cut-off %d: a local verifier accepts it", iatMS, cutoff.UnixMilli())
			}
			v, err := svc.Verify(ctx, token.VerifyRequest{Tenant: ten, Token: ex.AccessToken})
			if err != nil || v.Active {
				t.Fatalf("Verify after the cut-off = %+v, %v; want inactive", v, err)
			}
		})
	}
}

// TestExchangeSeesRevocationOfCachedToken: a subject token whose signature check is cached is
// checked against the store again on every exchange.
func TestExchangeSeesRevocationOfCachedToken(t *testing.T) {
	f := newFixture(t)
	p := f.userToken(t)
	f.exchange(t, f.exchangeReq(p.AccessToken)) // caches the subject token's signature check
	if err := f.svc.Revoke(context.Background(), f.tenant, token.RevokeTarget{Token: p.AccessToken}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Exchange(context.Background(), f.exchangeReq(p.AccessToken)); !errors.Is(err, token.ErrInvalidSubjectToken) {
		t.Fatalf("second exchange of a revoked token: %v", err)
	}
	if !slices.ContainsFunc(strings.Split(f.audit.String(), "\n"), func(l string) bool { return strings.Contains(l, "revoked") }) {
		t.Error("no audit line")
	}
}

// slowCutoffStore runs a hook once, before its first cut-off write reaches the store: the hook
// runs while that write is in flight.
type slowCutoffStore struct {
	token.Store
	once sync.Once
	hook func()
}

func (s *slowCutoffStore) SetSubjectCutoff(ctx context.Context, tenantID, subject string, at time.Time, ttl time.Duration) error {
	s.once.Do(s.hook)
	return s.Store.SetSubjectCutoff(ctx, tenantID, subject, at, ttl)
}

func (s *slowCutoffStore) SetTenantCutoff(ctx context.Context, tenantID string, at time.Time, ttl time.Duration) error {
	s.once.Do(s.hook)
	return s.Store.SetTenantCutoff(ctx, tenantID, at, ttl)
}

// TestExchangeDuringCutoffWrite: a token exchanged while a cut-off's write is in flight reads no
// cut-off, and its iat is later than the instant the revocation started with. The cut-off the
// revocation returns (and announces) must still cover it, or authn's local mode, which compares
// only iat, accepts the token after the revocation returned.
func TestExchangeDuringCutoffWrite(t *testing.T) {
	for _, kind := range []string{"subject", "tenant"} {
		t.Run(kind, func(t *testing.T) {
			st := &slowCutoffStore{}
			ctx, clock, svc, ten, p := newRaceEnv(t, func(mem token.Store) token.Store { st.Store = mem; return st })
			var ex *token.Exchanged
			st.hook = func() {
				clock.Advance(2 * time.Millisecond)
				var err error
				ex, err = svc.Exchange(ctx, token.ExchangeRequest{Tenant: ten, SubjectToken: p.AccessToken, Actor: "svc-a",
					Policy: policyA, Audience: []string{"svc-b"}})
				if err != nil {
					t.Errorf("Exchange while the cut-off is in flight: %v", err)
				}
				clock.Advance(time.Millisecond)
			}
			var cutoff time.Time
			var err error
			if kind == "subject" {
				cutoff, err = svc.RevokeSubject(ctx, ten, "alice")
			} else {
				cutoff, err = svc.RevokeTenant(ctx, ten)
			}
			if err != nil || ex == nil {
				t.Fatalf("revoke: %v", err)
			}
			iatMS := int64(decodeSegment(t, ex.AccessToken, 1)["iat_ms"].(float64))
			if iatMS > cutoff.UnixMilli() {
				t.Fatalf("the token exchanged during the cut-off's write has iat_ms %d, after the cut-off %d: a local verifier accepts it", iatMS, cutoff.UnixMilli())
			}
			v, err := svc.Verify(ctx, token.VerifyRequest{Tenant: ten, Token: ex.AccessToken})
			if err != nil || v.Active {
				t.Fatalf("Verify after the cut-off = %+v, %v; want inactive", v, err)
			}
		})
	}
}
