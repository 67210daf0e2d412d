package token_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// thumbprint returns a valid x5t#S256 thumbprint derived from name.
func thumbprint(name string) string {
	sum := sha256.Sum256([]byte(name))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// payloadOf decodes a JWT's payload without verifying it.
func payloadOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCertificateThumbprint(t *testing.T) {
	// RFC 8705's x5t#S256 is the unpadded base64url of the SHA-256 of the DER.
	der := []byte("not really DER, but hashed all the same")
	sum := sha256.Sum256(der)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if got := accesstoken.Thumbprint(der); got != want || !accesstoken.ValidThumbprint(got) {
		t.Errorf("CertificateThumbprint = %q (valid %v), want %q", got, accesstoken.ValidThumbprint(got), want)
	}
	for _, bad := range []string{"", "abc", want + "=", want[:42] + "+", strings.Repeat("A", 44)} {
		if accesstoken.ValidThumbprint(bad) {
			t.Errorf("ValidThumbprint(%q) = true", bad)
		}
	}
}

func TestBoundTokenCarriesConfirmation(t *testing.T) {
	f := newFixture(t)
	tp := thumbprint("client-a")
	p := f.issue(t, func(r *token.IssueRequest) { r.CertThumbprint = tp })
	cnf, _ := payloadOf(t, p.AccessToken)["cnf"].(map[string]any)
	if cnf["x5t#S256"] != tp {
		t.Fatalf("cnf = %v, want x5t#S256 %q", payloadOf(t, p.AccessToken)["cnf"], tp)
	}
	unbound := f.issue(t, nil)
	if _, ok := payloadOf(t, unbound.AccessToken)["cnf"]; ok {
		t.Error("an unbound token carries cnf")
	}
	v := f.verify(t, p.AccessToken, func(r *token.VerifyRequest) { r.CertThumbprint = tp })
	if !v.Active || v.Claims.CertThumbprint != tp {
		t.Fatalf("Verify with the right thumbprint = %+v, want active with the binding", v)
	}
}

func TestVerifyCertificateBinding(t *testing.T) {
	f := newFixture(t)
	tp := thumbprint("client-a")
	bound := f.issue(t, func(r *token.IssueRequest) { r.CertThumbprint = tp }).AccessToken
	unbound := f.issue(t, nil).AccessToken
	requiring := *f.tenant
	requiring.RequireCertificateBinding = true
	tests := []struct {
		name      string
		tok       string
		tenant    *tenant.Tenant
		presented string
		want      token.Reason
	}{
		{"BoundRightCertificate", bound, f.tenant, tp, token.ReasonNone},
		{"BoundOtherCertificate", bound, f.tenant, thumbprint("client-b"), token.ReasonCertificateMismatch},
		{"BoundNoCertificate", bound, f.tenant, "", token.ReasonCertificateMismatch},
		{"UnboundNoCertificate", unbound, f.tenant, "", token.ReasonNone},
		{"UnboundAnyCertificate", unbound, f.tenant, tp, token.ReasonNone},
		{"TenantRequiresBindingUnbound", unbound, &requiring, tp, token.ReasonCertificateMismatch},
		{"TenantRequiresBindingBound", bound, &requiring, tp, token.ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := f.svc.Verify(context.Background(), token.VerifyRequest{Tenant: tt.tenant, Token: tt.tok, CertThumbprint: tt.presented})
			if err != nil {
				t.Fatal(err)
			}
			if v.Reason != tt.want || v.Active != (tt.want == token.ReasonNone) {
				t.Errorf("Verify = active %v reason %v, want reason %v", v.Active, v.Reason, tt.want)
			}
		})
	}
}

// TestVerifyMalformedConfirmation: a cnf claim that cannot be read is not an absent binding.
func TestVerifyMalformedConfirmation(t *testing.T) {
	f := newFixture(t)
	p := f.issue(t, nil)
	claims := payloadOf(t, p.AccessToken)
	for _, cnf := range []any{"x", map[string]any{}, map[string]any{"x5t#S256": 7}, map[string]any{"x5t#S256": ""}} {
		claims["cnf"] = cnf
		tok := f.sign(t, nil, claims)
		if v := f.verify(t, tok, nil); v.Reason != token.ReasonMalformed {
			t.Errorf("cnf %v: reason %v, want malformed", cnf, v.Reason)
		}
	}
}

func TestIssueBindingValidation(t *testing.T) {
	f := newFixture(t)
	requiring := *f.tenant
	requiring.RequireCertificateBinding = true
	tests := []struct {
		name string
		req  token.IssueRequest
	}{
		{"MalformedThumbprint", token.IssueRequest{Tenant: f.tenant, Subject: "alice", CertThumbprint: "not-a-thumbprint"}},
		{"TenantRequiresBinding", token.IssueRequest{Tenant: &requiring, Subject: "alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.Issue(context.Background(), tt.req); !errors.Is(err, token.ErrInvalidArgument) {
				t.Errorf("Issue: err = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if _, err := f.svc.Issue(context.Background(), token.IssueRequest{Tenant: &requiring, Subject: "alice", CertThumbprint: thumbprint("a")}); err != nil {
		t.Errorf("Issue of a bound token under a tenant requiring binding: %v", err)
	}
}

// TestRefreshCertificateBinding: a bound session refreshes only over its certificate; a refusal
// neither rotates the token nor counts as reuse.
func TestRefreshCertificateBinding(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tp := thumbprint("client-a")
	p := f.issue(t, func(r *token.IssueRequest) { r.CertThumbprint = tp })
	for _, presented := range []string{"", thumbprint("client-b")} {
		if _, err := f.svc.RefreshFrom(ctx, f.tenant, p.RefreshToken, presented); !errors.Is(err, token.ErrCertificateMismatch) {
			t.Fatalf("RefreshFrom with thumbprint %q: err = %v, want ErrCertificateMismatch", presented, err)
		}
	}
	if _, err := f.svc.Refresh(ctx, f.tenant, p.RefreshToken); !errors.Is(err, token.ErrCertificateMismatch) {
		t.Fatalf("Refresh without a certificate: err = %v, want ErrCertificateMismatch", err)
	}
	// Well past the grace window: had the refusals rotated the token, this would be reuse.
	f.clock.Advance(10 * grace)
	next, err := f.svc.RefreshFrom(ctx, f.tenant, p.RefreshToken, tp)
	if err != nil {
		t.Fatalf("RefreshFrom with the bound certificate after refusals: %v", err)
	}
	if v := f.verify(t, next.AccessToken, func(r *token.VerifyRequest) { r.CertThumbprint = tp }); !v.Active || v.Claims.CertThumbprint != tp {
		t.Fatalf("refreshed access token: %+v, want active and bound", v)
	}
	if v := f.verify(t, next.AccessToken, nil); v.Reason != token.ReasonCertificateMismatch {
		t.Errorf("refreshed access token without the certificate: reason %v, want certificate_mismatch", v.Reason)
	}
	// The next refresh token is bound as well.
	if _, err := f.svc.RefreshFrom(ctx, f.tenant, next.RefreshToken, thumbprint("client-b")); !errors.Is(err, token.ErrCertificateMismatch) {
		t.Errorf("second refresh with another certificate: err = %v, want ErrCertificateMismatch", err)
	}
	// An unbound session refreshes over any connection.
	u := f.issue(t, nil)
	if _, err := f.svc.RefreshFrom(ctx, f.tenant, u.RefreshToken, tp); err != nil {
		t.Errorf("refresh of an unbound session over a certificate: %v", err)
	}
}
