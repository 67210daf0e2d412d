package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

var sessionTests = []test{
	{"CreateAndGet", testCreateAndGet},
	{"CreateExisting", testCreateExisting},
	{"CreateRetried", testCreateRetried},
	{"CreateForeignID", testCreateForeignID},
	{"TenantIsolation", testTenantIsolation},
	{"MalformedIDs", testMalformedIDs},
	{"Delete", testDelete},
	{"Ping", func(t *testing.T, f *fixture) {
		if err := f.store.Ping(f.ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}},
}

func testCreateAndGet(t *testing.T, f *fixture) {
	tests := []struct {
		name   string
		modify func(s *store.Session)
	}{
		{"AllFields", func(*store.Session) {}},
		{"NoOptionalFields", func(s *store.Session) {
			s.Audience, s.Scopes, s.Extra, s.Metadata = nil, nil, nil, store.Metadata{}
		}},
		{"EmptySlices", func(s *store.Session) {
			s.Audience, s.Scopes, s.Extra = []string{}, []string{}, []byte{}
		}},
		{"Rotated", func(s *store.Session) {
			s.CreatedAt = f.t0.Add(-30 * time.Minute)
			s.Generation = 7
			s.RotatedAt = f.t0.Add(-time.Minute)
			s.RefreshHash = refreshHash(s.ID, 7)
			s.AccessTTL = 1500 * time.Millisecond
		}},
		{"CertificateBound", func(s *store.Session) {
			s.CertThumbprint = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
		}},
		{"UnicodeAndBinary", func(s *store.Session) {
			s.Audience = []string{"ünïcode", `quote"d`}
			s.Metadata.UserAgent = "Mozilla/5.0 (X11; Linux) \u00e9\u4e16"
			s.RefreshHash = []byte{0, 0xff, '\r', '\n', 0x80, 0}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := f.session(acme, alice, f.t0)
			tt.modify(want)
			f.mustCreate(t, want)
			checkSession(t, "GetSession", f.get(t, acme, want.ID), want)
		})
	}
}

func testCreateExisting(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	again := f.session(acme, alice, f.t0.Add(time.Second))
	again.ID = s.ID
	if err := f.store.CreateSession(f.ctx, again); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateSession of an existing id: err = %v, want store.ErrExists", err)
	}
	checkSession(t, "GetSession after the failed create", f.get(t, acme, s.ID), s)
}

// testCreateRetried: the same session created again, as a client does when it lost the reply, is
// the same call's: it succeeds and changes nothing.
func testCreateRetried(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	if err := f.store.CreateSession(f.ctx, s); err != nil {
		t.Errorf("CreateSession of the same session again: %v", err)
	}
	checkSession(t, "GetSession after the retry", f.get(t, acme, s.ID), s)
}

func testCreateForeignID(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		id   string
	}{
		{"OtherSubject", store.NewSessionID(acme, bob)},
		{"OtherTenant", store.NewSessionID(globex, alice)},
		{"Malformed", "not-a-session-id"},
		{"Empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.session(acme, alice, f.t0)
			s.ID = tt.id
			if err := f.store.CreateSession(f.ctx, s); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("CreateSession with an id not of the subject: err = %v, want store.ErrInvalidArgument", err)
			}
		})
	}
}

func testTenantIsolation(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		// act does something as globex to acme's session s.
		act func(t *testing.T, f *fixture, s *store.Session, jti string)
	}{
		{"GetSession", func(t *testing.T, f *fixture, s *store.Session, _ string) {
			if _, err := f.store.GetSession(f.ctx, globex, s.ID); !isNotFound(err) {
				t.Errorf("GetSession of another tenant's session: err = %v, want store.ErrNotFound", err)
			}
		}},
		{"CheckAccess", func(t *testing.T, f *fixture, s *store.Session, jti string) {
			f.subjectCutoff(t, acme, alice, f.t0.Add(-time.Hour), time.Hour)
			if st := f.check(t, globex, s.ID, jti); st != (store.AccessState{}) {
				t.Errorf("CheckAccess of another tenant's session = %+v, want the zero state", st)
			}
		}},
		{"RevokeToken", func(t *testing.T, f *fixture, s *store.Session, jti string) {
			f.revoke(t, globex, s.ID, jti, f.t0.Add(time.Minute))
			if st := f.check(t, acme, s.ID, jti); st.TokenRevoked {
				t.Error("RevokeToken as another tenant revoked the token")
			}
		}},
		{"DeleteSession", func(t *testing.T, f *fixture, s *store.Session, _ string) {
			deleted, err := f.store.DeleteSession(f.ctx, globex, s.ID)
			if err != nil || deleted {
				t.Errorf("DeleteSession of another tenant's session = %v, %v; want false, nil", deleted, err)
			}
		}},
		{"RotateRefresh", func(t *testing.T, f *fixture, s *store.Session, _ string) {
			res := f.rotate(t, store.RotateRequest{
				Tenant: globex, SessionID: s.ID, Generation: 0, Hash: s.RefreshHash,
				NewHash: refreshHash(s.ID, 1), Now: f.t0, Grace: time.Minute,
			})
			if res.Outcome != store.RotateInvalid || res.Session != nil {
				t.Errorf("RotateRefresh of another tenant's session = %+v, want RotateInvalid", res)
			}
		}},
		{"RotateRefreshOfPreviousGeneration", func(t *testing.T, f *fixture, s *store.Session, _ string) {
			res := f.rotate(t, store.RotateRequest{
				Tenant: globex, SessionID: s.ID, Generation: 1, Hash: s.RefreshHash,
				NewHash: refreshHash(s.ID, 2), Now: f.t0, Grace: time.Hour,
			})
			if res.Outcome != store.RotateInvalid || res.Session != nil {
				t.Errorf("RotateRefresh of another tenant's session = %+v, want RotateInvalid", res)
			}
		}},
		{"ListSessions", func(t *testing.T, f *fixture, _ *store.Session, _ string) {
			if ids := f.listAll(t, globex, alice, f.t0, 10); len(ids) != 0 {
				t.Errorf("ListSessions of the same subject in another tenant = %v, want none", ids)
			}
		}},
		{"Cutoffs", func(t *testing.T, f *fixture, _ *store.Session, _ string) {
			f.subjectCutoff(t, globex, alice, f.t0.Add(time.Hour), time.Hour)
			f.tenantCutoff(t, globex, f.t0.Add(time.Hour), time.Hour)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := f.session(acme, alice, f.t0)
			if strings.HasSuffix(tt.name, "OfPreviousGeneration") {
				s.Generation = 2
				s.RotatedAt = f.t0
			}
			f.mustCreate(t, s)
			jti := newJTI(s.ID)
			tt.act(t, f, s, jti)
			checkSession(t, "acme's session afterwards", f.get(t, acme, s.ID), s)
			if st := f.check(t, acme, s.ID, jti); !st.SessionFound || st.TokenRevoked ||
				!st.TenantCutoff.IsZero() || st.SubjectCutoff.After(s.CreatedAt) {
				t.Errorf("acme's CheckAccess afterwards = %+v, want a live, unrevoked session", st)
			}
		})
	}
}

