// Package storetest is the conformance suite of the storage backends: every backend of token.Store
// and tenant.Store runs Run from a test of its own package, so that the Redis backend and the
// in-memory one behave the same.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// Backend is a store under test: both interfaces that the backends implement.
type Backend interface {
	token.Store
	tenant.Store
	RecordUpdater
}

// RecordUpdater is the atomic read-modify-write of records, which the key sets need.
type RecordUpdater interface {
	store.RecordSwapper
	// UpdateRecord is store.UpdateRecord on the backend.
	UpdateRecord(ctx context.Context, kind, id string, fn func(old []byte) ([]byte, error)) ([]byte, error)
}

// TTLInspector is implemented by backends (or their test wrappers) whose entries expire by the
// backend's own clock, which the suite cannot advance (Redis). For them, the suite checks the
// remaining lifetime given to each entry instead of advancing the Clock past it. Each method
// returns a negative duration when the entry does not exist or never expires.
type TTLInspector interface {
	// SessionTTL returns the remaining lifetime of a session.
	SessionTTL(ctx context.Context, sessionID string) (time.Duration, error)
	// RevocationTTL returns the remaining lifetime of a jti's revocation mark.
	RevocationTTL(ctx context.Context, jti string) (time.Duration, error)
	// SubjectCutoffTTL returns the remaining lifetime of a subject's cut-off.
	SubjectCutoffTTL(ctx context.Context, tenant, subject string) (time.Duration, error)
	// TenantCutoffTTL returns the remaining lifetime of a tenant's cut-off.
	TenantCutoffTTL(ctx context.Context, tenant string) (time.Duration, error)
	// TombstoneTTL returns the remaining lifetime of an ended session's tombstone.
	TombstoneTTL(ctx context.Context, sessionID string) (time.Duration, error)
}

// Clock is a settable clock for backends that read the time from a function. It starts at the
// real time when the suite creates it, so that backends which expire entries by their own clock
// see the same times, and only moves when a test advances it.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock set to t0.
func NewClock(t0 time.Time) *Clock {
	return &Clock{now: t0}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Run runs the conformance suite. newStore returns an empty backend for one subtest; a backend
// that reads the current time must read it from clock.
func Run(t *testing.T, newStore func(t *testing.T, clock *Clock) Backend) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Sessions", sessionTests},
		{"CheckAccess", checkAccessTests},
		{"RotateRefresh", rotateTests},
		{"Revocation", revocationTests},
		{"Announcements", announcementTests},
		{"Expiry", expiryTests},
		{"ListSessions", listTests},
		{"Records", recordTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tt := range g.tests {
				t.Run(tt.name, func(t *testing.T) {
					clock := NewClock(time.Now().Truncate(time.Millisecond).UTC())
					f := &fixture{
						ctx:   context.Background(),
						store: newStore(t, clock),
						clock: clock,
						t0:    clock.Now(),
					}
					tt.run(t, f)
				})
			}
		})
	}
}

// test is one subtest of the suite.
type test struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// Tenants and subjects of the suite.
const (
	acme   = "acme"
	globex = "globex"
	alice  = "alice"
	bob    = "bob"
)

// fixture is the state of one subtest.
type fixture struct {
	ctx   context.Context
	store Backend
	clock *Clock
	// t0 is the clock's time when the subtest started.
	t0 time.Time
}

// session returns a session of tenant and subject with every field set, created at created,
// rotated never and ending an hour after t0.
func (f *fixture) session(tenantID, subject string, created time.Time) *store.Session {
	id := store.NewSessionID(tenantID, subject)
	return &store.Session{
		ID:          id,
		Tenant:      tenantID,
		Subject:     subject,
		Audience:    []string{"https://api.example.com", "web"},
		Scopes:      []string{"read", "write"},
		Extra:       []byte(`{"role":"admin","n":1}`),
		Metadata:    store.Metadata{UserAgent: "suite/1.0", IP: "192.0.2.7", Device: "laptop"},
		CreatedAt:   created,
		ExpiresAt:   f.t0.Add(time.Hour),
		AccessTTL:   5 * time.Minute,
		RefreshHash: refreshHash(id, 0),
		RotatedAt:   created,
	}
}

// create stores a session of tenant and subject created at t0 and returns it.
func (f *fixture) create(t *testing.T, tenantID, subject string) *store.Session {
	t.Helper()
	s := f.session(tenantID, subject, f.t0)
	f.mustCreate(t, s)
	return s
}

func (f *fixture) mustCreate(t *testing.T, s *store.Session) {
	t.Helper()
	if err := f.store.CreateSession(f.ctx, s); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
}

// get returns the session as the store has it, or nil when GetSession reports it not found.
func (f *fixture) get(t *testing.T, tenantID, id string) *store.Session {
	t.Helper()
	s, err := f.store.GetSession(f.ctx, tenantID, id)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		t.Fatalf("GetSession: %v", err)
	}
	return s
}

