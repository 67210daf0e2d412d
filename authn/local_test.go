package authn_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// startLocal starts a local verifier of audience "orders" against f.
func startLocal(t *testing.T, f *fakeAuthority, opts ...authn.Option) *authn.Local {
	t.Helper()
	conn := f.serve(t)
	base := []authn.Option{
		f.clock.option(), authn.WithIssuer(f.issuer.Issuer()), authn.WithAudience("orders"),
		authn.WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	l, err := authn.NewLocal(ctx, conn, testAPIKey, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// signRaw signs arbitrary header and claims, for tokens authntest refuses to make.
func signRaw(t *testing.T, method jwt.SigningMethod, key any, header, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLocalVerify(t *testing.T) {
	clock := newFakeClock()
	_, priv, _ := ed25519.GenerateKey(nil)
	iss := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"), authntest.WithEd25519Key(priv))
	v := iss.Verifier()
	defer v.Close()
	now := clock.Now()
	goodClaims := func() map[string]any {
		return map[string]any{
			"iss": iss.Issuer(), "sub": "alice", "aud": []string{"orders"}, "exp": now.Add(time.Minute).Unix(),
			"nbf": now.Unix(), "iat": now.Unix(), "jti": "j1", "sid": "s1",
		}
	}
	header := map[string]any{"kid": iss.KeyID(), "typ": "at+jwt"}
	with := func(k string, v any) map[string]any {
		c := goodClaims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	valid := iss.Token()
	parts := strings.Split(valid, ".")
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", valid, nil},
		{"raw valid", signRaw(t, jwt.SigningMethodEdDSA, priv, header, goodClaims()), nil},
		{"audience as a string", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("aud", "orders")), nil},
		{"expired", iss.Token(authntest.Expired()), authn.ErrExpired},
		// The default leeway is the authority's, 30s.
		{"expired within the leeway", iss.Token(authntest.IssuedAt(now.Add(-2*time.Minute)), authntest.TTL(92*time.Second)), nil},
		{"expired at the leeway", iss.Token(authntest.IssuedAt(now.Add(-2*time.Minute)), authntest.TTL(90*time.Second)), authn.ErrExpired},
		{"not yet valid", iss.Token(authntest.NotYetValid()), authn.ErrNotYetValid},
		{"issued within the leeway ahead", iss.Token(authntest.IssuedAt(now.Add(4 * time.Second))), nil},
		{"nbf ahead", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("nbf", now.Add(time.Minute).Unix())), authn.ErrNotYetValid},
		{"refresh token", iss.Token(authntest.Type(authntest.TypeRefresh)), authn.ErrWrongType},
		{"no typ", signRaw(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": iss.KeyID()}, goodClaims()), authn.ErrWrongType},
		{"plain JWT typ", iss.Token(authntest.Type("JWT")), authn.ErrWrongType},
		{"wrong issuer", iss.Token(authntest.IssuerName("https://other.test")), authn.ErrWrongIssuer},
		{"wrong audience", iss.Token(authntest.Audience("billing")), authn.ErrWrongAudience},
		{"unknown kid", iss.Token(authntest.KeyID("k9")), authn.ErrUnknownKey},
		{"no kid", signRaw(t, jwt.SigningMethodEdDSA, priv, map[string]any{"typ": "at+jwt"}, goodClaims()), authn.ErrUnknownKey},
		{"tampered payload", parts[0] + "." + strings.TrimSuffix(parts[1], parts[1][len(parts[1])-2:]) + "AA." + parts[2], authn.ErrMalformed},
		{"other payload", parts[0] + "." + strings.Split(iss.Token(authntest.Subject("mallory")), ".")[1] + "." + parts[2], authn.ErrBadSignature},
		{"alg none", signRaw(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, header, goodClaims()), authn.ErrUnsupportedAlgorithm},
		{"HS256 with the public key as secret", signRaw(t, jwt.SigningMethodHS256, []byte(priv.Public().(ed25519.PublicKey)), header, goodClaims()), authn.ErrUnsupportedAlgorithm},
		{"unknown alg", "eyJhbGciOiJYWDk5Iiwia2lkIjoidGVzdC1rZXkiLCJ0eXAiOiJhdCtqd3QifQ." + parts[1] + "." + parts[2], authn.ErrUnsupportedAlgorithm},
		{"crit header", signRaw(t, jwt.SigningMethodEdDSA, priv, map[string]any{"kid": iss.KeyID(), "typ": "at+jwt", "crit": []string{"x"}}, goodClaims()), authn.ErrMalformed},
		{"no jti", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("jti", nil)), authn.ErrMalformed},
		{"no exp", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("exp", nil)), authn.ErrMalformed},
		{"no iat", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat", nil)), authn.ErrMalformed},
		{"fractional exp", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("exp", float64(now.Unix())+60.5)), authn.ErrMalformed},
		{"string exp", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("exp", "soon")), authn.ErrMalformed},
		{"numeric sub", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("sub", 7)), authn.ErrMalformed},
		{"iat_ms within iat's second", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat_ms", now.UnixMilli()+999)), nil},
		{"iat_ms in another second", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat_ms", now.UnixMilli()+1000)), authn.ErrMalformed},
		{"iat_ms in seconds", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat_ms", now.Unix())), authn.ErrMalformed},
		{"fractional iat_ms", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat_ms", float64(now.UnixMilli())+0.5)), authn.ErrMalformed},
		{"string iat_ms", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat_ms", "now")), authn.ErrMalformed},
		{"negative iat_ms", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("iat_ms", -1)), authn.ErrMalformed},
		{"numeric scope", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("scope", 7)), authn.ErrMalformed},
		{"numeric audience", signRaw(t, jwt.SigningMethodEdDSA, priv, header, with("aud", []any{7})), authn.ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], authn.ErrMalformed},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], authn.ErrMalformed},
		{"empty", "", authn.ErrMalformed},
		{"too long", strings.Repeat("a", 9000), authn.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil && c.Subject == "" {
				t.Fatal("no claims")
			}
			if err != nil && !errors.Is(err, authn.ErrInvalidToken) && !errors.Is(err, authn.ErrPermissionDenied) {
				t.Fatalf("%v is of no class", err)
			}
		})
	}
}

