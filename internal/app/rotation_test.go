package app

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// TestRotationUnderLoadAndWithdrawalAcrossReplicas runs two replicas on one Redis. While workers
// issue on replica 1 and verify on replica 2, the signing key is rotated: every token, issued
// before, during or after, stays active. Then the old key is withdrawn: its tokens are inactive at
// once on the replica that withdrew it and, after its key refresh, on the other; the new key's
// tokens stay active.
func TestRotationUnderLoadAndWithdrawalAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	// Longer than the replicas' key refresh (1s), so that every replica has the new key before it
	// signs: that is what the delay is for. The timeline itself is tested in internal/keys.
	cfg.KeyPrePublish = 2 * time.Second
	r1 := start(t, cfg)
	r2 := start(t, cfg)
	ts1 := tokenauthorityv1.NewTokenServiceClient(r1.conn)
	ts2 := tokenauthorityv1.NewTokenServiceClient(r2.conn)
	admin1 := tokenauthorityv1.NewAdminServiceClient(r1.conn)
	// The load runs on a tenant without a practical rate limit: on a loaded machine the dev
	// tenant's limit, not the rotation, failed the workers' calls.
	key := unlimitedKey(t, r1, "rotation", "https://rotation.example")
	ctx1, ctx2 := withKey(key), withKey(key)

	before := must(ts1.IssueToken(ctx1, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	oldKid := must(ts1.ListPublicKeys(ctx1, &tokenauthorityv1.ListPublicKeysRequest{})).GetKeys()[0].GetKid()

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		issued   []string
		failures = map[string]int{} // by call and outcome, under mu
	)
	fail := func(what string) {
		mu.Lock()
		failures[what]++
		mu.Unlock()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				p, err := ts1.IssueToken(ctx1, &tokenauthorityv1.IssueTokenRequest{Subject: "bob"})
				if err != nil {
					fail("issue " + status.Code(err).String())
					continue
				}
				v, err := ts2.VerifyToken(ctx2, &tokenauthorityv1.VerifyTokenRequest{Token: p.GetAccessToken()})
				switch {
				case err != nil:
					fail("verify " + status.Code(err).String())
				case !v.GetActive():
					fail("verify inactive " + v.GetReason().String())
				}
				mu.Lock()
				issued = append(issued, p.GetAccessToken())
				mu.Unlock()
			}
		}()
	}
	// Load runs before the rotation, through the pre-publish window and after activation: the
	// rotation waits for tokens issued under the old key, and the load stops once tokens of the
	// new key, each verified on the other replica, show that activation is behind it. The servers
	// run on the real clock, so the pre-publish window takes its real time; nothing about timing
	// is asserted.
	issuedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(issued)
	}
	waitUntil(t, "the load to issue and verify 20 tokens before the rotation", time.Minute, func() bool { return issuedCount() >= 20 })
	rotated := must(admin1.RotateSigningKey(ctx1, &tokenauthorityv1.RotateSigningKeyRequest{}))
	var seen, ofNewKey int // of issued, under mu
	waitUntil(t, "the load to issue and verify 20 tokens of the new key", cfg.KeyPrePublish+time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for ; seen < len(issued); seen++ {
			if kidOf(t, issued[seen]) == rotated.GetKey().GetKid() {
				ofNewKey++
			}
		}
		return ofNewKey >= 20
	})
	stop.Store(true)
	wg.Wait()
	// Reported, not fatal: the withdrawal checks below run whatever happened here.
	if len(failures) > 0 {
		t.Errorf("issue-or-verify failures during the rotation, by call and outcome: %v", failures)
	}
	after := must(ts1.IssueToken(ctx1, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	newKid := rotated.GetKey().GetKid()
	if newKid == oldKid {
		t.Fatal("rotation kept the kid")
	}
	if kidOf(t, after.GetAccessToken()) != newKid || kidOf(t, before.GetAccessToken()) != oldKid {
		t.Fatal("the tokens before and after were not signed by the old and the new key")
	}
	jwks := must(ts2.ListPublicKeys(ctx2, &tokenauthorityv1.ListPublicKeysRequest{}))
	if len(jwks.GetKeys()) != 2 {
		t.Fatalf("JWKS after rotation: %v, want the old and the new key", jwks.GetKeys())
	}
	for _, tok := range append(issued, before.GetAccessToken(), after.GetAccessToken()) {
		for _, v := range []*tokenauthorityv1.VerifyTokenResponse{
			must(ts1.VerifyToken(ctx1, &tokenauthorityv1.VerifyTokenRequest{Token: tok})),
			must(ts2.VerifyToken(ctx2, &tokenauthorityv1.VerifyTokenRequest{Token: tok})),
		} {
			if !v.GetActive() {
				t.Fatalf("a token from around the rotation is inactive: %v", v.GetReason())
			}
		}
	}
	t.Logf("%d tokens issued and verified across replicas during the rotation", len(issued))

	must(admin1.WithdrawSigningKey(ctx1, &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: oldKid}))
	v := must(ts1.VerifyToken(ctx1, &tokenauthorityv1.VerifyTokenRequest{Token: before.GetAccessToken()}))
	if v.GetActive() || v.GetReason() != tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY {
		t.Fatalf("withdrawn key's token on the same replica: %v", v)
	}
	// The other replica learns of it on its next key refresh (once a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		v = must(ts2.VerifyToken(ctx2, &tokenauthorityv1.VerifyTokenRequest{Token: before.GetAccessToken()}))
		if !v.GetActive() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other replica still accepts the withdrawn key's token")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, ts := range []tokenauthorityv1.TokenServiceClient{ts1, ts2} {
		ctx := ctx1
		if ts == ts2 {
			ctx = ctx2
		}
		if v := must(ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: after.GetAccessToken()})); !v.GetActive() {
			t.Fatalf("new key's token after withdrawing the old key: %v", v.GetReason())
		}
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}
