package authn_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

func startRemote(t *testing.T, f *fakeAuthority, opts ...authn.Option) *authn.Remote {
	t.Helper()
	conn := f.serve(t)
	base := []authn.Option{f.clock.option(), authn.WithAudience("orders"), authn.WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond)}
	r, err := authn.NewRemote(conn, testAPIKey, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestRemoteVerify(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	r := startRemote(t, f)
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"valid", f.issuer.Token(authntest.Subject("alice")), nil},
		{"expired", f.issuer.Token(authntest.Expired()), authn.ErrExpired},
		{"refresh token", f.issuer.Token(authntest.Type(authntest.TypeRefresh)), authn.ErrWrongType},
		{"wrong audience", f.issuer.Token(authntest.Audience("billing")), authn.ErrWrongAudience},
		{"malformed", "a.b.c", authn.ErrMalformed},
		{"empty", "", authn.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := r.Verify(t.Context(), tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err == nil && c.Subject != "alice" {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

func TestRemoteCache(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	r := startRemote(t, f, authn.WithCacheTTL(time.Minute))
	verify := func(tok string, want error, calls int32) {
		t.Helper()
		if _, err := r.Verify(t.Context(), tok); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("got %v, want %v", err, want)
		}
		if got := f.verifyCalls.Load(); got != calls {
			t.Fatalf("%d VerifyToken calls, want %d", got, calls)
		}
	}
	short := f.issuer.Token(authntest.TTL(3 * time.Second))
	verify(short, nil, 1)
	verify(short, nil, 1) // hit
	clock.Advance(2 * time.Second)
	verify(short, nil, 1) // hit
	clock.Advance(time.Second)
	verify(short, authn.ErrExpired, 2) // the entry ended at exp, before the cache TTL

	// Inactive answers are not cached by default.
	verify(short, authn.ErrExpired, 3)
	// Failures of the authority are never cached, and never accept.
	long := f.issuer.Token()
	f.mu.Lock()
	f.verifyErr = status.Error(codes.Unavailable, "down")
	f.mu.Unlock()
	_, err := r.Verify(t.Context(), long)
	if !errors.Is(err, authn.ErrUnavailable) || status.Code(authn.StatusError(t.Context(), err)) != codes.Unavailable {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if st := authn.StatusError(t.Context(), err); status.Convert(st).Message() != "token verification unavailable; retry later" {
		t.Fatalf("status leaks the cause: %v", st)
	}
	f.mu.Lock()
	f.verifyErr = nil
	f.mu.Unlock()
	verify(long, nil, 5)
	verify(long, nil, 5)
}

func TestRemoteCacheTTL(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	r := startRemote(t, f, authn.WithInactiveCacheTTL(time.Second))
	tok := f.issuer.Token()
	for range 3 {
		if _, err := r.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(authn.DefaultCacheTTL)
	if _, err := r.Verify(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if got := f.verifyCalls.Load(); got != 2 {
		t.Fatalf("%d calls, want 2: the default TTL did not hold", got)
	}
	bad := f.issuer.Token(authntest.Audience("billing"))
	for range 3 {
		if _, err := r.Verify(t.Context(), bad); !errors.Is(err, authn.ErrWrongAudience) {
			t.Fatal(err)
		}
	}
	if got := f.verifyCalls.Load(); got != 3 {
		t.Fatalf("%d calls, want 3: the inactive answer was not cached", got)
	}
}

func TestRemoteSharesConcurrentMisses(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	r := startRemote(t, f)
	tok := f.issuer.Token()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := r.Verify(context.Background(), tok); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := f.verifyCalls.Load(); got < 1 || got > 2 {
		// One call, or two when the first answer landed between a miss and its join.
		t.Fatalf("%d calls for 50 concurrent verifications", got)
	}
}

func TestRemoteEvictsOnEvents(t *testing.T) {
	cases := []struct {
		name  string
		event func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse
		gone  []string
		kept  []string
	}{
		{"token", func(*fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
			return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: "jti-a1"}
		}, []string{"a1"}, []string{"a2", "b"}},
		{"session", func(*fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
			return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SESSION, SessionId: "sid-2"}
		}, []string{"a2"}, []string{"a1", "b"}},
		{"subject cut-off", func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
			return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_SUBJECT_CUTOFF, Subject: "alice", CutoffTime: timestamppb.New(f.clock.Now())}
		}, []string{"a1", "a2"}, []string{"b"}},
		{"tenant cut-off", func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
			return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TENANT_CUTOFF, CutoffTime: timestamppb.New(f.clock.Now())}
		}, []string{"a1", "a2", "b"}, nil},
		{"key withdrawn", func(f *fakeAuthority) *tokenauthorityv1.WatchRevocationsResponse {
			return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_KEY_WITHDRAWN, Kid: f.issuer.KeyID()}
		}, []string{"a1", "a2", "b"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			f := newFakeAuthority(t, clock)
			r := startRemote(t, f, authn.WithRevocationWatch())
			if err := r.WaitLive(t.Context()); err != nil {
				t.Fatal(err)
			}
			i := f.issuer
			tok := map[string]string{
				"a1": i.Token(authntest.Subject("alice"), authntest.SessionID("sid-1"), authntest.JTI("jti-a1")),
				"a2": i.Token(authntest.Subject("alice"), authntest.SessionID("sid-2"), authntest.JTI("jti-a2")),
				"b":  i.Token(authntest.Subject("bob"), authntest.SessionID("sid-3"), authntest.JTI("jti-b")),
			}
			for _, tk := range tok {
				if _, err := r.Verify(t.Context(), tk); err != nil {
					t.Fatal(err)
				}
			}
			if n := r.CacheLen(); n != 3 {
				t.Fatalf("%d cached, want 3", n)
			}
			f.publish(tc.event(f))
			eventually(t, "the eviction", func() bool { return r.CacheLen() == len(tc.kept) })
			calls := f.verifyCalls.Load()
			for _, name := range tc.kept {
				if _, err := r.Verify(t.Context(), tok[name]); err != nil {
					t.Fatal(err)
				}
			}
			if got := f.verifyCalls.Load(); got != calls {
				t.Fatalf("kept entries were evicted: %d calls", got-calls)
			}
		})
	}
}

// TestRemoteBypassesCacheWhenStale checks that a remote verifier with a watch does not trust its
// cache while the stream is down past the bound, and asks the authority instead.
func TestRemoteBypassesCacheWhenStale(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	r := startRemote(t, f, authn.WithRevocationWatch(), authn.WithCacheTTL(time.Hour))
	if err := r.WaitLive(t.Context()); err != nil {
		t.Fatal(err)
	}
	tok := f.issuer.Token(authntest.TTL(time.Hour))
	for range 2 {
		if _, err := r.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	f.setDown(true)
	clock.Advance(authn.DefaultStalenessBound + time.Second)
	for range 2 {
		if _, err := r.Verify(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.verifyCalls.Load(); got != 3 {
		t.Fatalf("%d calls, want 3 (one while live, two while stale)", got)
	}
}

func TestRemoteConfig(t *testing.T) {
	_, err := authn.NewRemote(nil, "", authn.WithCacheSize(-1), authn.WithReconnectBackoff(time.Second, time.Millisecond))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no audience", "nil connection", "empty API key", "WithCacheSize", "WithReconnectBackoff"} {
		if !containsStr(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
