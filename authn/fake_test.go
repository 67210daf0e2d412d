package authn_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

const testAPIKey = "test-api-key"

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time             { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration)    { c.ns.Add(int64(d)) }
func (c *fakeClock) option() authn.SharedOption { return authn.WithClock(c.Now) }

// fakeAuthority implements the parts of TokenService that authn uses, with the contract of the
// real server: x-api-key, JWKS, introspection, a revocation log with cursors, markers, heartbeats
// and resyncs, and issue/refresh.
type fakeAuthority struct {
	tokenauthorityv1.UnimplementedTokenServiceServer
	clock     *fakeClock
	issuer    *authntest.Issuer
	heartbeat time.Duration

	listCalls, verifyCalls, issueCalls, refreshCalls, watchCalls atomic.Int32

	mu       sync.Mutex
	keys     []*tokenauthorityv1.JsonWebKey
	verifier *authn.Local // answers VerifyToken
	revoked  map[string]bool
	events   []*tokenauthorityv1.WatchRevocationsResponse
	firstSeq int // sequence number of events[0]
	changed  chan struct{}
	resyncs  int // bumped to make every open stream resync
	down     bool
	downCh   chan struct{}
	listGate chan struct{} // when set, ListPublicKeys waits for it to close
	verifyErr,
	refreshErr, issueErr error
	issued     int
	lastRT     string
	accessTTL  time.Duration
	issueDelay time.Duration
}

func newFakeAuthority(t testing.TB, clock *fakeClock) *fakeAuthority {
	t.Helper()
	iss := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"))
	f := &fakeAuthority{
		clock: clock, issuer: iss, heartbeat: 50 * time.Millisecond,
		keys:     []*tokenauthorityv1.JsonWebKey{iss.JWK()},
		revoked:  map[string]bool{},
		firstSeq: 1,
		changed:  make(chan struct{}),
		downCh:   make(chan struct{}),
	}
	// No leeway, so that the fake says "expired" exactly at exp.
	f.verifier = iss.Verifier(authn.WithAnyAudience(), authn.WithLeeway(0))
	t.Cleanup(f.verifier.Close)
	return f
}

// serve starts f on an in-memory listener and returns a client connection to it.
func (f *fakeAuthority) serve(t testing.TB) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer()
	tokenauthorityv1.RegisterTokenServiceServer(srv, f)
	return serveAndDial(t, srv)
}

func serveAndDial(t testing.TB, srv *grpc.Server, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
	})
	return conn
}

func (f *fakeAuthority) auth(ctx context.Context) error {
	if v := metadata.ValueFromIncomingContext(ctx, "x-api-key"); len(v) != 1 || v[0] != testAPIKey {
		return status.Error(codes.Unauthenticated, "invalid x-api-key")
	}
	return nil
}

func (f *fakeAuthority) setKeys(keys ...*tokenauthorityv1.JsonWebKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = keys
}

func (f *fakeAuthority) ListPublicKeys(ctx context.Context, _ *tokenauthorityv1.ListPublicKeysRequest) (*tokenauthorityv1.ListPublicKeysResponse, error) {
	if err := f.auth(ctx); err != nil {
		return nil, err
	}
	f.listCalls.Add(1)
	f.mu.Lock()
	gate := f.listGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &tokenauthorityv1.ListPublicKeysResponse{Keys: f.keys}, nil
}

// reasons maps verifier errors back to the wire's reasons.
var reasons = map[error]tokenauthorityv1.InactiveReason{
	authn.ErrMalformed:            tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED,
	authn.ErrUnsupportedAlgorithm: tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM,
	authn.ErrUnknownKey:           tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY,
	authn.ErrBadSignature:         tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE,
	authn.ErrWrongType:            tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_TYPE,
	authn.ErrExpired:              tokenauthorityv1.InactiveReason_INACTIVE_REASON_EXPIRED,
	authn.ErrNotYetValid:          tokenauthorityv1.InactiveReason_INACTIVE_REASON_NOT_YET_VALID,
	authn.ErrWrongIssuer:          tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_ISSUER,
}

func (f *fakeAuthority) VerifyToken(ctx context.Context, req *tokenauthorityv1.VerifyTokenRequest) (*tokenauthorityv1.VerifyTokenResponse, error) {
	if err := f.auth(ctx); err != nil {
		return nil, err
	}
	f.verifyCalls.Add(1)
	f.mu.Lock()
	verifyErr := f.verifyErr
	f.mu.Unlock()
	if verifyErr != nil {
		return nil, verifyErr
	}
	c, err := f.verifier.Verify(ctx, req.GetToken())
	if err != nil {
		r, ok := reasons[err]
		if !ok {
			return nil, status.Error(codes.Internal, err.Error())
		}
		return &tokenauthorityv1.VerifyTokenResponse{Reason: r}, nil
	}
	f.mu.Lock()
	revoked := f.revoked[c.JTI] || f.revoked[c.SessionID] || f.revoked[c.Subject]
	f.mu.Unlock()
	switch {
	case revoked:
		return &tokenauthorityv1.VerifyTokenResponse{Reason: tokenauthorityv1.InactiveReason_INACTIVE_REASON_REVOKED}, nil
	case req.GetAudience() != "" && !c.HasAudience(req.GetAudience()):
		return &tokenauthorityv1.VerifyTokenResponse{Reason: tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_AUDIENCE}, nil
	}
	return &tokenauthorityv1.VerifyTokenResponse{Active: true, Claims: &tokenauthorityv1.TokenClaims{
		Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		ExpireTime: timestamppb.New(c.ExpiresAt), NotBeforeTime: timestamppb.New(c.NotBefore),
		IssueTime: timestamppb.New(c.IssuedAt), Jti: c.JTI, SessionId: c.SessionID, Scopes: c.Scopes,
	}}, nil
}

