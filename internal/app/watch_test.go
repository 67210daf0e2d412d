package app

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// watcher reads one WatchRevocations stream in the background.
type watcher struct {
	msgs   chan *tokenauthorityv1.WatchRevocationsResponse
	errs   chan error
	cancel context.CancelFunc
}

func watchRevocations(t *testing.T, r *running, cursor string) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(withKey(r.devKey))
	t.Cleanup(cancel)
	stream, err := tokenauthorityv1.NewTokenServiceClient(r.conn).WatchRevocations(ctx, &tokenauthorityv1.WatchRevocationsRequest{Cursor: cursor})
	if err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	w := &watcher{msgs: make(chan *tokenauthorityv1.WatchRevocationsResponse, 4096), errs: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				w.errs <- err
				return
			}
			w.msgs <- m
		}
	}()
	return w
}

// next returns the next event, skipping markers (and, unless wantResync, failing on a resync).
func (w *watcher) next(t *testing.T) *tokenauthorityv1.WatchRevocationsResponse {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m := <-w.msgs:
			if m.GetResync() {
				t.Fatalf("unexpected resync")
			}
			if m.GetKind() != tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED {
				return m
			}
		case err := <-w.errs:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatalf("no event within 15s")
		}
	}
}

// live waits for the marker that says the stream has caught up.
func (w *watcher) live(t *testing.T) string {
	t.Helper()
	select {
	case m := <-w.msgs:
		if m.GetKind() != tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED || m.GetResync() {
			t.Fatalf("first message of a stream from now = %v, want the live marker", m)
		}
		return m.GetCursor()
	case err := <-w.errs:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatalf("no live marker within 15s")
	}
	return ""
}

// watchGrace is the refresh grace of these tests: the reuse step retries until it has passed.
const watchGrace = 100 * time.Millisecond

func claimOf(t *testing.T, tok, name string) string {
	t.Helper()
	v, _ := payloadOf(t, tok)[name].(string)
	return v
}

func TestWatchRevocationsInMemory(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.RefreshGrace = watchGrace
	r := start(t, cfg)
	exerciseWatch(t, r, r)
}

// TestWatchRevocationsAcrossReplicas revokes through one replica and watches another, both on one
// Redis.
func TestWatchRevocationsAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	cfg.RefreshGrace = watchGrace
	r1 := start(t, cfg)
	r2 := start(t, cfg)
	exerciseWatch(t, r1, r2)
	propagation(t, r1, r2)
}

