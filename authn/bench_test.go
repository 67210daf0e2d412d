package authn_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// benchToken returns a fake authority whose clock is the real time at the start, an EdDSA token
// of it in the authority's format, and the token's public key.
func benchToken(b *testing.B) (*fakeAuthority, string, ed25519.PublicKey) {
	b.Helper()
	clock := &fakeClock{}
	clock.ns.Store(time.Now().UnixNano())
	f := newFakeAuthority(b, clock)
	tok := f.issuer.Token(authntest.Subject("alice"), authntest.Scopes("items:read", "items:write"), authntest.TTL(time.Hour),
		authntest.Extra("plan", "gold"))
	x, err := base64.RawURLEncoding.DecodeString(f.issuer.JWK().GetX())
	if err != nil {
		b.Fatal(err)
	}
	return f, tok, ed25519.PublicKey(x)
}

// BenchmarkBareJWT is the baseline: golang-jwt parsing and verifying the same token with the key
// and its default claims validation, into MapClaims as the local verifier does.
func BenchmarkBareJWT(b *testing.B) {
	_, tok, pub := benchToken(b)
	p := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("orders"), jwt.WithIssuer(authntest.DefaultIssuer))
	keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseWithClaims(tok, jwt.MapClaims{}, keyFunc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareJWTRegisteredClaims is a stricter baseline: the same, into a struct.
func BenchmarkBareJWTRegisteredClaims(b *testing.B) {
	_, tok, pub := benchToken(b)
	p := jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("orders"), jwt.WithIssuer(authntest.DefaultIssuer))
	keyFunc := func(*jwt.Token) (any, error) { return pub, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseWithClaims(tok, &jwt.RegisteredClaims{}, keyFunc); err != nil {
			b.Fatal(err)
		}
	}
}

// startBenchLocal starts a local verifier on the real clock, with its revocation stream live.
func startBenchLocal(b *testing.B, f *fakeAuthority) *authn.Local {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := authn.NewLocal(ctx, f.serve(b), testAPIKey, authn.WithIssuer(f.issuer.Issuer()), authn.WithAudience("orders"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(l.Close)
	// A few deny entries, so that the lookups are not on empty maps.
	for i := range 100 {
		f.publish(revokeJTI("other-" + strconv.Itoa(i)))
	}
	for l.DenySetSize() < 100 {
		time.Sleep(time.Millisecond)
	}
	return l
}

// BenchmarkLocalVerify runs the same token through a local verifier fed by a live revocation
// stream: compare with BenchmarkBareJWT.
func BenchmarkLocalVerify(b *testing.B) {
	f, tok, _ := benchToken(b)
	l := startBenchLocal(b, f)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLocalVerifyParallel(b *testing.B) {
	f, tok, _ := benchToken(b)
	l := startBenchLocal(b, f)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Verify(context.Background(), tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// directConn answers VerifyToken in-process, without serialization or network, so that a
// benchmark measures the remote verifier's own machinery. Every token is active.
type directConn struct {
	calls  atomic.Int64
	claims *tokenauthorityv1.TokenClaims
}

func (d *directConn) Invoke(_ context.Context, method string, _, reply any, _ ...grpc.CallOption) error {
	if method != tokenauthorityv1.TokenService_VerifyToken_FullMethodName {
		return status.Error(codes.Unimplemented, method)
	}
	d.calls.Add(1)
	r, _ := reply.(*tokenauthorityv1.VerifyTokenResponse)
	r.Active, r.Claims = true, d.claims
	return nil
}

func (*directConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "no streams")
}

// BenchmarkRemoteCached verifies through the remote verifier at a 90% hit rate: nine calls in
// ten present one of nine hot tokens, the tenth a token never seen before.
func BenchmarkRemoteCached(b *testing.B) {
	benchRemote(b, 10)
}

// BenchmarkRemoteHit is the cache hit alone.
func BenchmarkRemoteHit(b *testing.B) {
	benchRemote(b, 0)
}

func benchRemote(b *testing.B, missEvery int) {
	now := time.Now()
	d := &directConn{claims: &tokenauthorityv1.TokenClaims{
		Issuer: authntest.DefaultIssuer, Subject: "alice", Audience: []string{"orders"}, Jti: "j", SessionId: "s",
		ExpireTime: timestamppb.New(now.Add(time.Hour)), IssueTime: timestamppb.New(now), Scopes: []string{"items:read"},
	}}
	r, err := authn.NewRemote(d, testAPIKey, authn.WithAudience("orders"), authn.WithCacheTTL(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	iss := authntest.NewIssuer()
	var hot [9]string
	for i := range hot {
		hot[i] = iss.Token(authntest.Subject("hot-" + strconv.Itoa(i)))
	}
	prefix := iss.Token()[:300] // misses: tokens of realistic length, unique by suffix
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tok := hot[i%len(hot)]
		if missEvery > 0 && i%missEvery == 0 {
			tok = prefix + strconv.Itoa(i)
		}
		i++
		if _, err := r.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100*(1-float64(d.calls.Load())/float64(i)), "hit%")
}

// BenchmarkRevocationPropagation measures, in-process over a gRPC stream, the time from the
// authority publishing a revocation to the local verifier rejecting the token: the client's share
// of the revoke-to-reject latency. It reports the median and the 99th percentile.
func BenchmarkRevocationPropagation(b *testing.B) {
	f, _, _ := benchToken(b)
	l := startBenchLocal(b, f)
	ctx := context.Background()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		jti := "prop-" + strconv.Itoa(i)
		tok := f.issuer.Token(authntest.JTI(jti))
		size := l.DenySetSize()
		start := time.Now()
		f.publish(revokeJTI(jti))
		for l.DenySetSize() == size {
			runtime.Gosched()
		}
		if _, err := l.Verify(ctx, tok); !errors.Is(err, authn.ErrRevoked) {
			b.Fatalf("got %v, want ErrRevoked", err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkLocalVerifyFirstSight presents tokens the verifier has not seen (more distinct tokens
// than its cache holds, in turn): the full check plus the cost of remembering each token. Compare
// with BenchmarkBareJWT.
func BenchmarkLocalVerifyFirstSight(b *testing.B) {
	f, _, _ := benchToken(b)
	l := startBenchLocal(b, f)
	toks := make([]string, 3*authn.DefaultCacheSize)
	for i := range toks {
		toks[i] = f.issuer.Token(authntest.Subject("alice"), authntest.Scopes("items:read", "items:write"), authntest.TTL(time.Hour),
			authntest.Extra("plan", "gold"), authntest.JTI("first-sight-"+strconv.Itoa(i)))
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := l.Verify(ctx, toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCallProtected and BenchmarkCallUnprotected call the same no-op unary method of a test
// service over a real (in-process) gRPC connection, with and without the authn interceptor in local
// mode checking a repeated token: their ratio is what protecting a method costs a call.
func BenchmarkCallProtected(b *testing.B) {
	benchCall(b, methodGet)
}

func BenchmarkCallUnprotected(b *testing.B) {
	benchCall(b, methodPing)
}

func benchCall(b *testing.B, method string) {
	f, tok, _ := benchToken(b)
	l := startBenchLocal(b, f)
	conn := serveItems(b, l, itemsPolicy)
	ctx := context.Background()
	if _, err := callUnary(ctx, conn, method, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := callUnary(ctx, conn, method, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
