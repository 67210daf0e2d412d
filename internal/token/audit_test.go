package token_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// TestSessionEventsAreAudited follows a session through issue, refresh, refusal and every scope
// of revocation: each writes one audit event with the ids it concerns, and no token reaches the
// audit log.
func TestSessionEventsAreAudited(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tp := thumbprint("client-a")
	var p *token.Pair
	var tokens []string
	keep := func(ps ...*token.Pair) {
		for _, p := range ps {
			tokens = append(tokens, p.AccessToken, p.RefreshToken)
		}
	}
	steps := []struct {
		name string
		// run does the step and returns the fields its event must have beyond log and tenant.
		run func(t *testing.T) map[string]any
	}{
		{"issue", func(t *testing.T) map[string]any {
			p = f.issue(t, func(r *token.IssueRequest) { r.CertThumbprint = tp })
			keep(p)
			return map[string]any{"audit": "issued", "subject": "alice", "session_id": p.SessionID}
		}},
		{"refresh without the session's certificate", func(t *testing.T) map[string]any {
			if _, err := f.svc.Refresh(ctx, f.tenant, p.RefreshToken); err == nil {
				t.Fatal("refreshed without the bound certificate")
			}
			return map[string]any{"audit": "refresh_certificate_mismatch", "session_id": p.SessionID, "subject": nil}
		}},
		{"refresh", func(t *testing.T) map[string]any {
			next, err := f.svc.RefreshFrom(ctx, f.tenant, p.RefreshToken, tp)
			if err != nil {
				t.Fatal(err)
			}
			keep(next)
			p = next
			return map[string]any{"audit": "refreshed", "subject": "alice", "session_id": p.SessionID}
		}},
		{"refresh with a dropped key's token", func(t *testing.T) map[string]any {
			r, err := f.keys.RotateRefreshKey(ctx, f.tenant.ID, keys.RefreshRotation{Emergency: true})
			if err != nil || len(r.Dropped) != 1 {
				t.Fatalf("RotateRefreshKey = %+v, %v; want one key dropped", r, err)
			}
			if _, err := f.svc.RefreshFrom(ctx, f.tenant, p.RefreshToken, tp); err == nil {
				t.Fatal("a dropped key's refresh token was accepted")
			}
			return map[string]any{"audit": "refresh_key_unknown", "kid": r.Dropped[0]}
		}},
		{"revoke a token", func(t *testing.T) map[string]any {
			v := f.verify(t, p.AccessToken, func(r *token.VerifyRequest) { r.CertThumbprint = tp })
			// By jti: a revocation by token verifies it without the certificate it is bound to.
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{JTI: v.Claims.JTI}); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"audit": "token_revoked", "session_id": p.SessionID, "jti": v.Claims.JTI}
		}},
		{"revoke a session", func(t *testing.T) map[string]any {
			if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{SessionID: p.SessionID}); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"audit": "session_revoked", "session_id": p.SessionID}
		}},
		{"revoke a subject", func(t *testing.T) map[string]any {
			at, err := f.svc.RevokeSubject(ctx, f.tenant, "alice")
			if err != nil {
				t.Fatal(err)
			}
			return map[string]any{"audit": "subject_cutoff", "subject": "alice", "cutoff": at.Format(time.RFC3339Nano)}
		}},
		{"revoke the tenant", func(t *testing.T) map[string]any {
			at, err := f.svc.RevokeTenant(ctx, f.tenant)
			if err != nil {
				t.Fatal(err)
			}
			return map[string]any{"audit": "tenant_cutoff", "cutoff": at.Format(time.RFC3339Nano)}
		}},
	}
	var all strings.Builder
	for _, st := range steps {
		f.audit.Reset()
		want := st.run(t)
		out := f.audit.String()
		all.WriteString(out)
		if n := strings.Count(out, "\n"); n != 1 {
			t.Fatalf("%s: %d audit lines, want 1: %s", st.name, n, out)
		}
		rec := f.audit.Records(t)[0]
		want["log"], want["tenant"] = "audit", f.tenant.ID
		for k, v := range want {
			if !reflect.DeepEqual(rec[k], v) {
				t.Errorf("%s: %s = %#v, want %#v", st.name, k, rec[k], v)
			}
		}
	}
	for _, tok := range tokens {
		if strings.Contains(all.String(), tok) {
			t.Fatal("a token was written to the audit log")
		}
	}
}