// publish appends an event to the log (with the next cursor) and wakes the streams. The fake's
// VerifyToken also starts refusing what the event names.
func (f *fakeAuthority) publish(ev *tokenauthorityv1.WatchRevocationsResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev.Cursor = strconv.Itoa(f.firstSeq + len(f.events))
	if ev.ExpireTime == nil {
		ev.ExpireTime = timestamppb.New(f.clock.Now().Add(time.Hour))
	}
	for _, name := range []string{ev.GetJti(), ev.GetSessionId(), ev.GetSubject()} {
		if name != "" {
			f.revoked[name] = true
		}
	}
	f.events = append(f.events, ev)
	f.wakeLocked()
}

func (f *fakeAuthority) wakeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// trim drops the n oldest events, as a bounded Redis stream does.
func (f *fakeAuthority) trim(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = f.events[n:]
	f.firstSeq += n
}

// resyncAll makes every open stream send a resync and replay from the oldest retained event.
func (f *fakeAuthority) resyncAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resyncs++
	f.wakeLocked()
}

// setDown cuts every open stream and refuses new ones (true), or accepts them again (false).
func (f *fakeAuthority) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if down && !f.down {
		close(f.downCh)
	}
	if !down && f.down {
		f.downCh = make(chan struct{})
	}
	f.down = down
}