func (f *fixture) check(t *testing.T, tenantID, id, jti string) store.AccessState {
	t.Helper()
	st, err := f.store.CheckAccess(f.ctx, tenantID, id, jti)
	if err != nil {
		t.Fatalf("CheckAccess: %v", err)
	}
	return st
}

func (f *fixture) rotate(t *testing.T, req store.RotateRequest) store.RotateResult {
	t.Helper()
	res, err := f.store.RotateRefresh(f.ctx, req)
	if err != nil {
		t.Fatalf("RotateRefresh: %v", err)
	}
	return res
}

func (f *fixture) revoke(t *testing.T, tenantID, id, jti string, until time.Time) store.RevokeOutcome {
	t.Helper()
	out, err := f.store.RevokeToken(f.ctx, tenantID, id, jti, until)
	if err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	return out
}

func (f *fixture) subjectCutoff(t *testing.T, tenantID, subject string, at time.Time, ttl time.Duration) {
	t.Helper()
	if err := f.store.SetSubjectCutoff(f.ctx, tenantID, subject, at, ttl); err != nil {
		t.Fatalf("SetSubjectCutoff: %v", err)
	}
}

func (f *fixture) tenantCutoff(t *testing.T, tenantID string, at time.Time, ttl time.Duration) {
	t.Helper()
	if err := f.store.SetTenantCutoff(f.ctx, tenantID, at, ttl); err != nil {
		t.Fatalf("SetTenantCutoff: %v", err)
	}
}

// listAll pages through a subject's sessions with the given page size and returns their ids in
// order, failing the test when a page is larger than the limit or a cursor repeats. A page may be
// short, even empty, and still have a next cursor: a backend bounds the work of one call.
func (f *fixture) listAll(t *testing.T, tenantID, subject string, now time.Time, limit int) []string {
	t.Helper()
	ids, _ := f.listPages(t, tenantID, subject, now, limit)
	return ids
}

// listPages is listAll that also returns how many calls the listing took.
func (f *fixture) listPages(t *testing.T, tenantID, subject string, now time.Time, limit int) (ids []string, pages int) {
	t.Helper()
	seen := make(map[string]bool)
	after := ""
	for ; ; pages++ {
		if pages > 1000 {
			t.Fatal("ListSessions: no end after 1000 pages")
		}
		sessions, next, err := f.store.ListSessions(f.ctx, tenantID, subject, now, store.Page{After: after, Limit: limit})
		if err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
		if len(sessions) > pageLimit(limit) {
			t.Fatalf("ListSessions(limit %d) returned %d sessions", limit, len(sessions))
		}
		for _, s := range sessions {
			ids = append(ids, s.ID)
		}
		if next == "" {
			return ids, pages + 1
		}
		if seen[next] {
			t.Fatalf("ListSessions returned the cursor %q twice: the listing does not move on", next)
		}
		seen[next] = true
		after = next
	}
}

// pageLimit is the page size that a Page.Limit stands for.
func pageLimit(limit int) int {
	if limit <= 0 {
		return 50
	}
	return limit
}

// inspector returns the backend's TTLInspector, or nil when it expires entries by the Clock.
func (f *fixture) inspector() TTLInspector {
	ins, _ := f.store.(TTLInspector)
	return ins
}

// checkTTL checks a remaining lifetime reported by a TTLInspector: at most want (the lifetime
// from t0) and at least want less a generous allowance for the time the test took.
func checkTTL(t *testing.T, what string, got time.Duration, err error, want time.Duration) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s TTL: %v", what, err)
	}
	if got > want || got < want-10*time.Second {
		t.Errorf("%s TTL = %v, want %v (less the test's run time)", what, got, want)
	}
}

// refreshHash returns a stand-in for the hash of the refresh token of a session's generation.
func refreshHash(sessionID string, generation uint64) []byte {
	h := sha256.Sum256([]byte(sessionID + "/" + strconv.FormatUint(generation, 10)))
	return h[:]
}

// newJTI returns a fresh jti of a session, as token.Service makes them.
func newJTI(sessionID string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails.
	return sessionID + "." + base64.RawURLEncoding.EncodeToString(b)
}

// normalized returns a copy of s with times in UTC at millisecond precision, as stored.
func normalized(s *store.Session) *store.Session {
	if s == nil {
		return nil
	}
	c := *s
	ms := func(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }
	c.CreatedAt, c.ExpiresAt, c.RotatedAt = ms(c.CreatedAt), ms(c.ExpiresAt), ms(c.RotatedAt)
	c.AccessTTL = c.AccessTTL.Truncate(time.Millisecond)
	if c.RefreshHash == nil {
		c.RefreshHash = []byte{}
	}
	return &c
}

// checkSession fails the test unless got and want are the same session.
func checkSession(t *testing.T, what string, got, want *store.Session) {
	t.Helper()
	if g, w := normalized(got), normalized(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}
