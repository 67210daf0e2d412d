package token_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// flakyLog is an in-memory revocation log whose next appends can be made to fail.
type flakyLog struct {
	*memory.Events
	fail atomic.Int32 // appends still to fail
}

func (l *flakyLog) Append(ctx context.Context, tenant string, ev revocation.Event) error {
	if l.fail.Add(-1) >= 0 {
		return store.ErrUnavailable
	}
	return l.Events.Append(ctx, tenant, ev)
}

// newLoggedFixture returns a fixture whose service announces to a log with room for limit events
// per tenant.
func newLoggedFixture(t *testing.T, limit int) (*fixture, *flakyLog) {
	t.Helper()
	var log *flakyLog
	f := newFixtureWith(t, func(c *token.Config) {
		log = &flakyLog{Events: memory.NewEvents(c.Now, revocation.Retention(c.MaxAccessTTL, token.DefaultLeeway), limit)}
		c.Events = log
	})
	return f, log
}

// logged returns the values of the tenant's events, oldest first.
func logged(t *testing.T, log revocation.Log, tenantID string) []string {
	t.Helper()
	evs, resync, err := log.Read(context.Background(), tenantID, revocation.Start, 1000)
	if err != nil || resync {
		t.Fatalf("Read = %v, resync %v", err, resync)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Value)
	}
	return out
}

func TestRevokeAnnouncesOnlyWhatItRevokes(t *testing.T) {
	ctx := context.Background()
	f, log := newLoggedFixture(t, 0)
	p := f.issue(t, nil)
	q := f.issue(t, nil)
	r := f.issue(t, nil)
	foreign := f.issue(t, func(r *token.IssueRequest) { r.Tenant = f.other })
	jti := decodeSegment(t, p.AccessToken, 1)["jti"].(string)
	unknownSession := store.NewSessionID("acme", "bob")
	steps := []struct {
		name   string
		target token.RevokeTarget
		want   []string // the log after the step
	}{
		{"a jti of an unknown session", token.RevokeTarget{JTI: unknownSession + ".AAAAAAAAAAAAAAAA"}, nil},
		{"an unknown session", token.RevokeTarget{SessionID: unknownSession}, nil},
		{"another tenant's session", token.RevokeTarget{SessionID: foreign.SessionID}, nil},
		{"another tenant's refresh token", token.RevokeTarget{Token: foreign.RefreshToken}, nil},
		{"a jti", token.RevokeTarget{JTI: jti}, []string{jti}},
		{"the same jti again", token.RevokeTarget{JTI: jti}, []string{jti}},
		{"the same token", token.RevokeTarget{Token: p.AccessToken}, []string{jti}},
		{"a session", token.RevokeTarget{SessionID: q.SessionID}, []string{jti, q.SessionID}},
		{"the same session again", token.RevokeTarget{SessionID: q.SessionID}, []string{jti, q.SessionID}},
		{"its refresh token", token.RevokeTarget{Token: q.RefreshToken}, []string{jti, q.SessionID}},
		{"a refresh token", token.RevokeTarget{Token: r.RefreshToken}, []string{jti, q.SessionID, r.SessionID}},
		{"the same session by id", token.RevokeTarget{SessionID: r.SessionID}, []string{jti, q.SessionID, r.SessionID}},
	}
	for _, st := range steps {
		if err := f.svc.Revoke(ctx, f.tenant, st.target); err != nil {
			t.Fatalf("%s: Revoke = %v", st.name, err)
		}
		if got := logged(t, log, f.tenant.ID); !slices.Equal(got, st.want) {
			t.Errorf("%s: log %q, want %q", st.name, got, st.want)
		}
	}
	if got := logged(t, log, f.other.ID); len(got) != 0 {
		t.Errorf("the other tenant's log: %q", got)
	}
}