func (f *fakeAuthority) WatchRevocations(req *tokenauthorityv1.WatchRevocationsRequest, stream grpc.ServerStreamingServer[tokenauthorityv1.WatchRevocationsResponse]) error {
	if err := f.auth(stream.Context()); err != nil {
		return err
	}
	f.watchCalls.Add(1)
	f.mu.Lock()
	if f.down {
		f.mu.Unlock()
		return status.Error(codes.Unavailable, "down")
	}
	downCh, resyncs := f.downCh, f.resyncs
	last := f.firstSeq + len(f.events) - 1
	next, resync := 0, false
	switch req.GetCursor() {
	case "":
		next = last + 1
	case "0":
		next = f.firstSeq
	default:
		c, err := strconv.Atoi(req.GetCursor())
		if err != nil || c > last {
			f.mu.Unlock()
			return status.Error(codes.InvalidArgument, "bad cursor")
		}
		next = c + 1
		if next < f.firstSeq {
			next, resync = f.firstSeq, true
		}
	}
	f.mu.Unlock()

	send := func(m *tokenauthorityv1.WatchRevocationsResponse) error { return stream.Send(m) }
	if resync {
		if err := send(&tokenauthorityv1.WatchRevocationsResponse{Resync: true}); err != nil {
			return err
		}
	}
	ticker := time.NewTicker(f.heartbeat)
	defer ticker.Stop()
	needMarker := true
	for {
		f.mu.Lock()
		if f.resyncs != resyncs {
			resyncs, next, needMarker = f.resyncs, f.firstSeq, true
			f.mu.Unlock()
			if err := send(&tokenauthorityv1.WatchRevocationsResponse{Resync: true}); err != nil {
				return err
			}
			continue
		}
		next = max(next, f.firstSeq)
		batch := f.events[next-f.firstSeq:]
		cur := f.firstSeq + len(f.events) - 1
		changed := f.changed
		f.mu.Unlock()
		for _, ev := range batch {
			if err := send(ev); err != nil {
				return err
			}
			next++
		}
		if needMarker {
			needMarker = false
			if err := send(&tokenauthorityv1.WatchRevocationsResponse{Cursor: strconv.Itoa(cur)}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-ticker.C:
			if err := send(&tokenauthorityv1.WatchRevocationsResponse{Cursor: strconv.Itoa(cur)}); err != nil {
				return err
			}
		case <-downCh:
			return status.Error(codes.Unavailable, "down")
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func (f *fakeAuthority) IssueToken(ctx context.Context, req *tokenauthorityv1.IssueTokenRequest) (*tokenauthorityv1.IssueTokenResponse, error) {
	if err := f.auth(ctx); err != nil {
		return nil, err
	}
	f.issueCalls.Add(1)
	time.Sleep(f.issueDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.issueErr != nil {
		return nil, f.issueErr
	}
	sub := req.GetSubject()
	if p := req.GetPrincipal(); p != nil {
		if p.GetSecret() != "s3cret" {
			return nil, status.Error(codes.Unauthenticated, "invalid principal credentials")
		}
		sub = p.GetIdentifier()
	}
	at, rt, exp := f.mintLocked(sub, req.GetScopes())
	return &tokenauthorityv1.IssueTokenResponse{AccessToken: at, RefreshToken: rt, TokenType: "Bearer", AccessExpiresAt: timestamppb.New(exp)}, nil
}

func (f *fakeAuthority) RefreshToken(ctx context.Context, req *tokenauthorityv1.RefreshTokenRequest) (*tokenauthorityv1.RefreshTokenResponse, error) {
	if err := f.auth(ctx); err != nil {
		return nil, err
	}
	f.refreshCalls.Add(1)
	time.Sleep(f.issueDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refreshErr != nil {
		return nil, f.refreshErr
	}
	if req.GetRefreshToken() != f.lastRT {
		return nil, status.Error(codes.Unauthenticated, "invalid refresh token")
	}
	at, rt, exp := f.mintLocked("refreshed", nil)
	return &tokenauthorityv1.RefreshTokenResponse{AccessToken: at, RefreshToken: rt, TokenType: "Bearer", AccessExpiresAt: timestamppb.New(exp)}, nil
}

func (f *fakeAuthority) mintLocked(sub string, scopes []string) (at, rt string, exp time.Time) {
	ttl := f.accessTTL
	if ttl == 0 {
		ttl = 100 * time.Second
	}
	f.issued++
	at = f.issuer.Token(authntest.Subject(sub), authntest.Scopes(scopes...), authntest.TTL(ttl))
	f.lastRT = "rt-" + strconv.Itoa(f.issued)
	return at, f.lastRT, f.clock.Now().Add(ttl).Truncate(time.Second)
}

// eventually polls cond every few milliseconds until it holds, or fails the test after 5s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The test service: a hand-written descriptor with unary and server-streaming methods that
// answer with the caller's subject.
const (
	itemsService = "authn.test.Items"
	methodGet    = "/" + itemsService + "/Get"
	methodPut    = "/" + itemsService + "/Put"
	methodPing   = "/" + itemsService + "/Ping"
	methodSecret = "/" + itemsService + "/Secret"
	methodList   = "/" + itemsService + "/List"
	methodWatch  = "/" + itemsService + "/Watch"
)

func whoami(ctx context.Context) string {
	if c, ok := authn.ClaimsFromContext(ctx); ok {
		return c.Subject
	}
	return "anonymous"
}

func unaryMethod(name string) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) { return wrapperspb.String(whoami(ctx)), nil }
		if ic == nil {
			return h(ctx, in)
		}
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + itemsService + "/" + name}, h)
	}}
}

func streamMethod(name string) grpc.StreamDesc {
	return grpc.StreamDesc{StreamName: name, ServerStreams: true, Handler: func(_ any, stream grpc.ServerStream) error {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		for range 3 {
			if err := stream.SendMsg(wrapperspb.String(whoami(stream.Context()))); err != nil {
				return err
			}
		}
		return nil
	}}
}

var itemsDesc = grpc.ServiceDesc{
	ServiceName: itemsService,
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{unaryMethod("Get"), unaryMethod("Put"), unaryMethod("Ping"), unaryMethod("Secret")},
	Streams:     []grpc.StreamDesc{streamMethod("List"), streamMethod("Watch")},
}

// serveItems starts the test service behind the authn interceptors and returns a connection.
func serveItems(t testing.TB, v authn.Verifier, p authn.Policy, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(authn.UnaryServerInterceptor(v, p)),
		grpc.ChainStreamInterceptor(authn.StreamServerInterceptor(v, p)),
	)
	srv.RegisterService(&itemsDesc, struct{}{})
	return serveAndDial(t, srv, opts...)
}

// callUnary calls a unary method of the test service with token (none when empty).
func callUnary(ctx context.Context, conn *grpc.ClientConn, method, token string) (string, error) {
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	out := new(wrapperspb.StringValue)
	err := conn.Invoke(ctx, method, wrapperspb.String("in"), out)
	return out.GetValue(), err
}

// callStream calls a server-streaming method and returns what it received.
func callStream(ctx context.Context, conn *grpc.ClientConn, method, token string) ([]string, error) {
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(wrapperspb.String("in")); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	var got []string
	for {
		out := new(wrapperspb.StringValue)
		if err := s.RecvMsg(out); err != nil {
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			return got, err
		}
		got = append(got, out.GetValue())
	}
}

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }

func revokeJTI(jti string) *tokenauthorityv1.WatchRevocationsResponse {
	return &tokenauthorityv1.WatchRevocationsResponse{Kind: tokenauthorityv1.RevocationKind_REVOCATION_KIND_TOKEN, Jti: jti}
}
