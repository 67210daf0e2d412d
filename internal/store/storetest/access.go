package storetest

import (
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

var checkAccessTests = []test{
	{"Found", func(t *testing.T, f *fixture) {
		s := f.session(acme, alice, f.t0.Add(-time.Minute))
		f.mustCreate(t, s)
		want := store.AccessState{SessionFound: true, SessionCreatedAt: s.CreatedAt}
		if st := f.check(t, acme, s.ID, newJTI(s.ID)); !sameAccess(st, want) {
			t.Errorf("CheckAccess = %+v, want %+v", st, want)
		}
	}},
	{"UnknownSession", func(t *testing.T, f *fixture) {
		id := store.NewSessionID(acme, alice)
		if st := f.check(t, acme, id, newJTI(id)); st.SessionFound || st.TokenRevoked {
			t.Errorf("CheckAccess of an unknown session = %+v, want not found", st)
		}
	}},
	{"RevokedJTI", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		revoked, other := newJTI(s.ID), newJTI(s.ID)
		f.revoke(t, acme, s.ID, revoked, f.t0.Add(10*time.Minute))
		if st := f.check(t, acme, s.ID, revoked); !st.SessionFound || !st.TokenRevoked {
			t.Errorf("CheckAccess of a revoked jti = %+v, want found and revoked", st)
		}
		if st := f.check(t, acme, s.ID, other); !st.SessionFound || st.TokenRevoked {
			t.Errorf("CheckAccess of another jti of the session = %+v, want found and not revoked", st)
		}
	}},
	{"SubjectCutoff", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		neighbour := f.create(t, acme, bob)
		at := f.t0.Add(time.Second)
		f.subjectCutoff(t, acme, alice, at, time.Hour)
		want := store.AccessState{SessionFound: true, SessionCreatedAt: s.CreatedAt, SubjectCutoff: at}
		if st := f.check(t, acme, s.ID, newJTI(s.ID)); !sameAccess(st, want) {
			t.Errorf("CheckAccess = %+v, want %+v", st, want)
		}
		want = store.AccessState{SessionFound: true, SessionCreatedAt: neighbour.CreatedAt}
		if st := f.check(t, acme, neighbour.ID, newJTI(neighbour.ID)); !sameAccess(st, want) {
			t.Errorf("CheckAccess of another subject = %+v, want %+v", st, want)
		}
	}},
	{"TenantCutoff", func(t *testing.T, f *fixture) {
		sessions := []*store.Session{f.create(t, acme, alice), f.create(t, acme, bob)}
		at := f.t0.Add(time.Second)
		f.tenantCutoff(t, acme, at, time.Hour)
		for _, s := range sessions {
			want := store.AccessState{SessionFound: true, SessionCreatedAt: s.CreatedAt, TenantCutoff: at}
			if st := f.check(t, acme, s.ID, newJTI(s.ID)); !sameAccess(st, want) {
				t.Errorf("CheckAccess of %s = %+v, want %+v", s.Subject, st, want)
			}
		}
	}},
	{"CutoffsOnlyMoveForward", testCutoffsOnlyMoveForward},
	{"InvalidCutoffTTL", func(t *testing.T, f *fixture) {
		for _, ttl := range []time.Duration{0, -time.Second} {
			if err := f.store.SetSubjectCutoff(f.ctx, acme, alice, f.t0, ttl); err == nil {
				t.Errorf("SetSubjectCutoff with ttl %v succeeded", ttl)
			}
			if err := f.store.SetTenantCutoff(f.ctx, acme, f.t0, ttl); err == nil {
				t.Errorf("SetTenantCutoff with ttl %v succeeded", ttl)
			}
		}
	}},
}

func testCutoffsOnlyMoveForward(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		set  func(t *testing.T, f *fixture, at time.Time)
		get  func(st store.AccessState) time.Time
	}{
		{"Subject",
			func(t *testing.T, f *fixture, at time.Time) { f.subjectCutoff(t, acme, alice, at, time.Hour) },
			func(st store.AccessState) time.Time { return st.SubjectCutoff }},
		{"Tenant",
			func(t *testing.T, f *fixture, at time.Time) { f.tenantCutoff(t, acme, at, time.Hour) },
			func(st store.AccessState) time.Time { return st.TenantCutoff }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.create(t, acme, alice)
			steps := []struct {
				set, want time.Time
			}{
				{f.t0.Add(time.Minute), f.t0.Add(time.Minute)},
				{f.t0.Add(-time.Hour), f.t0.Add(time.Minute)},
				{f.t0.Add(time.Minute - time.Millisecond), f.t0.Add(time.Minute)},
				{f.t0.Add(2 * time.Minute), f.t0.Add(2 * time.Minute)},
			}
			for _, step := range steps {
				tt.set(t, f, step.set)
				if got := tt.get(f.check(t, acme, s.ID, newJTI(s.ID))); !got.Equal(step.want) {
					t.Errorf("cut-off after setting %v = %v, want %v", step.set, got, step.want)
				}
			}
		})
	}
}

// sameAccess reports whether two access states are equal, comparing times as instants.
func sameAccess(a, b store.AccessState) bool {
	return a.SessionFound == b.SessionFound && a.TokenRevoked == b.TokenRevoked &&
		a.SessionCreatedAt.Equal(b.SessionCreatedAt) &&
		a.SubjectCutoff.Equal(b.SubjectCutoff) && a.TenantCutoff.Equal(b.TenantCutoff)
}

var revocationTests = []test{
	{"Idempotent", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		jti := newJTI(s.ID)
		for range 2 {
			f.revoke(t, acme, s.ID, jti, f.t0.Add(time.Minute))
		}
		if st := f.check(t, acme, s.ID, jti); !st.TokenRevoked {
			t.Error("token not revoked after two revocations")
		}
	}},
	{"UnknownSession", func(t *testing.T, f *fixture) {
		id := store.NewSessionID(acme, alice)
		jti := newJTI(id)
		f.revoke(t, acme, id, jti, f.t0.Add(time.Minute))
		if st := f.check(t, acme, id, jti); st.SessionFound || st.TokenRevoked {
			t.Errorf("CheckAccess after revoking a token of an unknown session = %+v, want nothing", st)
		}
	}},
	{"UntilInThePast", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		jti := newJTI(s.ID)
		f.revoke(t, acme, s.ID, jti, f.t0.Add(-time.Second))
		if st := f.check(t, acme, s.ID, jti); st.TokenRevoked {
			t.Error("a revocation that ended before it was made is in force")
		}
	}},
	{"SessionStaysAlive", func(t *testing.T, f *fixture) {
		s := f.create(t, acme, alice)
		f.revoke(t, acme, s.ID, newJTI(s.ID), f.t0.Add(time.Minute))
		checkSession(t, "GetSession after a revocation", f.get(t, acme, s.ID), s)
	}},
}
