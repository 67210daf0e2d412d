package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// TestKeyEncryptionKeyRotationWithoutFailedCalls rotates the key-encryption key from A to B on a
// real Redis by the documented rolling procedure, under a steady issue/refresh/verify load across
// replicas: replica 1 runs with A; replica 2 starts with B and previous A and re-seals every key
// set under B at start, which its gauge shows, while replica 1 keeps serving from its cache;
// replica 1 is then replaced by replica 3 with B alone. No call of the load fails, every key set
// ends up under B, and no log line holds a key.
func TestKeyEncryptionKeyRotationWithoutFailedCalls(t *testing.T) {
	srv := redistest.Start(t)
	cfgA := testConfig(t, srv.URL())
	r1, _ := startWith(t, cfgA, nil, func(log *slog.Logger) (*App, error) { return New(cfgA, log) })
	master := withKey(r1.master)
	admin := tokenauthorityv1.NewAdminServiceClient(r1.conn)
	for _, id := range []string{"acme", "globex"} {
		must(admin.CreateTenant(master, &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
			TenantId: id, Issuer: "https://" + id + ".example",
		}}))
	}

	kekB := make([]byte, 32)
	_, _ = rand.Read(kekB)
	cfgB := *cfgA
	cfgB.KeyEncryptionKey = kekB
	cfgB.PreviousKeyEncryptionKeys = [][]byte{cfgA.KeyEncryptionKey}
	cfgOnlyB := *cfgA
	cfgOnlyB.KeyEncryptionKey = kekB

	// The load: pairs issued on one replica, refreshed on another, verified on a third.
	var (
		lb       = newBalancer(r1)
		stop     atomic.Bool
		calls    atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	fail := func(what string, err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", what, err))
	}
	iteration := func(i int) {
		picked, release := lb.acquire(i, 3)
		defer release()
		ri, rr, rv := picked[0], picked[1], picked[2]
		calls.Add(3)
		p, err := tokenauthorityv1.NewTokenServiceClient(ri.conn).IssueToken(withKey(ri.devKey),
			&tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
		if err != nil {
			fail("issue", err)
			return
		}
		n, err := tokenauthorityv1.NewTokenServiceClient(rr.conn).RefreshToken(withKey(rr.devKey),
			&tokenauthorityv1.RefreshTokenRequest{RefreshToken: p.GetRefreshToken()})
		if err != nil {
			fail("refresh", err)
			return
		}
		v, err := tokenauthorityv1.NewTokenServiceClient(rv.conn).VerifyToken(withKey(rv.devKey),
			&tokenauthorityv1.VerifyTokenRequest{Token: n.GetAccessToken()})
		if err != nil || !v.GetActive() {
			fail("verify", errors.Join(err, fmt.Errorf("active %v (%s)", v.GetActive(), v.GetReason())))
		}
	}
	// Each phase below lets the load make this many calls (a few dozen iterations) before the
	// next step: counted in calls, since the time that takes depends on how busy the machine is.
	const phaseCalls = 90
	under := callsPast(&calls, phaseCalls)
	for w := range 3 {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				iteration(i)
			}
		})
	}
	waitUntil(t, "the load to get under way", time.Minute, under)

	// Step 1: a replica with B and previous A.
	r2, http2 := startWith(t, &cfgB, nil, func(log *slog.Logger) (*App, error) { return New(&cfgB, log) })
	lb.add(r2)
	// Step 2: wait for its gauge of key sets under a previous key to reach 0.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(scrape(t, http2), `tokenauthority_sealed_records{key="previous"} 0`+"\n") {
		if time.Now().After(deadline) {
			t.Fatalf("the previous-key gauge never reached 0:\n%s", grepLines(scrape(t, http2), "sealed_records"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if text := scrape(t, http2); !strings.Contains(text, `tokenauthority_sealed_records{key="current"} 3`+"\n") {
		t.Errorf("want 3 key sets under the current key:\n%s", grepLines(text, "sealed_records"))
	}
	checkSealedUnder(t, srv.URL(), keys.KEKID(kekB), 3)
	// Replica 1 (A alone) keeps serving from its cache through its key refreshes: its next one
	// reads key sets it cannot open, says so and keeps what it has; the load then goes on
	// through it.
	waitUntil(t, "replica 1's key refresh to find the key sets re-sealed", 30*time.Second, func() bool {
		return strings.Contains(r1.logs.String(), "refreshing signing keys failed; keeping the cached ones")
	})
	waitUntil(t, "the load to go on after replica 1's key refresh", time.Minute, callsPast(&calls, phaseCalls))

	// Step 3: replace replica 1 by one with B alone, once the calls that picked it have finished.
	r3, _ := startWith(t, &cfgOnlyB, nil, func(log *slog.Logger) (*App, error) { return New(&cfgOnlyB, log) })
	lb.add(r3)
	lb.remove(r1)
	lb.drain(t, r1)
	r1.stop(t)
	waitUntil(t, "the load to go on after replica 1 stopped", time.Minute, callsPast(&calls, phaseCalls))
	stop.Store(true)
	wg.Wait()

	t.Logf("%d calls, %d failed", calls.Load(), failures.Load())
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d calls failed during the key-encryption key rotation; first: %v", n, calls.Load(), firstErr.Load())
	}
	for _, r := range []*running{r1, r2, r3} {
		logs := r.logs.String()
		for _, k := range [][]byte{cfgA.KeyEncryptionKey, kekB} {
			for _, form := range []string{base64.StdEncoding.EncodeToString(k), hex.EncodeToString(k)} {
				if strings.Contains(logs, form) {
					t.Fatal("a key-encryption key appears in the logs")
				}
			}
		}
	}
	if !strings.Contains(r2.logs.String(), keys.KEKID(kekB)) {
		t.Error("replica 2 does not log the id of its key-encryption key")
	}
}

// checkSealedUnder checks that Redis holds n key sets, each a version 2 record naming key id.
func checkSealedUnder(t *testing.T, url, id string, n int) {
	t.Helper()
	opts, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	ids, err := c.ZRange(ctx, "ta:{r:keyset}", 0, -1).Result()
	if err != nil || len(ids) != n {
		t.Fatalf("key sets: %q, %v; want %d", ids, err, n)
	}
	want, _ := hex.DecodeString(id)
	for _, tn := range ids {
		rec, err := c.Get(ctx, "ta:{r:keyset}:"+tn).Bytes()
		if err != nil || len(rec) < 9 || rec[0] != 2 || !bytes.Equal(rec[1:9], want) {
			t.Errorf("key set of %q is not sealed under key %s (err %v)", tn, id, err)
		}
	}
}

// grepLines returns the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