func TestLocalClaims(t *testing.T) {
	clock := newFakeClock()
	iss := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders", "billing"))
	v := iss.Verifier()
	defer v.Close()
	tok := iss.Token(authntest.Subject("alice"), authntest.Scopes("a", "b"), authntest.SessionID("sid-1"), authntest.JTI("jti-1"),
		authntest.TTL(time.Minute), authntest.Extra("tenant_plan", "gold"), authntest.Extra("level", 3))
	c, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().Truncate(time.Second)
	want := authn.Claims{
		Issuer: authntest.DefaultIssuer, Subject: "alice", Audience: []string{"orders", "billing"},
		ExpiresAt: now.Add(time.Minute), NotBefore: now, IssuedAt: now, JTI: "jti-1", SessionID: "sid-1",
		Scopes: []string{"a", "b"}, Extra: map[string]any{"tenant_plan": "gold", "level": float64(3)},
	}
	if !claimsEqual(c, &want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func claimsEqual(a, b *authn.Claims) bool {
	if a.Issuer != b.Issuer || a.Subject != b.Subject || strings.Join(a.Audience, ",") != strings.Join(b.Audience, ",") ||
		!a.ExpiresAt.Equal(b.ExpiresAt) || !a.NotBefore.Equal(b.NotBefore) || !a.IssuedAt.Equal(b.IssuedAt) ||
		a.JTI != b.JTI || a.SessionID != b.SessionID || strings.Join(a.Scopes, " ") != strings.Join(b.Scopes, " ") || len(a.Extra) != len(b.Extra) {
		return false
	}
	for k, v := range a.Extra {
		if b.Extra[k] != v {
			return false
		}
	}
	return true
}

func TestLocalAlgorithms(t *testing.T) {
	for _, alg := range []string{"EdDSA", "ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			iss := authntest.NewIssuer(authntest.WithAlgorithm(alg))
			v := iss.Verifier()
			defer v.Close()
			if _, err := v.Verify(t.Context(), iss.Token()); err != nil {
				t.Fatal(err)
			}
			other := authntest.NewIssuer(authntest.WithAlgorithm(alg))
			if _, err := v.Verify(t.Context(), other.Token()); !errors.Is(err, authn.ErrBadSignature) {
				t.Fatalf("other key: %v", err)
			}
		})
	}
}

