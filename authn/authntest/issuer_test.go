package authntest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

// TestTokenFormat checks the token is in the authority's format: header fields, claim names and
// order, integer times, a jti of its session.
func TestTokenFormat(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	iss := authntest.NewIssuer(authntest.WithClock(func() time.Time { return now }))
	tok := iss.Token(authntest.Subject("alice"), authntest.Scopes("a", "b"), authntest.Extra("plan", "gold"))
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%d segments", len(parts))
	}
	header, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if want := `{"alg":"EdDSA","kid":"test-key","typ":"at+jwt"}`; string(header) != want {
		t.Fatalf("header %s, want %s", header, want)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	keys := []string{`"iss":`, `"sub":`, `"aud":`, `"exp":`, `"nbf":`, `"iat":`, `"jti":`, `"sid":`, `"scope":`, `"plan":`}
	last := -1
	for _, k := range keys {
		i := strings.Index(string(payload), k)
		if i <= last {
			t.Fatalf("claim %s missing or out of order in %s", k, payload)
		}
		last = i
	}
	sid, _ := c["sid"].(string)
	jti, _ := c["jti"].(string)
	if len(sid) != 38 || !strings.HasPrefix(jti, sid+".") || len(jti) != 55 {
		t.Fatalf("sid %q and jti %q are not of the authority's shape", sid, jti)
	}
	if c["exp"] != float64(now.Add(authntest.DefaultTTL).Unix()) || c["iat"] != float64(now.Unix()) || c["scope"] != "a b" {
		t.Fatalf("claims %v", c)
	}
}

func TestIssuerOptions(t *testing.T) {
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return clock }
	iss := authntest.NewIssuer(authntest.WithClock(now), authntest.WithIssuer("https://i.test"), authntest.WithAudience("svc"),
		authntest.WithKeyID("k1"), authntest.WithTTL(time.Minute))
	v := iss.Verifier()
	defer v.Close()
	cases := []struct {
		name string
		opts []authntest.TokenOption
		want error
	}{
		{"default", nil, nil},
		{"expired", []authntest.TokenOption{authntest.Expired()}, authn.ErrExpired},
		{"not yet valid", []authntest.TokenOption{authntest.NotYetValid()}, authn.ErrNotYetValid},
		{"refresh", []authntest.TokenOption{authntest.Type(authntest.TypeRefresh)}, authn.ErrWrongType},
		{"other kid", []authntest.TokenOption{authntest.KeyID("k2")}, authn.ErrUnknownKey},
		{"other issuer", []authntest.TokenOption{authntest.IssuerName("x")}, authn.ErrWrongIssuer},
		{"other audience", []authntest.TokenOption{authntest.Audience("x")}, authn.ErrWrongAudience},
		{"TTL", []authntest.TokenOption{authntest.IssuedAt(clock.Add(-time.Hour)), authntest.TTL(time.Hour - 40*time.Second)}, authn.ErrExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), iss.Token(tc.opts...))
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := iss.Verifier(authn.WithAudience("x")).Verify(context.Background(), iss.Token()); !errors.Is(err, authn.ErrWrongAudience) {
		t.Fatalf("overriding the audience: %v", err)
	}
	if _, err := iss.Verifier(authn.WithAnyAudience()).Verify(context.Background(), iss.Token(authntest.Audience("x"))); err != nil {
		t.Fatalf("any audience: %v", err)
	}
}

func TestIssuerPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"unknown algorithm": func() { authntest.NewIssuer(authntest.WithAlgorithm("HS256")) },
		"registered extra":  func() { authntest.NewIssuer().Token(authntest.Extra("sub", "x")) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

// A service's test mints tokens for the cases it needs and checks its own verifier with them.
func Example() {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	for _, tok := range []string{
		iss.Token(authntest.Subject("alice"), authntest.Scopes("orders:read")),
		iss.Token(authntest.NotYetValid()),
		iss.Token(authntest.IssuerName("https://elsewhere.test")),
	} {
		c, err := v.Verify(context.Background(), tok)
		if err != nil {
			fmt.Println("refused:", err)
			continue
		}
		fmt.Println("accepted:", c.Subject, c.Scopes)
	}
	// Output:
	// accepted: alice [orders:read]
	// refused: token not yet valid
	// refused: wrong token issuer
}
