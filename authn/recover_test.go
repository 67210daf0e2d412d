package authn_test

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenauthority/tokenauthority/authn"
)

// refusingService answers every method, unary or server-streaming, unless the bearer token is one
// it was told to refuse: a stand-in for a protected service whose tokens get revoked.
type refusingService struct {
	attempts atomic.Int32
	mu       sync.Mutex
	refused  map[string]bool
	all      bool // refuse every token
}

func (r *refusingService) refuse(tok string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refused[tok] = true
}

func (r *refusingService) handle(_ any, stream grpc.ServerStream) error {
	r.attempts.Add(1)
	md, _ := metadata.FromIncomingContext(stream.Context())
	tok := strings.TrimPrefix(strings.Join(md.Get("authorization"), ""), "Bearer ")
	r.mu.Lock()
	refused := r.all || r.refused[tok] || tok == ""
	r.mu.Unlock()
	if refused {
		return status.Error(codes.Unauthenticated, "token revoked")
	}
	in := new(wrapperspb.StringValue)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	n := 1
	if method, _ := grpc.MethodFromServerStream(stream); strings.HasSuffix(method, "/List") {
		n = 3
	}
	for range n {
		if err := stream.SendMsg(wrapperspb.String(tok)); err != nil {
			return err
		}
	}
	return nil
}

func serveRefusing(t *testing.T, s *authn.TokenSource) (*refusingService, *grpc.ClientConn) {
	t.Helper()
	r := &refusingService{refused: map[string]bool{}}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(r.handle))
	conn := serveAndDial(t, srv, grpc.WithPerRPCCredentials(s),
		grpc.WithUnaryInterceptor(s.UnaryClientInterceptor()), grpc.WithStreamInterceptor(s.StreamClientInterceptor()))
	return r, conn
}

func TestTokenSourceRecoversFromARefusedToken(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	s := newSource(t, f, authn.TokenRequest{Subject: "svc"})
	r, conn := serveRefusing(t, s)
	ctx := t.Context()

	first, err := callUnary(ctx, conn, methodGet, "")
	if err != nil {
		t.Fatal(err)
	}
	// The service refuses the token (its session was revoked): the call is retried once with a
	// renewed token and succeeds.
	r.refuse(first)
	second, err := callUnary(ctx, conn, methodGet, "")
	if err != nil {
		t.Fatalf("call after the token was refused: %v", err)
	}
	if second == first || second == "" {
		t.Fatal("the retry carried the refused token")
	}
	if got := f.refreshCalls.Load(); got != 1 {
		t.Errorf("refresh calls = %d, want 1", got)
	}

	// Concurrent callers hitting the same refused token share one renewal, and none fails.
	r.refuse(second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := callUnary(ctx, conn, methodGet, ""); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent caller failed: %v", err)
	}
	if got := f.refreshCalls.Load(); got != 2 {
		t.Errorf("refresh calls after 16 concurrent refusals = %d, want 2 (one shared renewal)", got)
	}

	// The session is gone too: refresh is refused, a new session is issued.
	cur, _ := s.Token(ctx)
	r.refuse(cur)
	f.mu.Lock()
	f.lastRT = "revoked-session"
	f.mu.Unlock()
	issued := f.issueCalls.Load()
	if _, err := callUnary(ctx, conn, methodGet, ""); err != nil {
		t.Fatalf("call after the session ended: %v", err)
	}
	if f.issueCalls.Load() != issued+1 {
		t.Errorf("issue calls = %d, want %d", f.issueCalls.Load(), issued+1)
	}

	// A server-streaming call refused before its first response is retried as well.
	cur, _ = s.Token(ctx)
	r.refuse(cur)
	got, err := callStream(ctx, conn, methodList, "")
	if err != nil || len(got) != 3 || got[0] == cur {
		t.Fatalf("stream after a refusal: %q, %v", got, err)
	}

	// A service that refuses every token: one retry, then the refusal is the caller's.
	r.mu.Lock()
	r.all = true
	r.mu.Unlock()
	before := r.attempts.Load()
	if _, err := callUnary(ctx, conn, methodGet, ""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("always refused: %v, want Unauthenticated", err)
	}
	if n := r.attempts.Load() - before; n != 2 {
		t.Errorf("attempts for a call refused twice = %d, want 2", n)
	}
	before = r.attempts.Load()
	if _, err := callStream(ctx, conn, methodList, ""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("always refused stream: %v, want Unauthenticated", err)
	}
	if n := r.attempts.Load() - before; n != 2 {
		t.Errorf("attempts for a stream refused twice = %d, want 2", n)
	}
}

func TestTokenSourceInvalidate(t *testing.T) {
	clock := newFakeClock()
	f := newFakeAuthority(t, clock)
	s := newSource(t, f, authn.TokenRequest{Subject: "svc"})
	ctx := t.Context()
	a, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Invalidate("some-other-token") // not the current one: nothing happens
	if b, _ := s.Token(ctx); b != a || f.refreshCalls.Load() != 0 {
		t.Fatal("invalidating another token renewed the current one")
	}
	s.Invalidate(a)
	b, err := s.Token(ctx)
	if err != nil || b == a || f.refreshCalls.Load() != 1 {
		t.Fatalf("after Invalidate: same token %v, refresh calls %d, err %v", b == a, f.refreshCalls.Load(), err)
	}
	// An invalidated token is never handed out again, even when renewal fails.
	s.Invalidate(b)
	f.mu.Lock()
	f.refreshErr = status.Error(codes.Unavailable, "down")
	f.issueErr = status.Error(codes.Unavailable, "down")
	f.mu.Unlock()
	if c, err := s.Token(ctx); err == nil || c == b {
		t.Fatalf("renewal failed but Token returned %v, %v", c == b, err)
	}
}