func TestStaticConfig(t *testing.T) {
	iss := authntest.NewIssuer()
	keys := []*tokenauthorityv1.JsonWebKey{iss.JWK()}
	_, err := authn.NewStatic(keys)
	if err == nil || !strings.Contains(err.Error(), "no audience") || !strings.Contains(err.Error(), "no issuer") {
		t.Fatalf("got %v, want both problems reported", err)
	}
	hs := &tokenauthorityv1.JsonWebKey{Kty: "oct", Kid: "h", Alg: "HS256"}
	weak := &tokenauthorityv1.JsonWebKey{Kty: "RSA", Kid: "r", Alg: "RS256", N: "AQAB", E: "AQAB"}
	mismatched := iss.JWK()
	mismatched.Alg = "ES256"
	_, err = authn.NewStatic([]*tokenauthorityv1.JsonWebKey{hs, weak, mismatched}, authn.WithIssuer("i"), authn.WithAnyAudience())
	if !errors.Is(err, authn.ErrNoUsableKeys) {
		t.Fatalf("got %v, want ErrNoUsableKeys", err)
	}
}

func TestLocalRefusesTenantWithoutPublicKeys(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	f.setKeys(&tokenauthorityv1.JsonWebKey{Kty: "oct", Kid: "h", Alg: "HS256"})
	conn := f.serve(t)
	_, err := authn.NewLocal(t.Context(), conn, testAPIKey, authn.WithIssuer("i"), authn.WithAnyAudience())
	if !errors.Is(err, authn.ErrNoUsableKeys) {
		t.Fatalf("got %v, want ErrNoUsableKeys", err)
	}
}

func TestLocalStartFailures(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	conn := f.serve(t)
	// A wrong API key is final and said as such, however long the context would allow.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := authn.NewLocal(ctx, conn, "wrong-key", authn.WithIssuer("i"), authn.WithAnyAudience())
	if !errors.Is(err, authn.ErrCredentialsRejected) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wrong API key: %v, want ErrCredentialsRejected at once", err)
	}
	if strings.Contains(err.Error(), "wrong-key") {
		t.Fatalf("the error shows the API key: %v", err)
	}
	f.setDown(true)
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := authn.NewLocal(ctx, conn, testAPIKey, authn.WithIssuer("i"), authn.WithAnyAudience()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a stream: %v", err)
	}
}

// TestLocalWaitsForTheAuthority starts a service before its authority: NewLocal keeps trying
// (connection refused) until the authority listens, within its context.
func TestLocalWaitsForTheAuthority(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close() // nothing listens there yet: connections are refused
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()

	refused := make(chan struct{})
	var once sync.Once
	logger := slog.New(signalHandler{on: "authn: the authority did not answer; retrying", fn: func() { once.Do(func() { close(refused) }) }})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		l, err := authn.NewLocal(ctx, conn, testAPIKey, authn.WithIssuer(f.issuer.Issuer()), authn.WithAnyAudience(),
			authn.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond), authn.WithLogger(logger), clock.option())
		if l != nil {
			l.Close()
		}
		done <- err
	}()
	select {
	case <-refused:
	case err := <-done:
		t.Fatalf("NewLocal returned before the authority was up: %v", err)
	}
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := grpc.NewServer()
	tokenauthorityv1.RegisterTokenServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	if err := <-done; err != nil {
		t.Fatalf("NewLocal once the authority is up: %v", err)
	}

	// A context that ends while the authority is still away: the error says why it could not start.
	_ = lis.Close()
	srv.Stop()
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelShort()
	_, err = authn.NewLocal(short, conn, testAPIKey, authn.WithIssuer("i"), authn.WithAnyAudience(),
		authn.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("authority away until the context ended: %v, want DeadlineExceeded with the last cause", err)
	}
}

// signalHandler is a slog handler that calls fn for every record whose message is on.
type signalHandler struct {
	on string
	fn func()
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.on {
		h.fn()
	}
	return nil
}
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h signalHandler) WithGroup(string) slog.Handler      { return h }

