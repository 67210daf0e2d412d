package storetest

import (
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// Expiry tests check that entries end when they should. Backends that expire entries by the Clock
// are checked by advancing it; TTLInspectors by the remaining lifetime they report.
var expiryTests = []test{
	{"Session", testSessionExpiry},
	{"RevocationMark", testRevocationExpiry},
	{"LaterRevocationWins", testLaterRevocationWins},
	{"SubjectCutoff", cutoffExpiry(subjectCutoffKind)},
	{"TenantCutoff", cutoffExpiry(tenantCutoffKind)},
	{"SubjectCutoffTTLOnlyGrows", cutoffTTLOnlyGrows(subjectCutoffKind)},
	{"TenantCutoffTTLOnlyGrows", cutoffTTLOnlyGrows(tenantCutoffKind)},
}

func testSessionExpiry(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	jti := newJTI(s.ID)
	if ins := f.inspector(); ins != nil {
		ttl, err := ins.SessionTTL(f.ctx, s.ID)
		checkTTL(t, "session", ttl, err, s.ExpiresAt.Sub(f.t0))
		return
	}
	f.clock.Advance(s.ExpiresAt.Sub(f.t0) - time.Millisecond)
	if st := f.check(t, acme, s.ID, jti); !st.SessionFound {
		t.Fatal("session ended before its expiry")
	}
	f.clock.Advance(time.Millisecond)
	now := f.clock.Now()
	if st := f.check(t, acme, s.ID, jti); st.SessionFound {
		t.Error("CheckAccess finds an expired session")
	}
	if got := f.get(t, acme, s.ID); got != nil {
		t.Errorf("GetSession of an expired session = %+v, want not found", got)
	}
	if res := f.rotate(t, rotation(s, now)); res.Outcome != store.RotateInvalid {
		t.Errorf("RotateRefresh of an expired session = %v, want RotateInvalid", res.Outcome)
	}
	if deleted, err := f.store.DeleteSession(f.ctx, acme, s.ID); err != nil || deleted {
		t.Errorf("DeleteSession of an expired session = %v, %v; want false, nil", deleted, err)
	}
	if ids := f.listAll(t, acme, alice, now, 0); len(ids) != 0 {
		t.Errorf("ListSessions lists expired sessions %v", ids)
	}
}

func testRevocationExpiry(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	jti := newJTI(s.ID)
	f.revoke(t, acme, s.ID, jti, f.t0.Add(10*time.Minute))
	if ins := f.inspector(); ins != nil {
		ttl, err := ins.RevocationTTL(f.ctx, jti)
		checkTTL(t, "revocation mark", ttl, err, 10*time.Minute)
		return
	}
	f.clock.Advance(10*time.Minute - time.Millisecond)
	if st := f.check(t, acme, s.ID, jti); !st.TokenRevoked {
		t.Fatal("revocation ended early")
	}
	f.clock.Advance(time.Millisecond)
	if st := f.check(t, acme, s.ID, jti); !st.SessionFound || st.TokenRevoked {
		t.Errorf("CheckAccess after the revocation ended = %+v, want found and not revoked", st)
	}
}

func testLaterRevocationWins(t *testing.T, f *fixture) {
	tests := []struct {
		name  string
		until []time.Duration
	}{
		{"LaterFirst", []time.Duration{10 * time.Minute, 5 * time.Minute}},
		{"LaterLast", []time.Duration{5 * time.Minute, 10 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.create(t, acme, alice)
			jti := newJTI(s.ID)
			start := f.clock.Now() // The cases share the clock.
			for _, d := range tt.until {
				f.revoke(t, acme, s.ID, jti, start.Add(d))
			}
			if ins := f.inspector(); ins != nil {
				ttl, err := ins.RevocationTTL(f.ctx, jti)
				checkTTL(t, "revocation mark", ttl, err, 10*time.Minute)
				return
			}
			f.clock.Advance(7 * time.Minute)
			if st := f.check(t, acme, s.ID, jti); !st.TokenRevoked {
				t.Error("revocation ended at the earlier time")
			}
		})
	}
}

// cutoffKind is one of the two kinds of cut-off, for tests of both.
type cutoffKind struct {
	set func(t *testing.T, f *fixture, at time.Time, ttl time.Duration)
	get func(st store.AccessState) time.Time
	ttl func(f *fixture, ins TTLInspector) (time.Duration, error)
}

var (
	subjectCutoffKind = cutoffKind{
		set: func(t *testing.T, f *fixture, at time.Time, ttl time.Duration) {
			f.subjectCutoff(t, acme, alice, at, ttl)
		},
		get: func(st store.AccessState) time.Time { return st.SubjectCutoff },
		ttl: func(f *fixture, ins TTLInspector) (time.Duration, error) {
			return ins.SubjectCutoffTTL(f.ctx, acme, alice)
		},
	}
	tenantCutoffKind = cutoffKind{
		set: func(t *testing.T, f *fixture, at time.Time, ttl time.Duration) { f.tenantCutoff(t, acme, at, ttl) },
		get: func(st store.AccessState) time.Time { return st.TenantCutoff },
		ttl: func(f *fixture, ins TTLInspector) (time.Duration, error) { return ins.TenantCutoffTTL(f.ctx, acme) },
	}
)

func cutoffExpiry(kind cutoffKind) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		s := f.session(acme, alice, f.t0.Add(-time.Hour))
		f.mustCreate(t, s)
		kind.set(t, f, f.t0, 10*time.Minute)
		if ins := f.inspector(); ins != nil {
			ttl, err := kind.ttl(f, ins)
			checkTTL(t, "cut-off", ttl, err, 10*time.Minute)
			return
		}
		cutoff := func() time.Time { return kind.get(f.check(t, acme, s.ID, newJTI(s.ID))) }
		f.clock.Advance(10*time.Minute - time.Millisecond)
		if cutoff().IsZero() {
			t.Fatal("cut-off ended early")
		}
		f.clock.Advance(time.Millisecond)
		if got := cutoff(); !got.IsZero() {
			t.Errorf("cut-off after its TTL = %v, want none", got)
		}
	}
}

func cutoffTTLOnlyGrows(kind cutoffKind) func(t *testing.T, f *fixture) {
	return func(t *testing.T, f *fixture) {
		s := f.session(acme, alice, f.t0.Add(-time.Hour))
		f.mustCreate(t, s)
		kind.set(t, f, f.t0, 10*time.Minute)
		kind.set(t, f, f.t0, time.Minute)
		if ins := f.inspector(); ins != nil {
			ttl, err := kind.ttl(f, ins)
			checkTTL(t, "cut-off after a shorter TTL", ttl, err, 10*time.Minute)
			kind.set(t, f, f.t0, 20*time.Minute)
			ttl, err = kind.ttl(f, ins)
			checkTTL(t, "cut-off after a longer TTL", ttl, err, 20*time.Minute)
			return
		}
		cutoff := func() time.Time { return kind.get(f.check(t, acme, s.ID, newJTI(s.ID))) }
		f.clock.Advance(5 * time.Minute)
		if cutoff().IsZero() {
			t.Fatal("a shorter TTL shortened the cut-off's life")
		}
		kind.set(t, f, f.t0, 20*time.Minute) // Now ends 25 minutes after t0.
		f.clock.Advance(20*time.Minute - time.Millisecond)
		if cutoff().IsZero() {
			t.Fatal("a longer TTL did not lengthen the cut-off's life")
		}
		f.clock.Advance(time.Millisecond)
		if got := cutoff(); !got.IsZero() {
			t.Errorf("cut-off after its TTL = %v, want none", got)
		}
	}
}
