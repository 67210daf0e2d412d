package token_test

import (
	"context"
	"crypto/rand"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// recorder is an Observer that lists what it is told.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) Issued()                         { r.add("issued") }
func (r *recorder) Refreshed(o store.RotateOutcome) { r.add("refreshed:" + outcomeName(o)) }
func (r *recorder) Verified(re token.Reason)        { r.add("verified:" + re.String()) }
func (r *recorder) Revoked(k revocation.Kind)       { r.add("revoked:" + kindName(k)) }

// take returns the events told since the last call.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func outcomeName(o store.RotateOutcome) string {
	return map[store.RotateOutcome]string{store.Rotated: "rotated", store.RotateRetry: "retry",
		store.RotateReuse: "reuse", store.RotateInvalid: "invalid"}[o]
}

func kindName(k revocation.Kind) string {
	return map[revocation.Kind]string{revocation.KindToken: "token", revocation.KindSession: "session",
		revocation.KindSubjectCutoff: "subject_cutoff", revocation.KindTenantCutoff: "tenant_cutoff",
		revocation.KindKeyWithdrawn: "key_withdrawn", revocation.KindKeyPublished: "key_published"}[k]
}

// TestObserver drives each operation and checks what the Observer is told: one report per outcome,
// none for the verification inside a revocation or for a call that fails.
func TestObserver(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	st := memory.New(clock.Now)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	km, err := keys.NewManager(st, kek, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := km.Ensure(ctx, "acme", keys.EdDSA); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	svc := token.New(token.Config{
		Store: st, Keys: km, Now: clock.Now,
		AccessTTL: 15 * time.Minute, RefreshTTL: time.Hour, MaxAccessTTL: time.Hour, MaxRefreshTTL: time.Hour,
		RefreshGrace: grace, Observer: rec,
	})
	acme := &tenant.Tenant{ID: "acme", Issuer: "https://acme.example"}

	expect := func(step string, want ...string) {
		t.Helper()
		if got := rec.take(); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: observer told %q, want %q", step, got, want)
		}
	}
	p, err := svc.Issue(ctx, token.IssueRequest{Tenant: acme, Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	expect("issue", "issued")
	if _, err := svc.Issue(ctx, token.IssueRequest{Tenant: acme}); !errors.Is(err, token.ErrInvalidArgument) {
		t.Fatalf("issue without subject: %v", err)
	}
	expect("issue refused")

	if _, err := svc.Verify(ctx, token.VerifyRequest{Tenant: acme, Token: p.AccessToken}); err != nil {
		t.Fatal(err)
	}
	expect("verify", "verified:none")
	if _, err := svc.Verify(ctx, token.VerifyRequest{Tenant: acme, Token: "a.b.c"}); err != nil {
		t.Fatal(err)
	}
	expect("verify garbage", "verified:malformed")
	if _, err := svc.Verify(ctx, token.VerifyRequest{Tenant: acme}); err == nil {
		t.Fatal("verify without a token succeeded")
	}
	expect("verify refused")

	if _, err := svc.Refresh(ctx, acme, p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	expect("refresh", "refreshed:rotated")
	if _, err := svc.Refresh(ctx, acme, p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	expect("retry within grace", "refreshed:retry")
	if _, err := svc.Refresh(ctx, acme, p.AccessToken); err == nil {
		t.Fatal("an access token refreshed")
	}
	expect("refresh with an access token", "refreshed:invalid")
	clock.Advance(2 * grace)
	if _, err := svc.Refresh(ctx, acme, p.RefreshToken); !errors.Is(err, token.ErrRefreshReuse) {
		t.Fatalf("reuse: %v", err)
	}
	expect("reuse", "refreshed:reuse", "revoked:session")

	p, err = svc.Issue(ctx, token.IssueRequest{Tenant: acme, Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	if err := svc.Revoke(ctx, acme, token.RevokeTarget{Token: p.AccessToken}); err != nil {
		t.Fatal(err)
	}
	expect("revoke an access token", "revoked:token")
	if err := svc.Revoke(ctx, acme, token.RevokeTarget{SessionID: p.SessionID}); err != nil {
		t.Fatal(err)
	}
	expect("revoke a session", "revoked:session")
	if err := svc.Revoke(ctx, acme, token.RevokeTarget{SessionID: p.SessionID}); err != nil {
		t.Fatal(err)
	}
	expect("revoke an ended session")
	if _, err := svc.RevokeSubject(ctx, acme, "alice"); err != nil {
		t.Fatal(err)
	}
	expect("revoke a subject", "revoked:subject_cutoff")
	if _, err := svc.RevokeTenant(ctx, acme); err != nil {
		t.Fatal(err)
	}
	expect("revoke a tenant", "revoked:tenant_cutoff")
	if err := svc.AnnounceKey(ctx, acme, revocation.KindKeyPublished, "kid1"); err != nil {
		t.Fatal(err)
	}
	if err := svc.AnnounceKey(ctx, acme, revocation.KindKeyWithdrawn, "kid1"); err != nil {
		t.Fatal(err)
	}
	expect("key announcements", "revoked:key_published", "revoked:key_withdrawn")
}

func TestReasons(t *testing.T) {
	rs := token.Reasons()
	if len(rs) == 0 || rs[0] != token.ReasonMalformed || rs[len(rs)-1] != token.ReasonCertificateMismatch {
		t.Fatalf("Reasons() = %v", rs)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if r == token.ReasonNone || seen[r.String()] {
			t.Fatalf("Reasons() = %v: ReasonNone or a duplicate", rs)
		}
		seen[r.String()] = true
	}
}