func TestLocalRevocationKinds(t *testing.T) {
	type tokens map[string]string
	cases := []struct {
		name    string
		event   func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse
		revoked []string
		live    []string
	}{
		{
			name: "token",
			event: func(*fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
				return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-a1"}
			},
			revoked: []string{"a1"},
			live:    []string{"a1b", "a2", "b", "aLater", "k2", "aBeforeCut", "aAfterCut"},
		},
		{
			name: "session",
			event: func(*fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
				return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, SessionId: "sid-1"}
			},
			revoked: []string{"a1", "a1b"},
			live:    []string{"a2", "b", "aLater", "k2", "aBeforeCut", "aAfterCut"},
		},
		{
			name: "subject cut-off",
			event: func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
				// Cut-offs have millisecond precision, and so has the authority's iat_ms: a token of the
				// same second is cut off only if it was issued at or before the cut-off.
				return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF, Subject: "alice", CutoffTime: timestamppb.New(f.clock.Now().Add(500 * time.Millisecond))}
			},
			revoked: []string{"a1", "a1b", "a2", "aBeforeCut"},
			live:    []string{"b", "aLater", "k2", "aAfterCut"},
		},
		{
			name: "tenant cut-off",
			event: func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
				return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TENANT_CUTOFF, CutoffTime: timestamppb.New(f.clock.Now())}
			},
			revoked: []string{"a1", "a1b", "a2", "b", "k2"},
			live:    []string{"aLater", "aBeforeCut", "aAfterCut"},
		},
		{
			name: "key withdrawn",
			event: func(*fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
				return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN, Kid: "k2"}
			},
			revoked: []string{"k2"},
			live:    []string{"a1", "a1b", "a2", "b", "aLater", "aBeforeCut", "aAfterCut"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeAuthority(t, clock)
			iss2 := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"), authntest.WithKeyID("k2"))
			f.setKeys(f.issuer.JWK(), iss2.JWK())
			l := startLocal(t, f)
			i := f.issuer
			tok := tokens{
				"a1":     i.Token(authntest.Subject("alice"), authntest.SessionID("sid-1"), authntest.JTI("jti-a1")),
				"a1b":    i.Token(authntest.Subject("alice"), authntest.SessionID("sid-1"), authntest.JTI("jti-a1b")),
				"a2":     i.Token(authntest.Subject("alice"), authntest.SessionID("sid-2"), authntest.JTI("jti-a2")),
				"b":      i.Token(authntest.Subject("bob"), authntest.SessionID("sid-3"), authntest.JTI("jti-b")),
				"aLater": i.Token(authntest.Subject("alice"), authntest.SessionID("sid-4"), authntest.IssuedAt(clock.Now().Add(time.Second))),
				// In the same second as the subject cut-off (+500ms), before and after it.
				"aBeforeCut": i.Token(authntest.Subject("alice"), authntest.SessionID("sid-5"), authntest.IssuedAt(clock.Now().Add(400*time.Millisecond))),
				"aAfterCut":  i.Token(authntest.Subject("alice"), authntest.SessionID("sid-6"), authntest.IssuedAt(clock.Now().Add(600*time.Millisecond))),
				"k2":         iss2.Token(authntest.Subject("carol")),
			}
			for name, tk := range tok {
				if _, err := l.Verify(t.Context(), tk); err != nil {
					t.Fatalf("%s before the event: %v", name, err)
				}
			}
			f.publish(tc.event(f))
			eventually(t, "the event to apply", func() bool {
				_, err := l.Verify(t.Context(), tok[tc.revoked[0]])
				return errors.Is(err, authn.ErrRevoked)
			})
			for _, name := range tc.revoked {
				_, err := l.Verify(t.Context(), tok[name])
				if !errors.Is(err, authn.ErrRevoked) {
					t.Errorf("%s: got %v, want ErrRevoked", name, err)
				}
				// A cut-off says so, rather than "token revoked".
				if cut := strings.HasSuffix(tc.name, "cut-off"); cut != errors.Is(err, authn.ErrCutOff) {
					t.Errorf("%s: got %v; ErrCutOff wanted: %v", name, err, cut)
				}
			}
			for _, name := range tc.live {
				if _, err := l.Verify(t.Context(), tok[name]); err != nil {
					t.Errorf("%s: got %v, want accepted", name, err)
				}
			}
		})
	}
}

func TestLocalKeyWithdrawnStaysOut(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	tok := f.issuer.Token()
	if _, err := l.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	// The event arrives while the JWKS still lists the key (a lagging replica): neither a refetch
	// for an unknown kid nor one for a published key brings it back.
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN, Kid: f.issuer.KeyID()})
	eventually(t, "the key to go", func() bool {
		_, err := l.Verify(t.Context(), tok)
		return errors.Is(err, authn.ErrRevoked)
	})
	calls := f.listCalls.Load()
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED, Kid: "k3"})
	eventually(t, "the refetch", func() bool { return f.listCalls.Load() > calls })
	clock.Advance(time.Minute)
	fresh := f.issuer.Token()
	eventually(t, "a heartbeat after the clock moved", func() bool { return l.Live() })
	if _, err := l.Verify(t.Context(), fresh); !errors.Is(err, authn.ErrRevoked) {
		t.Fatalf("got %v, want ErrRevoked", err)
	}
}

