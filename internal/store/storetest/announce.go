package storetest

import (
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Announcement tests check what the store tells the revoker to announce: a revocation it made,
// until Announced is called (so that a retry after a failed announcement announces it), and
// nothing for a target it does not know or a revocation already announced.
var announcementTests = []test{
	{"TokenPendingUntilAnnounced", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		jti := newJTI(s.ID)
		wantOutcome(t, "first revocation", f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute)), true, true)
		wantOutcome(t, "retry before the announcement", f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute)), false, true)
		f.announced(t, acme, s.ID, jti)
		wantOutcome(t, "repeat after the announcement", f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute)), false, false)
		wantOutcome(t, "repeat with a later end", f.revoke(t, acme, s.ID, jti, f.t0.Add(2*time.Minute)), false, false)
		if st := f.check(t, acme, s.ID, jti); !st.TokenRevoked {
			t.Error("the token is not revoked any more")
		}
	}},
	{"SessionPendingUntilAnnounced", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		wantOutcome(t, "first end", f.end(t, acme, s.ID, f.t0.Add(time.Minute)), true, true)
		if got := f.get(t, acme, s.ID); got != nil {
			t.Errorf("GetSession of an ended session = %+v", got)
		}
		if st := f.check(t, acme, s.ID, newJTI(s.ID)); st.SessionFound {
			t.Error("CheckAccess finds an ended session")
		}
		wantOutcome(t, "retry before the announcement", f.end(t, acme, s.ID, f.t0.Add(time.Minute)), false, true)
		f.announced(t, acme, s.ID, "")
		wantOutcome(t, "repeat after the announcement", f.end(t, acme, s.ID, f.t0.Add(time.Minute)), false, false)
	}},
	{"UnknownTargetsAnnounceNothing", func(t *testing.T, f *fixture) {
		id := store.NewSessionID(acme, alice)
		jti := newJTI(id)
		for range 2 {
			wantOutcome(t, "a jti of an unknown session", f.revoke(t, acme, id, jti, f.t0.Add(time.Minute)), false, false)
			wantOutcome(t, "an unknown session", f.end(t, acme, id, f.t0.Add(time.Minute)), false, false)
		}
		// Nothing was written that a session created later under that id would inherit.
		s := f.session(acme, alice, f.t0)
		s.ID, s.RefreshHash = id, refreshHash(id, 0)
		f.mustCreate(t, s)
		if st := f.check(t, acme, id, jti); !st.SessionFound || st.TokenRevoked {
			t.Errorf("CheckAccess = %+v, want a live session and a token not revoked", st)
		}
	}},
	{"TokenPendingAfterItsSessionEnded", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		jti := newJTI(s.ID)
		f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute))
		f.end(t, acme, s.ID, f.t0.Add(time.Minute))
		// The announcement of the token failed, then its session ended: a retry still announces it.
		wantOutcome(t, "retry after the session ended", f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute)), false, true)
		f.announced(t, acme, s.ID, jti)
		wantOutcome(t, "repeat after the announcement", f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute)), false, false)
	}},
	{"OtherTenantsSeeNothing", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		jti := newJTI(s.ID)
		f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute))
		f.end(t, acme, s.ID, f.t0.Add(time.Minute))
		wantOutcome(t, "globex revokes acme's pending jti", f.revoke(t, globex, s.ID, jti, f.t0.Add(time.Minute)), false, false)
		wantOutcome(t, "globex ends acme's ended session", f.end(t, globex, s.ID, f.t0.Add(time.Minute)), false, false)
		f.announced(t, globex, s.ID, jti)
		f.announced(t, globex, s.ID, "")
		wantOutcome(t, "acme's jti after globex's calls", f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute)), false, true)
		wantOutcome(t, "acme's session after globex's calls", f.end(t, acme, s.ID, f.t0.Add(time.Minute)), false, true)
	}},
	{"TombstoneExpires", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		f.end(t, acme, s.ID, f.t0.Add(10*time.Minute))
		if ins := f.inspector(); ins != nil {
			ttl, err := ins.TombstoneTTL(f.ctx, s.ID)
			checkTTL(t, "tombstone", ttl, err, 10*time.Minute)
			return
		}
		f.clock.Advance(10*time.Minute - time.Millisecond)
		wantOutcome(t, "retry before the tombstone's end", f.end(t, acme, s.ID, f.t0.Add(20*time.Minute)), false, true)
		f.clock.Advance(time.Millisecond)
		wantOutcome(t, "retry after the tombstone's end", f.end(t, acme, s.ID, f.t0.Add(20*time.Minute)), false, false)
	}},
}

func wantOutcome(t *testing.T, what string, got store.RevokeOutcome, revoked, announce bool) {
	t.Helper()
	if want := (store.RevokeOutcome{Revoked: revoked, Announce: announce}); got != want {
		t.Errorf("%s: %+v, want %+v", what, got, want)
	}
}

func (f *fixture) end(t *testing.T, tenantID, id string, until time.Time) store.RevokeOutcome {
	t.Helper()
	out, err := f.store.EndSession(f.ctx, tenantID, id, until)
	if err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	return out
}

func (f *fixture) announced(t *testing.T, tenantID, id, jti string) {
	t.Helper()
	if err := f.store.Announced(f.ctx, tenantID, id, jti); err != nil {
		t.Fatalf("Announced: %v", err)
	}
}
