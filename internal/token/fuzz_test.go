package token_test

import (
	"context"
	"errors"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// FuzzVerify feeds arbitrary strings to VerifyToken: it must never panic, never answer active for
// anything but a token the authority issued, and fail only with ErrInvalidArgument.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	p, err := fx.svc.Issue(context.Background(), token.IssueRequest{Tenant: fx.tenant, Subject: "alice"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		p.AccessToken, p.RefreshToken, "", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiIsImtpZCI6IngifQ.e30.AAAA", p.AccessToken + "x", p.AccessToken[:len(p.AccessToken)-3],
		"eyJhbGciOiJFZERTQSIsImtpZCI6Ii4uLy4uL2V0Yy9wYXNzd2QifQ.e30.AA",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		v, err := fx.svc.Verify(context.Background(), token.VerifyRequest{Tenant: fx.tenant, Token: tok})
		if err != nil {
			if !errors.Is(err, token.ErrInvalidArgument) {
				t.Fatalf("unexpected error: %v", err)
			}
			return
		}
		if v.Active && tok != p.AccessToken {
			t.Fatalf("a token the authority did not issue is active")
		}
	})
}

// FuzzRefresh feeds arbitrary strings to RefreshToken: only the issued refresh token may succeed.
func FuzzRefresh(f *testing.F) {
	fx := newFixture(f)
	p, err := fx.svc.Issue(context.Background(), token.IssueRequest{Tenant: fx.tenant, Subject: "alice"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{p.RefreshToken, p.AccessToken, "", "a.b.c", p.RefreshToken[:len(p.RefreshToken)-2]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := fx.svc.Refresh(context.Background(), fx.tenant, tok)
		if err == nil && tok != p.RefreshToken {
			t.Fatalf("a refresh token the authority did not issue was accepted")
		}
		if err != nil && !errors.Is(err, token.ErrInvalidArgument) && !errors.Is(err, token.ErrInvalidRefreshToken) && !errors.Is(err, token.ErrRefreshReuse) {
			t.Fatalf("unexpected error: %v", err)
		}
	})
}

// FuzzIssueValidation feeds arbitrary subjects, scopes and audiences: Issue either succeeds or
// refuses with ErrInvalidArgument, and never panics.
func FuzzIssueValidation(f *testing.F) {
	fx := newFixture(f)
	f.Add("alice", "read", "orders", "k")
	f.Add("", "a b", "", "sub")
	f.Add("\xff", "\x00", "\xfe", "scope")
	f.Fuzz(func(t *testing.T, subject, scope, aud, extraKey string) {
		_, err := fx.svc.Issue(context.Background(), token.IssueRequest{
			Tenant: fx.tenant, Subject: subject, Scopes: []string{scope}, Audience: []string{aud},
			Extra: map[string]any{extraKey: 1},
		})
		if err != nil && !errors.Is(err, token.ErrInvalidArgument) {
			t.Fatalf("unexpected error: %v", err)
		}
		if err == nil && accesstoken.IsReservedName(extraKey) {
			t.Fatalf("extra claim %q overrode a registered claim", extraKey)
		}
	})
}