func TestLocalKeyPublished(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	iss2 := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"), authntest.WithKeyID("k2"))
	f.setKeys(f.issuer.JWK(), iss2.JWK())
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED, Kid: "k2"})
	eventually(t, "the refetch", func() bool { return f.listCalls.Load() == 2 })
	eventually(t, "the new key", func() bool {
		_, err := l.Verify(t.Context(), iss2.Token())
		return err == nil
	})
	if got := f.listCalls.Load(); got != 2 {
		t.Fatalf("%d ListPublicKeys calls, want 2 (start and event): the new kid caused a fetch", got)
	}
}

func TestLocalUnknownKidRefetch(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	iss2 := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"), authntest.WithKeyID("k2"))
	tok2 := iss2.Token()

	if _, err := l.Verify(t.Context(), tok2); !errors.Is(err, authn.ErrUnknownKey) {
		t.Fatalf("got %v, want ErrUnknownKey", err)
	}
	if got := f.listCalls.Load(); got != 2 {
		t.Fatalf("%d ListPublicKeys calls, want 2 (start and miss)", got)
	}
	// Published without an event: the verifier finds it at the next fetch the rate limit allows.
	f.setKeys(f.issuer.JWK(), iss2.JWK())
	for range 5 {
		if _, err := l.Verify(t.Context(), tok2); !errors.Is(err, authn.ErrUnknownKey) {
			t.Fatalf("got %v, want ErrUnknownKey while rate-limited", err)
		}
	}
	if got := f.listCalls.Load(); got != 2 {
		t.Fatalf("%d ListPublicKeys calls, want 2: the rate limit did not hold", got)
	}
	clock.Advance(authn.DefaultKeyRefreshInterval)
	eventually(t, "a heartbeat after the clock moved", func() bool { return l.Live() })
	if _, err := l.Verify(t.Context(), tok2); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	if got := f.listCalls.Load(); got != 3 {
		t.Fatalf("%d ListPublicKeys calls, want 3", got)
	}

	// Concurrent misses share one fetch.
	iss3 := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"), authntest.WithKeyID("k3"))
	f.setKeys(f.issuer.JWK(), iss2.JWK(), iss3.JWK())
	gate := make(chan struct{})
	f.mu.Lock()
	f.listGate = gate
	f.mu.Unlock()
	clock.Advance(authn.DefaultKeyRefreshInterval)
	eventually(t, "a heartbeat after the clock moved", func() bool { return l.Live() })
	tok3 := iss3.Token()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := l.Verify(t.Context(), tok3)
			errs <- err
		})
	}
	eventually(t, "the fetch to start", func() bool { return f.listCalls.Load() == 4 })
	// The fetch is held at the gate until every verification waits for it: none can find the
	// key in a fetch already done, so the one fetch counted below is the one they all shared.
	eventually(t, "every verification to wait for the fetch", func() bool { return l.FetchWaiters() == 20 })
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent miss: %v", err)
		}
	}
	if got := f.listCalls.Load(); got != 4 {
		t.Fatalf("%d ListPublicKeys calls, want 4: concurrent misses did not share a fetch", got)
	}
}

func TestLocalDenyEntriesExpire(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f, authn.WithStalenessBound(time.Hour))
	short := f.issuer.Token(authntest.JTI("jti-short"), authntest.TTL(time.Hour))
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-short", ExpireTime: timestamppb.New(clock.Now().Add(time.Minute))})
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-long", ExpireTime: timestamppb.New(clock.Now().Add(2 * time.Hour))})
	eventually(t, "both entries", func() bool { return l.DenySetSize() == 2 })
	if _, err := l.Verify(t.Context(), short); !errors.Is(err, authn.ErrRevoked) {
		t.Fatalf("got %v, want ErrRevoked", err)
	}
	// The entry is kept past its expire_time by the leeway, then pruned at a heartbeat.
	clock.Advance(time.Minute + authn.DefaultLeeway + time.Second)
	eventually(t, "the expired entry to go", func() bool { return l.DenySetSize() == 1 })
	// The fake's event covered a token that outlives it: it passes once the entry is gone,
	// which shows the entry, not something else, was pruned.
	if _, err := l.Verify(t.Context(), short); err != nil {
		t.Fatalf("after pruning: %v", err)
	}
}

