package app

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"testing"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// TestRestartKeepsKeysAndSessions restarts the service on the same Redis with the same
// key-encryption key: every key and session survives, so nobody is logged out.
func TestRestartKeepsKeysAndSessions(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	first := start(t, cfg)
	ts := tokenauthorityv1.NewTokenServiceClient(first.conn)
	pair := must(ts.IssueToken(withKey(first.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	first.conn.Close()
	first.stop(t)

	second := start(t, cfg)
	ts = tokenauthorityv1.NewTokenServiceClient(second.conn)
	ctx := withKey(second.devKey)
	v := must(ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: pair.GetAccessToken()}))
	if !v.GetActive() {
		t.Fatalf("access token after restart: %v", v.GetReason())
	}
	must(ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: pair.GetRefreshToken()}))
}

// TestKeysAtRestAreSealed creates tenants of every algorithm and scans everything Redis holds:
// no private key, HMAC secret or refresh key may appear in it, raw or encoded.
func TestKeysAtRestAreSealed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	r := start(t, testConfig(t, srv.URL()))
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	algs := map[string]tokenauthorityv1.SigningAlgorithm{
		"t-eddsa": tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA,
		"t-es256": tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256,
		"t-rs256": tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_RS256,
		"t-hs256": tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_HS256,
	}
	var secrets [][]byte
	for id, alg := range algs {
		must(admin.CreateTenant(withKey(r.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
			TenantId: id, Issuer: "https://" + id + ".example", Algorithm: alg,
		}}))
		k := must(r.app.keys.SigningKey(ctx, id))
		if k.Algorithm == keys.HS256 {
			secrets = append(secrets, k.SignKey.([]byte))
		} else {
			secrets = append(secrets, must(x509.MarshalPKCS8PrivateKey(k.SignKey)))
		}
		rks := must(r.app.keys.RefreshKeys(ctx, id))
		secrets = append(secrets, rks[len(rks)-1].Secret)
	}
	var needles [][]byte
	for _, s := range secrets {
		// Any 16-byte window of the secret, in every encoding it could be stored in.
		for _, part := range [][]byte{s[:16], s[len(s)-16:]} {
			needles = append(needles, part,
				[]byte(base64.StdEncoding.EncodeToString(part)[:20]),
				[]byte(base64.RawURLEncoding.EncodeToString(part)[:20]))
		}
	}
	needles = append(needles, []byte("PRIVATE KEY"))

	c := srv.Client(t)
	var scanned int
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		var values []string
		switch typ := must(c.Type(ctx, key).Result()); typ {
		case "string":
			values = append(values, must(c.Get(ctx, key).Result()))
		case "hash":
			for f, v := range must(c.HGetAll(ctx, key).Result()) {
				values = append(values, f, v)
			}
		case "zset":
			values = must(c.ZRange(ctx, key, 0, -1).Result())
		default:
			t.Fatalf("unexpected %s key %q", typ, key)
		}
		for _, v := range values {
			for _, n := range needles {
				if bytes.Contains([]byte(v), n) {
					t.Fatalf("key %q holds secret key material in the clear", key)
				}
			}
		}
		scanned++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if scanned < 10 {
		t.Fatalf("scanned only %d keys", scanned)
	}
	t.Logf("scanned %d Redis keys for %d secrets", scanned, len(secrets))
}