func testMalformedIDs(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	other := f.create(t, acme, alice)
	good := newJTI(s.ID)
	f.revoke(t, acme, s.ID, good, f.t0.Add(time.Minute))
	tests := []struct {
		name, id, jti string
	}{
		{"EmptySessionID", "", good},
		{"ShortSessionID", s.ID[:len(s.ID)-1], good},
		{"LongSessionID", s.ID + "A", good},
		{"SessionIDWithBadCharacter", s.ID[:len(s.ID)-1] + "*", good},
		{"SessionIDWithKeySeparator", s.ID[:len(s.ID)-1] + ":", good},
		{"EmptyJTI", s.ID, ""},
		{"JTIWithoutDot", s.ID, s.ID},
		{"ShortJTI", s.ID, s.ID + ".abc"},
		{"JTIWithBadCharacter", s.ID, good[:len(good)-1] + "}"},
		{"JTIOfAnotherSession", s.ID, newJTI(other.ID)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, err := f.store.CheckAccess(f.ctx, acme, tt.id, tt.jti); err != nil || st.SessionFound || st.TokenRevoked {
				t.Errorf("CheckAccess = %+v, %v; want an unknown session", st, err)
			}
			if out, err := f.store.RevokeToken(f.ctx, acme, tt.id, tt.jti, f.t0.Add(time.Minute)); err != nil || out != (store.RevokeOutcome{}) {
				t.Errorf("RevokeToken = %+v, %v; want nothing, nil", out, err)
			}
			if tt.id == s.ID {
				return
			}
			if _, err := f.store.GetSession(f.ctx, acme, tt.id); !isNotFound(err) {
				t.Errorf("GetSession: err = %v, want store.ErrNotFound", err)
			}
			res, err := f.store.RotateRefresh(f.ctx, store.RotateRequest{
				Tenant: acme, SessionID: tt.id, Hash: s.RefreshHash, NewHash: refreshHash(s.ID, 1), Now: f.t0,
			})
			if err != nil || res.Outcome != store.RotateInvalid {
				t.Errorf("RotateRefresh = %+v, %v; want RotateInvalid", res, err)
			}
			if deleted, err := f.store.DeleteSession(f.ctx, acme, tt.id); err != nil || deleted {
				t.Errorf("DeleteSession = %v, %v; want false, nil", deleted, err)
			}
			if out, err := f.store.EndSession(f.ctx, acme, tt.id, f.t0.Add(time.Minute)); err != nil || out != (store.RevokeOutcome{}) {
				t.Errorf("EndSession = %+v, %v; want nothing, nil", out, err)
			}
			if err := f.store.Announced(f.ctx, acme, tt.id, tt.jti); err != nil {
				t.Errorf("Announced: %v, want nil", err)
			}
		})
	}
	t.Run("SessionUnchanged", func(t *testing.T) {
		checkSession(t, "GetSession", f.get(t, acme, s.ID), s)
		if st := f.check(t, acme, other.ID, newJTI(other.ID)); st.TokenRevoked {
			t.Error("another session's token is revoked")
		}
	})
}

func testDelete(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	keep := f.create(t, acme, alice)
	jti := newJTI(s.ID)
	for i, want := range []bool{true, false} {
		deleted, err := f.store.DeleteSession(f.ctx, acme, s.ID)
		if err != nil || deleted != want {
			t.Errorf("DeleteSession #%d = %v, %v; want %v, nil", i+1, deleted, err, want)
		}
	}
	if got := f.get(t, acme, s.ID); got != nil {
		t.Errorf("GetSession of a deleted session = %+v, want not found", got)
	}
	if st := f.check(t, acme, s.ID, jti); st.SessionFound {
		t.Error("CheckAccess finds a deleted session")
	}
	res := f.rotate(t, store.RotateRequest{
		Tenant: acme, SessionID: s.ID, Hash: s.RefreshHash, NewHash: refreshHash(s.ID, 1), Now: f.t0, Grace: time.Minute,
	})
	if res.Outcome != store.RotateInvalid {
		t.Errorf("RotateRefresh of a deleted session = %v, want RotateInvalid", res.Outcome)
	}
	if ids := f.listAll(t, acme, alice, f.t0, 0); len(ids) != 1 || ids[0] != keep.ID {
		t.Errorf("ListSessions = %v, want only %v", ids, keep.ID)
	}
}