func TestLocalResync(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	alice := f.issuer.Token(authntest.Subject("alice"), authntest.JTI("jti-alice"))
	bob := f.issuer.Token(authntest.Subject("bob"), authntest.JTI("jti-bob"))
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-alice"})
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-bob"})
	eventually(t, "both revocations", func() bool { return l.DenySetSize() == 2 })
	// The authority lost alice's event (trimmed) and tells the watcher to resynchronise: the
	// deny-set is rebuilt from what it still has.
	f.trim(1)
	f.resyncAll()
	eventually(t, "the rebuilt deny-set", func() bool {
		_, err := l.Verify(t.Context(), alice)
		return err == nil
	})
	if _, err := l.Verify(t.Context(), bob); !errors.Is(err, authn.ErrRevoked) {
		t.Fatalf("bob: got %v, want ErrRevoked", err)
	}
	if n := l.DenySetSize(); n != 1 {
		t.Fatalf("%d deny entries, want 1", n)
	}
}

// TestLocalStreamCut cuts the stream: the verifier keeps accepting within the staleness bound,
// fails closed after it, and once the stream is back accepts again with what it missed applied.
func TestLocalStreamCut(t *testing.T) {
	for _, trimmed := range []bool{false, true} {
		name := "resume"
		if trimmed {
			name = "resync after trim"
		}
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeAuthority(t, clock)
			l := startLocal(t, f)
			tok := map[string]string{}
			for _, sub := range []string{"alice", "bob", "carol", "dave"} {
				tok[sub] = f.issuer.Token(authntest.Subject(sub), authntest.JTI("jti-"+sub))
			}
			revoke := func(sub string) {
				f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-" + sub})
			}
			revoke("dave")
			eventually(t, "dave's revocation", func() bool { return l.DenySetSize() == 1 })

			f.setDown(true)
			if _, err := l.Verify(t.Context(), tok["alice"]); err != nil {
				t.Fatalf("within the bound: %v", err)
			}
			revoke("alice") // missed while down
			revoke("bob")
			if trimmed {
				f.trim(2) // dave's and alice's events are gone: the watcher must resync
			}
			clock.Advance(authn.DefaultStalenessBound + time.Second)
			_, err := l.Verify(t.Context(), tok["carol"])
			if !errors.Is(err, authn.ErrStale) || !errors.Is(err, authn.ErrUnavailable) || l.Live() {
				t.Fatalf("after the bound: got %v, want ErrStale", err)
			}
			if code := status.Code(authn.StatusError(t.Context(), err)); code != codes.Unavailable {
				t.Fatalf("status %v, want Unavailable", code)
			}

			f.setDown(false)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := l.WaitLive(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[string]error{"alice": authn.ErrRevoked, "bob": authn.ErrRevoked, "carol": nil, "dave": authn.ErrRevoked}
			if trimmed {
				// Lost with the trim: the authority no longer reports them.
				want["alice"], want["dave"] = nil, nil
			}
			for sub, w := range want {
				if _, err := l.Verify(t.Context(), tok[sub]); !errors.Is(err, w) || (w == nil) != (err == nil) {
					t.Errorf("%s: got %v, want %v", sub, err, w)
				}
			}
		})
	}
}

func TestLocalCloseFailsClosed(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	l.Close()
	l.Close() // idempotent
	clock.Advance(authn.DefaultStalenessBound + time.Second)
	if _, err := l.Verify(t.Context(), f.issuer.Token()); !errors.Is(err, authn.ErrStale) {
		t.Fatalf("got %v, want ErrStale", err)
	}
}

// TestLocalRevokedBeforeAudience: a revoked token is refused as revoked (Unauthenticated) even
// where its audience is wrong (which alone would be PermissionDenied).
func TestLocalRevokedBeforeAudience(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	elsewhere := f.issuer.Token(authntest.Subject("alice"), authntest.SessionID("sid-9"), authntest.Audience("billing"))
	if _, err := l.Verify(t.Context(), elsewhere); !errors.Is(err, authn.ErrWrongAudience) {
		t.Fatalf("before the revocation: %v, want ErrWrongAudience", err)
	}
	f.publish(&tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, SessionId: "sid-9"})
	eventually(t, "the revocation to apply", func() bool {
		_, err := l.Verify(t.Context(), elsewhere)
		return errors.Is(err, authn.ErrRevoked)
	})
}
