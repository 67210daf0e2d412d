package grpcserver

import (
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// BenchmarkAuthorityCheck and BenchmarkAuthorityVerifyToken compare the authority placement of
// ext_authz with VerifyToken on the same in-process server (memory store): the same verification,
// with the route matching and the Envoy messages on top.
func BenchmarkAuthorityCheck(b *testing.B) {
	r, k, tok := benchAuthority(b)
	c := authv3.NewAuthorizationClient(r.conn)
	req := checkRequest("/api/o/1", tok)
	ctx := k.ctx()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Check(ctx, req)
			if err != nil || resp.GetOkResponse() == nil {
				b.Fatalf("Check: %v %v", resp, err)
			}
		}
	})
}

func BenchmarkAuthorityVerifyToken(b *testing.B) {
	r, k, tok := benchAuthority(b)
	c := tokenauthorityv1.NewTokenServiceClient(r.conn)
	req := &tokenauthorityv1.VerifyTokenRequest{Token: tok, Audience: "orders", RequiredScopes: []string{"orders.read"}}
	ctx := k.ctx()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.VerifyToken(ctx, req)
			if err != nil || !resp.GetActive() {
				b.Fatalf("VerifyToken: %v %v", resp, err)
			}
		}
	})
}

func benchAuthority(b *testing.B) (*replica, testKey, string) {
	b.Helper()
	r := newBackend().replica(b, func(c *Config) { c.ExtAuthz = testExtAuthzPolicy(b) })
	k := newTenant(b, r, "acme")
	p := must(tokenauthorityv1.NewTokenServiceClient(r.conn).IssueToken(k.ctx(), &tokenauthorityv1.IssueTokenRequest{
		Subject: "alice", Audience: []string{"orders"}, Scopes: []string{"orders.read"}}))
	return r, k, p.GetAccessToken()
}