func TestRevokeRetriesAFailedAnnouncement(t *testing.T) {
	ctx := context.Background()
	f, log := newLoggedFixture(t, 0)
	p := f.issue(t, nil)
	q := f.issue(t, nil)
	jti := decodeSegment(t, p.AccessToken, 1)["jti"].(string)
	for _, tt := range []struct {
		target token.RevokeTarget
		value  string
	}{
		{token.RevokeTarget{JTI: jti}, jti},
		{token.RevokeTarget{SessionID: q.SessionID}, q.SessionID},
	} {
		log.fail.Store(1)
		if err := f.svc.Revoke(ctx, f.tenant, tt.target); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Revoke(%+v) with the log down = %v, want ErrUnavailable", tt.target, err)
		}
		before := len(logged(t, log, f.tenant.ID))
		// Recorded all the same: the retry only announces.
		for range 2 {
			if err := f.svc.Revoke(ctx, f.tenant, tt.target); err != nil {
				t.Fatalf("retry of Revoke(%+v) = %v", tt.target, err)
			}
		}
		got := logged(t, log, f.tenant.ID)
		if len(got) != before+1 || got[len(got)-1] != tt.value {
			t.Errorf("log after two retries of %+v: %q, want %q announced once", tt.target, got, tt.value)
		}
	}
	if v := f.verify(t, p.AccessToken, nil); v.Active {
		t.Error("the revoked token is active")
	}
	if v := f.verify(t, q.AccessToken, nil); v.Active {
		t.Error("a token of the ended session is active")
	}
}

func TestRevokeRefusedWhenTheLogIsFull(t *testing.T) {
	ctx := context.Background()
	const limit = 3
	f, log := newLoggedFixture(t, limit)
	for range limit {
		if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{SessionID: f.issue(t, nil).SessionID}); err != nil {
			t.Fatal(err)
		}
	}
	p := f.issue(t, nil)
	jti := decodeSegment(t, p.AccessToken, 1)["jti"].(string)
	for _, target := range []token.RevokeTarget{
		{SessionID: p.SessionID}, {JTI: jti}, {Token: p.AccessToken}, {Token: p.RefreshToken},
		{SessionID: store.NewSessionID("acme", "bob")}, // Unknown, refused all the same: no oracle.
	} {
		if err := f.svc.Revoke(ctx, f.tenant, target); !errors.Is(err, revocation.ErrFull) {
			t.Errorf("Revoke(%+v) with a full log = %v, want ErrFull", target, err)
		}
	}
	if v := f.verify(t, p.AccessToken, nil); !v.Active {
		t.Fatalf("a refused revocation was recorded: %v", v.Reason)
	}
	// Cut-offs still go through, and other tenants are not concerned.
	if _, err := f.svc.RevokeSubject(ctx, f.tenant, "alice"); err != nil {
		t.Errorf("RevokeSubject with a full log = %v", err)
	}
	if err := f.svc.Revoke(ctx, f.other, token.RevokeTarget{SessionID: f.issue(t, func(r *token.IssueRequest) { r.Tenant = f.other }).SessionID}); err != nil {
		t.Errorf("another tenant's revocation = %v", err)
	}
	if got := logged(t, log, f.tenant.ID); len(got) != limit+1 {
		t.Errorf("log: %q, want the %d sessions and the cut-off", got, limit)
	}
	// Once the events stop mattering (the access horizon), there is room again.
	f.clock.Advance(time.Hour + token.DefaultLeeway)
	p = f.issue(t, nil)
	if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{SessionID: p.SessionID}); err != nil {
		t.Errorf("Revoke once the events expired = %v", err)
	}
}

// TestEventTimesAreMilliseconds: every event carries its times in milliseconds, as the Redis
// stream stores them, on the in-memory store too (a jti revocation's expiry had nanoseconds).
func TestEventTimesAreMilliseconds(t *testing.T) {
	ctx := context.Background()
	f, log := newLoggedFixture(t, 0)
	f.clock.Advance(123456789 * time.Nanosecond) // a clock with sub-millisecond parts
	p := f.issue(t, nil)
	jti := decodeSegment(t, p.AccessToken, 1)["jti"].(string)
	if err := f.svc.Revoke(ctx, f.tenant, token.RevokeTarget{JTI: jti}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RevokeSubject(ctx, f.tenant, "alice"); err != nil {
		t.Fatal(err)
	}
	evs, _, err := log.Read(ctx, f.tenant.ID, revocation.Start, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events %v, %v", evs, err)
	}
	for _, ev := range evs {
		for name, at := range map[string]time.Time{"expiry": ev.ExpiresAt, "cut-off": ev.Cutoff} {
			if at.Nanosecond()%int(time.Millisecond) != 0 {
				t.Errorf("%v event: %s %v has sub-millisecond parts", ev.Kind, name, at)
			}
		}
	}
}