// exerciseWatch makes every kind of revocation through `from` and checks that a watcher of `to`
// receives each event, with what it covers, in order; then that cursors resume and replay.
func exerciseWatch(t *testing.T, from, to *running) {
	ts := tokenauthorityv1.NewTokenServiceClient(from.conn)
	admin := tokenauthorityv1.NewAdminServiceClient(from.conn)
	ctx := withKey(from.devKey)
	w := watchRevocations(t, to, "")
	w.live(t)

	issue := func(subject string) *tokenauthorityv1.IssueTokenResponse {
		return must(ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: subject,
			AccessTtl: durationpb.New(5 * time.Minute)}))
	}
	p1, p2, p3 := issue("alice"), issue("bob"), issue("carol")
	jti := claimOf(t, p1.GetAccessToken(), "jti")

	type want struct {
		kind  tokenauthorityv1.RevocationKind
		check func(*tokenauthorityv1.WatchRevocationsResponse) bool
	}
	steps := []struct {
		name string
		do   func()
		want want
	}{
		{"revoke an access token", func() {
			must(ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: p1.GetAccessToken()}}))
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetJti() == jti && m.GetExpireTime().AsTime().After(time.Now())
		}}},
		{"revoke a session", func() {
			must(ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: p2.GetSessionId()}}))
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetSessionId() == p2.GetSessionId()
		}}},
		{"refresh token reuse", func() {
			must(ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p3.GetRefreshToken()}))
			// Within the grace a retry gets the first answer again and changes nothing; once
			// the grace has passed on the service's clock (the real one) it is reuse. Retry
			// until then rather than sleep for a guess at it.
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(watchGrace / 10) {
				_, err := ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p3.GetRefreshToken()})
				if err != nil || time.Now().After(deadline) {
					wantCode(t, "reuse", err, codes.Unauthenticated)
					break
				}
			}
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetSessionId() == p3.GetSessionId()
		}}},
		{"log a subject out", func() {
			must(ts.RevokeSessions(ctx, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "alice"}}))
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetSubject() == "alice" && m.GetCutoffTime().IsValid() && m.GetExpireTime().AsTime().After(m.GetCutoffTime().AsTime())
		}}},
		{"rotate the signing key", func() {
			must(admin.RotateSigningKey(ctx, &tokenauthorityv1.RotateSigningKeyRequest{}))
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_PUBLISHED, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetKid() != ""
		}}},
		{"withdraw a signing key", func() {
			must(admin.WithdrawSigningKey(ctx, &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: kidOf(t, p1.GetAccessToken())}))
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetKid() == kidOf(t, p1.GetAccessToken())
		}}},
		{"log everyone out", func() {
			must(ts.RevokeSessions(ctx, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}}))
		}, want{tokenauthorityv1.RevocationKind_REVOCATION_KIND_TENANT_CUTOFF, func(m *tokenauthorityv1.WatchRevocationsResponse) bool {
			return m.GetCutoffTime().IsValid()
		}}},
	}
	var cursors []string
	for _, st := range steps {
		st.do()
		m := w.next(t)
		if m.GetKind() != st.want.kind || !st.want.check(m) {
			t.Errorf("%s: event %v, want kind %v", st.name, m, st.want.kind)
		}
		cursors = append(cursors, m.GetCursor())
	}
	w.cancel()

	// Resuming after the third event replays the rest; "0" replays everything retained.
	resumed := watchRevocations(t, to, cursors[2])
	for i := 3; i < len(steps); i++ {
		if m := resumed.next(t); m.GetCursor() != cursors[i] {
			t.Errorf("resumed stream: event %d has cursor %s, want %s", i, m.GetCursor(), cursors[i])
		}
	}
	resumed.cancel()
	all := watchRevocations(t, to, "0")
	var replayed []string
	for range steps {
		replayed = append(replayed, all.next(t).GetCursor())
	}
	if !slices.Equal(replayed[len(replayed)-len(cursors):], cursors) {
		t.Errorf("replay from 0 = %v, want %v", replayed, cursors)
	}
	all.cancel()

	// A cursor this service never returned is refused, not silently read from the start.
	bad, err := tokenauthorityv1.NewTokenServiceClient(to.conn).WatchRevocations(withKey(to.devKey),
		&tokenauthorityv1.WatchRevocationsRequest{Cursor: "../../etc"})
	if err == nil {
		_, err = bad.Recv()
	}
	wantCode(t, "bad cursor", err, codes.InvalidArgument)

	// Well formed but beyond any id a log hands out: refused, not a store error.
	bad, err = tokenauthorityv1.NewTokenServiceClient(to.conn).WatchRevocations(withKey(to.devKey),
		&tokenauthorityv1.WatchRevocationsRequest{Cursor: "18446744073709551615-18446744073709551615"})
	if err == nil {
		_, err = bad.Recv()
	}
	wantCode(t, "the greatest stream id", err, codes.InvalidArgument)

	// A cursor in the future (a lost log's, say) is told to resynchronise, then replays the log;
	// waiting after it would skip every event until the clock reached it.
	future := watchRevocations(t, to, strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)+"-0")
	select {
	case m := <-future.msgs:
		if !m.GetResync() {
			t.Errorf("first message after a cursor in the future = %v, want a resync", m)
		}
	case err := <-future.errs:
		t.Fatalf("stream from a cursor in the future ended: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("no message within 15s after a cursor in the future")
	}
	if m := future.next(t); m.GetCursor() != replayed[0] {
		t.Errorf("replay after the resync starts at %s, want %s", m.GetCursor(), replayed[0])
	}
	future.cancel()
}

// propagation measures how long a revocation on one replica takes to reach a watcher of another.
func propagation(t *testing.T, from, to *running) {
	ts := tokenauthorityv1.NewTokenServiceClient(from.conn)
	ctx := withKey(from.devKey)
	w := watchRevocations(t, to, "")
	w.live(t)
	const n = 100
	lat := make([]time.Duration, 0, n)
	for range n {
		p := must(ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "dave"}))
		began := time.Now()
		must(ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: p.GetSessionId()}}))
		if m := w.next(t); m.GetSessionId() != p.GetSessionId() {
			t.Fatalf("event %v, want session %s", m, p.GetSessionId())
		}
		lat = append(lat, time.Since(began))
	}
	slices.Sort(lat)
	t.Logf("revoke call to event on the other replica, %d revocations: p50 %v, p99 %v, max %v",
		n, lat[n/2], lat[n*99/100], lat[n-1])
}
