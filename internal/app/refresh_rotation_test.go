package app

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// refreshKidOf returns the kid of a refresh token's header.
func refreshKidOf(t *testing.T, tok string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

// TestRotateRefreshKey drives RotateRefreshKey through the API: refresh tokens of before rotations
// (kid "rt") keep working after a routine rotation, and new ones carry the new key's kid; a retry
// within the grace window gets the very token the winner got, whatever the rotation did since; an
// emergency rotation refuses the older keys' refresh tokens at once, without ending their
// sessions, and audits it; a precondition that no longer holds is ABORTED.
func TestRotateRefreshKey(t *testing.T) {
	r := start(t, testConfig(t, ""))
	ctx := withKey(r.devKey)
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	issue := func() *tokenauthorityv1.IssueTokenResponse {
		return must(ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	}
	refresh := func(rt string) (*tokenauthorityv1.RefreshTokenResponse, error) {
		return ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: rt})
	}
	active := func(at string) bool {
		return must(ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: at})).GetActive()
	}
	rotate := func(req *tokenauthorityv1.RotateRefreshKeyRequest) (*tokenauthorityv1.RotateRefreshKeyResponse, error) {
		return admin.RotateRefreshKey(ctx, req)
	}

	legacy := issue()
	if kid := refreshKidOf(t, legacy.GetRefreshToken()); kid != "rt" {
		t.Fatalf("a refresh token of before rotations has kid %q, want rt", kid)
	}
	// A refresh of the legacy token, to be retried after the rotation.
	won := must(refresh(legacy.GetRefreshToken()))

	// Routine.
	r1 := must(rotate(&tokenauthorityv1.RotateRefreshKeyRequest{}))
	k1 := r1.GetCurrent().GetKid()
	if len(r1.GetRetired()) != 1 || r1.GetRetired()[0].GetKid() != "rt" || !r1.GetRetired()[0].GetDeleteTime().IsValid() || len(r1.GetDroppedKids()) != 0 {
		t.Errorf("routine rotation = %v; want rt retired with a delete time, none dropped", r1)
	}
	retried, err := refresh(legacy.GetRefreshToken())
	if err != nil || retried.GetRefreshToken() != won.GetRefreshToken() {
		t.Errorf("a retry within the grace window after a rotation = %v; want the winner's refresh token", err)
	}
	next := must(refresh(won.GetRefreshToken()))
	if kid := refreshKidOf(t, next.GetRefreshToken()); kid != k1 {
		t.Errorf("a refresh after the rotation signs with %q, want the new key %q", kid, k1)
	}
	if kid := refreshKidOf(t, issue().GetRefreshToken()); kid != k1 {
		t.Errorf("an issue after the rotation signs with %q, want %q", kid, k1)
	}
	old := issue() // signed by k1, about to be dropped

	// Preconditions.
	tests := []struct {
		name string
		req  *tokenauthorityv1.RotateRefreshKeyRequest
		want codes.Code
	}{
		{"StaleCurrent", &tokenauthorityv1.RotateRefreshKeyRequest{IfCurrentKid: "rt", Emergency: true}, codes.Aborted},
		{"MalformedCurrent", &tokenauthorityv1.RotateRefreshKeyRequest{IfCurrentKid: "not a kid"}, codes.InvalidArgument},
		{"OtherTenant", &tokenauthorityv1.RotateRefreshKeyRequest{TenantId: "globex"}, codes.PermissionDenied},
	}
	for _, tt := range tests {
		_, err := rotate(tt.req)
		wantCode(t, tt.name, err, tt.want)
	}

	// Emergency, racing another emergency that names the same current key: one wins, the other is
	// told that the key changed.
	var wg sync.WaitGroup
	results := make([]*tokenauthorityv1.RotateRefreshKeyResponse, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			results[i], errs[i] = rotate(&tokenauthorityv1.RotateRefreshKeyRequest{Emergency: true, IfCurrentKid: k1})
		})
	}
	wg.Wait()
	var r2 *tokenauthorityv1.RotateRefreshKeyResponse
	for i, err := range errs {
		switch {
		case err == nil && r2 == nil:
			r2 = results[i]
		default:
			wantCode(t, "the emergency rotation that lost the race", err, codes.Aborted)
		}
	}
	if r2 == nil {
		t.Fatal("neither emergency rotation succeeded")
	}
	if dropped := r2.GetDroppedKids(); len(dropped) != 2 || len(r2.GetRetired()) != 0 {
		t.Errorf("emergency rotation dropped %q and kept %v; want rt and %s dropped", dropped, r2.GetRetired(), k1)
	}
	for name, tok := range map[string]string{"legacy": next.GetRefreshToken(), "k1": old.GetRefreshToken()} {
		_, err := refresh(tok)
		wantCode(t, "refresh with a "+name+" token after the emergency", err, codes.Unauthenticated)
	}
	// No reuse penalty: the sessions and their access tokens stay.
	if !active(old.GetAccessToken()) || !active(next.GetAccessToken()) {
		t.Error("an emergency refresh-key rotation ended sessions")
	}
	if !strings.Contains(r.logs.String(), `"audit":"refresh_key_unknown"`) || !strings.Contains(r.logs.String(), `"audit":"refresh_key_rotated"`) {
		t.Error("the rotation or the refused refresh was not audited")
	}
	fresh := issue()
	if kid := refreshKidOf(t, fresh.GetRefreshToken()); kid != r2.GetCurrent().GetKid() {
		t.Errorf("new refresh tokens carry %q, want %q", kid, r2.GetCurrent().GetKid())
	}
	must(refresh(fresh.GetRefreshToken()))
	assertNoSecretsLogged(t, r, legacy.GetRefreshToken(), won.GetRefreshToken(), next.GetRefreshToken(), old.GetRefreshToken(), fresh.GetRefreshToken())
}
