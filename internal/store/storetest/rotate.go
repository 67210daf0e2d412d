package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

const grace = 30 * time.Second

var rotateTests = []test{
	{"Rotated", testRotated},
	{"RetryWithinGrace", testRetryWithinGrace},
	{"ReuseAfterGrace", testReuseAfterGrace},
	{"ReuseOfOlderGeneration", testReuseOfOlderGeneration},
	{"Invalid", testRotateInvalid},
	{"Concurrent", testRotateConcurrent},
	{"KeepsCertificateBinding", testRotateKeepsBinding},
}

// rotation returns the request that rotates s from its current generation at now.
func rotation(s *store.Session, now time.Time) store.RotateRequest {
	return store.RotateRequest{
		Tenant:     s.Tenant,
		SessionID:  s.ID,
		Generation: s.Generation,
		Hash:       refreshHash(s.ID, s.Generation),
		NewHash:    refreshHash(s.ID, s.Generation+1),
		Now:        now,
		Grace:      grace,
	}
}

// rotated returns s as it is after rotation at now.
func rotated(s *store.Session, now time.Time) *store.Session {
	r := *s
	r.Generation++
	r.RefreshHash = refreshHash(s.ID, r.Generation)
	r.RotatedAt = now
	return &r
}

func testRotated(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	now := f.t0.Add(5 * time.Minute)
	res := f.rotate(t, rotation(s, now))
	want := rotated(s, now)
	if res.Outcome != store.Rotated {
		t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	checkSession(t, "rotated session", res.Session, want)
	checkSession(t, "GetSession after rotation", f.get(t, acme, s.ID), want)

	later := now.Add(time.Hour)
	res = f.rotate(t, rotation(want, later))
	if res.Outcome != store.Rotated {
		t.Fatalf("second RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	checkSession(t, "session after two rotations", res.Session, rotated(want, later))
}

func testRetryWithinGrace(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	req := rotation(s, f.t0)
	if res := f.rotate(t, req); res.Outcome != store.Rotated {
		t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	want := rotated(s, f.t0)
	for _, after := range []time.Duration{0, time.Millisecond, grace / 2, grace} {
		retry := req
		retry.Now = f.t0.Add(after)
		retry.NewHash = refreshHash(s.ID, 99) // A retry computes its own next token; it must not be stored.
		res := f.rotate(t, retry)
		if res.Outcome != store.RotateRetry {
			t.Fatalf("retry %v after rotation: outcome = %v, want RotateRetry", after, res.Outcome)
		}
		checkSession(t, "session returned to a retry", res.Session, want)
	}
	checkSession(t, "GetSession after retries", f.get(t, acme, s.ID), want)
}

func testReuseAfterGrace(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	req := rotation(s, f.t0)
	if res := f.rotate(t, req); res.Outcome != store.Rotated {
		t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	req.Now = f.t0.Add(grace + time.Millisecond)
	res := f.rotate(t, req)
	if res.Outcome != store.RotateReuse {
		t.Fatalf("RotateRefresh after the grace window: outcome = %v, want RotateReuse", res.Outcome)
	}
	checkSession(t, "session returned for the audit log", res.Session, rotated(s, f.t0))
	checkEnded(t, f, s)
}

func testReuseOfOlderGeneration(t *testing.T, f *fixture) {
	s := f.create(t, acme, alice)
	first := rotation(s, f.t0)
	if res := f.rotate(t, first); res.Outcome != store.Rotated {
		t.Fatalf("first RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	gen1 := rotated(s, f.t0)
	if res := f.rotate(t, rotation(gen1, f.t0.Add(time.Second))); res.Outcome != store.Rotated {
		t.Fatalf("second RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	first.Now = f.t0.Add(time.Second) // Within the grace window of the second rotation.
	res := f.rotate(t, first)
	if res.Outcome != store.RotateReuse {
		t.Fatalf("RotateRefresh with generation 0 of a generation-2 session: outcome = %v, want RotateReuse", res.Outcome)
	}
	checkSession(t, "session returned for the audit log", res.Session, rotated(gen1, f.t0.Add(time.Second)))
	checkEnded(t, f, s)
}

// checkEnded checks that no operation finds s any more.
func checkEnded(t *testing.T, f *fixture, s *store.Session) {
	t.Helper()
	if got := f.get(t, s.Tenant, s.ID); got != nil {
		t.Errorf("GetSession of an ended session = %+v, want not found", got)
	}
	if st := f.check(t, s.Tenant, s.ID, newJTI(s.ID)); st.SessionFound {
		t.Error("CheckAccess finds an ended session")
	}
	if ids := f.listAll(t, s.Tenant, s.Subject, f.t0, 0); len(ids) != 0 {
		t.Errorf("ListSessions lists %v, want none", ids)
	}
}

func testRotateInvalid(t *testing.T, f *fixture) {
	tests := []struct {
		name string
		// setup prepares the store for s and returns the request to make.
		setup func(t *testing.T, f *fixture, s *store.Session) store.RotateRequest
		// ended is true when the case ends the session (a cut-off), so that it cannot be read back.
		ended bool
	}{
		{"WrongHash", func(_ *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			req := rotation(s, f.t0)
			req.Hash = refreshHash(s.ID, 42)
			return req
		}, false},
		{"FutureGeneration", func(_ *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			req := rotation(s, f.t0)
			req.Generation++
			return req
		}, false},
		{"HugeGeneration", func(_ *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			req := rotation(s, f.t0)
			req.Generation = 1<<64 - 1
			return req
		}, false},
		{"UnknownSession", func(_ *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			other := f.session(s.Tenant, s.Subject, f.t0)
			return rotation(other, f.t0)
		}, false},
		{"OtherTenant", func(_ *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			req := rotation(s, f.t0)
			req.Tenant = globex
			return req
		}, false},
		{"SubjectCutoff", func(t *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			f.subjectCutoff(t, s.Tenant, s.Subject, s.CreatedAt.Add(time.Millisecond), time.Hour)
			return rotation(s, f.t0)
		}, true},
		{"TenantCutoff", func(t *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			f.tenantCutoff(t, s.Tenant, s.CreatedAt.Add(time.Millisecond), time.Hour)
			return rotation(s, f.t0)
		}, true},
		{"SubjectCutoffAfterRotation", func(t *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			if res := f.rotate(t, rotation(s, f.t0)); res.Outcome != store.Rotated {
				t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
			}
			f.subjectCutoff(t, s.Tenant, s.Subject, s.CreatedAt.Add(time.Millisecond), time.Hour)
			return rotation(s, f.t0) // A retry within the grace window.
		}, true},
		{"TenantCutoffAfterRotation", func(t *testing.T, f *fixture, s *store.Session) store.RotateRequest {
			if res := f.rotate(t, rotation(s, f.t0)); res.Outcome != store.Rotated {
				t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
			}
			f.tenantCutoff(t, s.Tenant, s.CreatedAt.Add(time.Millisecond), time.Hour)
			return rotation(s, f.t0.Add(time.Hour)) // Reuse, were the session alive.
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case has a tenant of its own, so that its cut-offs leave the others alone.
			s := f.create(t, acme+"-"+tt.name, alice)
			res := f.rotate(t, tt.setup(t, f, s))
			if res.Outcome != store.RotateInvalid || res.Session != nil {
				t.Errorf("RotateRefresh = %+v, want RotateInvalid and no session", res)
			}
			if tt.ended {
				if got := f.get(t, s.Tenant, s.ID); got != nil {
					t.Errorf("GetSession of a session ended by a cut-off = %+v, want not found", got)
				}
				return
			}
			checkSession(t, "GetSession after an invalid attempt", f.get(t, s.Tenant, s.ID), s)
		})
	}
}

func testRotateConcurrent(t *testing.T, f *fixture) {
	const attempts = 50
	s := f.create(t, acme, alice)
	req := rotation(s, f.t0)
	results := make([]store.RotateResult, attempts)
	errs := make([]error, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			<-start
			results[i], errs[i] = f.store.RotateRefresh(f.ctx, req)
		})
	}
	close(start)
	wg.Wait()
	want := rotated(s, f.t0)
	counts := make(map[store.RotateOutcome]int)
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("RotateRefresh: %v", errs[i])
		}
		counts[res.Outcome]++
		if res.Outcome == store.Rotated || res.Outcome == store.RotateRetry {
			checkSession(t, "session returned", res.Session, want)
		}
	}
	if counts[store.Rotated] != 1 || counts[store.RotateRetry] != attempts-1 {
		t.Errorf("outcomes of %d concurrent attempts = %v, want 1 Rotated (%d) and %d RotateRetry (%d)",
			attempts, counts, store.Rotated, attempts-1, store.RotateRetry)
	}
	checkSession(t, "GetSession afterwards", f.get(t, acme, s.ID), want)
}

// testRotateKeepsBinding: a rotation keeps the session's certificate binding, which the next
// tokens carry.
func testRotateKeepsBinding(t *testing.T, f *fixture) {
	s := f.session(acme, alice, f.t0)
	s.CertThumbprint = "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
	f.mustCreate(t, s)
	now := f.t0.Add(time.Minute)
	res := f.rotate(t, rotation(s, now))
	if res.Outcome != store.Rotated {
		t.Fatalf("RotateRefresh outcome = %v, want Rotated", res.Outcome)
	}
	checkSession(t, "rotated bound session", res.Session, rotated(s, now))
	if res.Session.CertThumbprint != s.CertThumbprint {
		t.Errorf("rotated session's binding = %q, want %q", res.Session.CertThumbprint, s.CertThumbprint)
	}
}
