package authn_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
)

func newSource(t *testing.T, f *fakeAuthority, req authn.TokenRequest, opts ...authn.SourceOption) *authn.TokenSource {
	t.Helper()
	conn := f.serve(t)
	s, err := authn.NewTokenSource(conn, testAPIKey, req, append([]authn.SourceOption{f.clock.option(), authn.AllowInsecureTransport()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenSourceRefreshesBeforeExpiry(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	f.issueDelay = 10 * time.Millisecond // so that concurrent callers overlap the renewal
	s := newSource(t, f, authn.TokenRequest{Subject: "svc", Scopes: []string{"items:read"}})

	first, err := s.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Token(t.Context()); again != first || f.issueCalls.Load() != 1 {
		t.Fatalf("the token was not reused (%d issues)", f.issueCalls.Load())
	}
	// The fake issues 100 s tokens: renewal starts when 30 s remain.
	clock.Advance(69 * time.Second)
	if tok, _ := s.Token(t.Context()); tok != first || f.refreshCalls.Load() != 0 {
		t.Fatal("renewed too early")
	}
	clock.Advance(2 * time.Second)
	var wg sync.WaitGroup
	got := make(chan string, 50)
	for range 50 {
		wg.Go(func() {
			md, err := s.GetRequestMetadata(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			got <- strings.TrimPrefix(md["authorization"], "Bearer ")
		})
	}
	wg.Wait()
	close(got)
	if n := f.refreshCalls.Load(); n != 1 {
		t.Fatalf("%d refreshes for 50 concurrent callers, want 1", n)
	}
	for tok := range got {
		if tok == first || tok == "" {
			t.Fatal("a caller got the old token")
		}
	}
	if n := f.issueCalls.Load(); n != 1 {
		t.Fatalf("%d issues, want 1", n)
	}
}

func TestTokenSourceFallbacks(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	s := newSource(t, f, authn.TokenRequest{Principal: &authn.Principal{Identifier: "billing", Secret: "s3cret"}})
	first, err := s.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	// The authority is briefly unavailable at renewal: the still-valid token keeps being used.
	f.mu.Lock()
	f.refreshErr = status.Error(codes.Unavailable, "down")
	f.mu.Unlock()
	clock.Advance(80 * time.Second)
	if tok, err := s.Token(t.Context()); err != nil || tok != first {
		t.Fatalf("got %v, want the current token", err)
	}

	// The session ended: refresh answers Unauthenticated, and the source issues anew.
	f.mu.Lock()
	f.refreshErr = status.Error(codes.Unauthenticated, "invalid refresh token")
	f.mu.Unlock()
	tok, err := s.Token(t.Context())
	if err != nil || tok == first {
		t.Fatalf("got %v, want a new token", err)
	}
	if f.issueCalls.Load() != 2 || f.refreshCalls.Load() != 2 {
		t.Fatalf("%d issues and %d refreshes, want 2 and 2", f.issueCalls.Load(), f.refreshCalls.Load())
	}

	// Expired and the authority down: an error, never an expired token.
	f.mu.Lock()
	f.refreshErr = status.Error(codes.Unavailable, "down")
	f.issueErr = status.Error(codes.Unavailable, "down")
	f.mu.Unlock()
	clock.Advance(101 * time.Second)
	if _, err := s.GetRequestMetadata(t.Context()); status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want Unavailable", err)
	}
}

func TestTokenSourceConfig(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	conn := f.serve(t)
	s, err := authn.NewTokenSource(conn, testAPIKey, authn.TokenRequest{Subject: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.RequireTransportSecurity() {
		t.Fatal("insecure by default")
	}
	_, err = authn.NewTokenSource(conn, testAPIKey, authn.TokenRequest{Subject: "svc", Principal: &authn.Principal{}, AccessTTL: -1, Extra: map[string]any{"x": make(chan int)}})
	for _, want := range []string{"exactly one of Subject and Principal", "negative AccessTTL", "extra claims"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	bad := newSource(t, f, authn.TokenRequest{Principal: &authn.Principal{Identifier: "billing", Secret: "wrong"}})
	if _, err := bad.Token(t.Context()); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong secret: got %v, want Unauthenticated", err)
	}
}

// TestEndToEnd calls a protected service with the TokenSource as per-RPC credentials, and checks
// the server's local verifier accepts what the (fake) authority issued and then revoked.
func TestEndToEnd(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	l := startLocal(t, f)
	s := newSource(t, f, authn.TokenRequest{Subject: "svc", Audience: []string{"orders"}, Scopes: []string{"items:read"}})
	conn := serveItems(t, l, itemsPolicy, grpc.WithPerRPCCredentials(s))
	who, err := callUnary(t.Context(), conn, methodGet, "")
	if err != nil || who != "svc" {
		t.Fatalf("got %q, %v", who, err)
	}
	got, err := callStream(t.Context(), conn, methodList, "")
	if err != nil || len(got) != 3 || got[0] != "svc" {
		t.Fatalf("stream: got %q, %v", got, err)
	}
	if _, err := callUnary(t.Context(), conn, methodPut, ""); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("without the scope: %v", err)
	}
	tok, _ := s.Token(t.Context())
	c, err := l.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	f.publish(revokeJTI(c.JTI))
	eventually(t, "the revocation", func() bool {
		_, err := callUnary(t.Context(), conn, methodGet, "")
		return status.Code(err) == codes.Unauthenticated
	})
}
