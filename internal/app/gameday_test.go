package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// The leak playbook of docs/operations.md ("When a secret leaks"), rehearsed: each scenario runs
// on two replicas sharing a real Redis, under a steady issue/verify/refresh load of another
// client, and checks the documented outcome. What the leaked secret could do stops at the
// documented moment, legitimate sessions end or survive as documented, and the load sees no
// failure that the runbook does not announce.

// gameDay is a fleet of replicas behind a load balancer that the test drives: calls go to the
// replicas in turn, and a replica is taken out of the rotation before it stops.
type gameDay struct {
	t   *testing.T
	srv *redistest.Server
	cfg *config.Config
	// key is the load's API key (tenant "gd", every role, no rate limit to speak of).
	key string

	lb *balancer

	stop atomic.Bool
	wg   sync.WaitGroup
	// failures counts the load's failed calls, by "operation code" (or "verify inactive reason").
	fmu      sync.Mutex
	failures map[string]int
	calls    atomic.Int64
}

func newGameDay(t *testing.T) *gameDay {
	t.Helper()
	srv := redistest.Start(t)
	cfg := testConfig(t, srv.URL())
	// Refresh keys are kept as long as a session may live; the load's sessions are short.
	g := &gameDay{t: t, srv: srv, cfg: cfg, failures: map[string]int{}}
	g.lb = newBalancer(g.startReplica(cfg), g.startReplica(cfg))
	g.key = unlimitedKey(t, g.lb.all()[0], "gd", "https://gd.example")
	return g
}

func (g *gameDay) startReplica(cfg *config.Config) *running {
	g.t.Helper()
	r, _ := startWith(g.t, cfg, nil, func(log *slog.Logger) (*App, error) { return New(cfg, log) })
	return r
}

// all returns the replicas in the rotation.
func (g *gameDay) all() []*running { return g.lb.all() }

// roll replaces every replica, one at a time, by one running cfg, as a rolling deployment does:
// the new replica joins the rotation once it serves, the old one leaves it and stops once the
// calls that picked it have finished there.
func (g *gameDay) roll(cfg *config.Config) {
	g.t.Helper()
	for i := range g.all() {
		old := g.lb.replace(i, g.startReplica(cfg))
		g.lb.drain(g.t, old)
		old.stop(g.t)
	}
}

func (g *gameDay) fail(what string) {
	g.fmu.Lock()
	g.failures[what]++
	g.fmu.Unlock()
}

// loadCalls is how many calls of the load run before the scenario acts and after its last step.
const loadCalls = 40

// startLoad runs workers that each issue a pair on one replica, verify it on the next, refresh it
// on the next and verify the new access token, until stopLoad. It returns once the load has made
// loadCalls calls: the scenario acts on a fleet under way.
func (g *gameDay) startLoad() {
	g.t.Helper()
	under := callsPast(&g.calls, loadCalls)
	for w := range 3 {
		g.wg.Go(func() {
			for i := w; !g.stop.Load(); i++ {
				g.iteration(w, i)
			}
		})
	}
	waitUntil(g.t, "the load to get under way", time.Minute, under)
}

// iteration is one round of a load worker, on the replicas the balancer picks for its four calls,
// which count as in flight there until it ends.
func (g *gameDay) iteration(w, i int) {
	picked, release := g.lb.acquire(i, 4)
	defer release()
	ctx := withKey(g.key)
	g.calls.Add(1)
	p, err := tokensOf(picked[0]).IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: fmt.Sprintf("user-%d", w), Audience: []string{"orders"}})
	if err != nil {
		g.fail("issue " + status.Code(err).String())
		return
	}
	verify := func(r *running, tok string) {
		g.calls.Add(1)
		v, err := tokensOf(r).VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: tok})
		switch {
		case err != nil:
			g.fail("verify " + status.Code(err).String())
		case !v.GetActive():
			g.fail("verify inactive " + v.GetReason().String())
		}
	}
	verify(picked[1], p.GetAccessToken())
	g.calls.Add(1)
	n, err := tokensOf(picked[2]).RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p.GetRefreshToken()})
	if err != nil {
		g.fail("refresh " + status.Code(err).String())
		return
	}
	verify(picked[3], n.GetAccessToken())
}

// stopLoad lets the load make loadCalls more calls after the scenario's last step, stops it and
// checks that it failed only as announced (each failure key must start with one of them), logging
// what it saw.
func (g *gameDay) stopLoad(announced ...string) {
	g.t.Helper()
	waitUntil(g.t, "the load to run on after the scenario", time.Minute, callsPast(&g.calls, loadCalls))
	g.stop.Store(true)
	g.wg.Wait()
	g.fmu.Lock()
	defer g.fmu.Unlock()
	var seen []string
	for what, n := range g.failures {
		seen = append(seen, fmt.Sprintf("%s: %d", what, n))
		ok := false
		for _, a := range announced {
			ok = ok || strings.HasPrefix(what, a)
		}
		if !ok {
			g.t.Errorf("the load saw %d failures %q, which the runbook does not announce", n, what)
		}
	}
	sort.Strings(seen)
	g.t.Logf("load: %d calls; failures: %v", g.calls.Load(), seen)
}

// eachReplica runs check on every replica in the rotation.
func (g *gameDay) eachReplica(check func(r *running)) {
	for _, r := range g.all() {
		check(r)
	}
}

// within polls cond on every replica until it holds on all of them, failing after limit, and
// returns how long it took.
func (g *gameDay) within(what string, limit time.Duration, cond func(r *running) bool) time.Duration {
	g.t.Helper()
	start := time.Now()
	for {
		ok := true
		g.eachReplica(func(r *running) { ok = ok && cond(r) })
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			g.t.Fatalf("%s: not on every replica within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func adminOf(r *running) tokenauthorityv1.AdminServiceClient {
	return tokenauthorityv1.NewAdminServiceClient(r.conn)
}

func tokensOf(r *running) tokenauthorityv1.TokenServiceClient {
	return tokenauthorityv1.NewTokenServiceClient(r.conn)
}

// active reports whether tok verifies active on r.
func (g *gameDay) active(r *running, tok string) bool {
	v, err := tokensOf(r).VerifyToken(withKey(g.key), &tokenauthorityv1.VerifyTokenRequest{Token: tok})
	if err != nil {
		g.t.Fatalf("verify: %v", err)
	}
	return v.GetActive()
}

// forgeWith signs a copy of tok's claims with a new jti under k, as the holder of a leaked signing
// key would: an access token of a real session that the authority never issued.
func forgeWith(t *testing.T, tok string, k *keys.Key) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["jti"] = claims["sid"].(string) + ".forgedforgedforg"
	claims["scope"] = "admin"
	f := jwt.NewWithClaims(k.Method, claims)
	f.Header["kid"], f.Header["typ"] = k.ID, "at+jwt"
	s, err := f.SignedString(k.SignKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestLeakPlaybook(t *testing.T) {
	if testing.Short() {
		t.Skip("rehearses every leak on a fleet")
	}
	t.Run("master key", func(t *testing.T) {
		g := newGameDay(t)
		leaked := g.cfg.MasterKey.Reveal()
		g.startLoad()
		// Roll 1: the new key, the leaked one still accepted.
		fresh := randomSecret(t)
		both := *g.cfg
		both.MasterKey, both.PreviousMasterKey = config.NewSecret(fresh), config.NewSecret(leaked)
		g.roll(&both)
		g.eachReplica(func(r *running) {
			for _, k := range []string{leaked, fresh} {
				if _, err := adminOf(r).ListTenants(withKey(k), &tokenauthorityv1.ListTenantsRequest{}); err != nil {
					t.Fatalf("during the overlap: %v", err)
				}
			}
			// The audit log says which key a master call used.
			if !strings.Contains(r.logs.String(), tenant.MasterFingerprint(leaked)) {
				t.Error("the log does not name the previous key's fingerprint")
			}
		})
		// Roll 2: the new key alone. The leaked key is refused everywhere from then on.
		only := *g.cfg
		only.MasterKey = config.NewSecret(fresh)
		g.roll(&only)
		g.eachReplica(func(r *running) {
			if _, err := adminOf(r).ListTenants(withKey(leaked), &tokenauthorityv1.ListTenantsRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("the leaked master key after the roll: %v, want Unauthenticated", err)
			}
			if _, err := adminOf(r).ListTenants(withKey(fresh), &tokenauthorityv1.ListTenantsRequest{}); err != nil {
				t.Errorf("the new master key: %v", err)
			}
		})
		g.stopLoad() // nothing announced: the load never uses the master key
	})

	t.Run("API key", func(t *testing.T) {
		g := newGameDay(t)
		r1 := g.all()[0]
		created := must(adminOf(r1).CreateApiKey(withKey(g.key), &tokenauthorityv1.CreateApiKeyRequest{Name: "ci",
			Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY}}))
		leaked := created.GetSecret()
		g.eachReplica(func(r *running) { // the attacker's key works, and every replica has it cached
			must(tokensOf(r).ListPublicKeys(withKey(leaked), &tokenauthorityv1.ListPublicKeysRequest{}))
		})
		g.startLoad()
		rotated := must(adminOf(r1).RotateApiKey(withKey(g.key), &tokenauthorityv1.RotateApiKeyRequest{
			KeyId: created.GetApiKey().GetKeyId(), Overlap: durationpb.New(0)}))
		if _, err := tokensOf(r1).ListPublicKeys(withKey(leaked), &tokenauthorityv1.ListPublicKeysRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("the leaked value on the replica that rotated it: %v, want Unauthenticated at once", err)
		}
		took := g.within("the leaked API key refused", tenant.DefaultCacheTTL+2*time.Second, func(r *running) bool {
			_, err := tokensOf(r).ListPublicKeys(withKey(leaked), &tokenauthorityv1.ListPublicKeysRequest{})
			return status.Code(err) == codes.Unauthenticated
		})
		t.Logf("the leaked API key was refused everywhere %v after the rotation (documented: at once here, within %v elsewhere)",
			took.Round(time.Millisecond), tenant.DefaultCacheTTL)
		g.eachReplica(func(r *running) {
			must(tokensOf(r).ListPublicKeys(withKey(rotated.GetSecret()), &tokenauthorityv1.ListPublicKeysRequest{}))
		})
		g.stopLoad()
	})

	t.Run("principal secret", func(t *testing.T) {
		g := newGameDay(t)
		r1 := g.all()[0]
		must(adminOf(r1).CreatePrincipal(withKey(g.key), &tokenauthorityv1.CreatePrincipalRequest{Principal: &tokenauthorityv1.Principal{Identifier: "svc-billing"}}))
		leaked := must(adminOf(r1).SetPrincipalSecret(withKey(g.key), &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: "svc-billing"})).GetSecret()
		grant := func(r *running, secret string) (*tokenauthorityv1.IssueTokenResponse, error) {
			return tokensOf(r).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{
				Principal: &tokenauthorityv1.PrincipalCredentials{Identifier: "svc-billing", Secret: secret}})
		}
		stolen := must(grant(r1, leaked)) // what the attacker obtained with it
		g.startLoad()
		fresh := must(adminOf(r1).SetPrincipalSecret(withKey(g.key), &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: "svc-billing"})).GetSecret()
		must(tokensOf(r1).RevokeSessions(withKey(g.key), &tokenauthorityv1.RevokeSessionsRequest{
			Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "svc-billing"}}))
		g.eachReplica(func(r *running) {
			if _, err := grant(r, leaked); status.Code(err) != codes.Unauthenticated {
				t.Errorf("the leaked principal secret: %v, want Unauthenticated at once", err)
			}
			if g.active(r, stolen.GetAccessToken()) {
				t.Error("a token obtained with the leaked secret is still active after the cut-off")
			}
			if _, err := tokensOf(r).RefreshToken(withKey(g.key), &tokenauthorityv1.RefreshTokenRequest{RefreshToken: stolen.GetRefreshToken()}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("its refresh token: %v, want Unauthenticated", err)
			}
			if p, err := grant(r, fresh); err != nil || !g.active(r, p.GetAccessToken()) {
				t.Errorf("the new secret: %v", err)
			}
		})
		g.stopLoad()
	})

	t.Run("signing key", func(t *testing.T) {
		g := newGameDay(t)
		r1 := g.all()[0]
		k, err := r1.app.keys.SigningKey(context.Background(), "gd")
		if err != nil {
			t.Fatal(err)
		}
		legit := must(tokensOf(r1).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
		forged := forgeWith(t, legit.GetAccessToken(), k)
		g.eachReplica(func(r *running) {
			if !g.active(r, forged) {
				t.Fatal("the forged token is not active before the withdrawal: the scenario proves nothing")
			}
		})
		g.startLoad()
		must(adminOf(r1).WithdrawSigningKey(withKey(g.key), &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: k.ID}))
		if g.active(r1, forged) || g.active(r1, legit.GetAccessToken()) {
			t.Error("a token signed by the withdrawn key is still active on the replica that withdrew it")
		}
		// The other replicas re-read the key set when the withdrawal reaches the tenant's
		// revocation log (milliseconds), and every second in any case.
		took := g.within("tokens of the withdrawn key inactive", 1500*time.Millisecond, func(r *running) bool {
			return !g.active(r, forged) && !g.active(r, legit.GetAccessToken())
		})
		t.Logf("tokens of the withdrawn key inactive on every replica %v after the withdrawal", took.Round(time.Millisecond))
		// The session survives: its refresh token gives a pair signed by the replacement key,
		// which every replica verifies (an unknown kid makes a replica re-read the key set).
		n := must(tokensOf(r1).RefreshToken(withKey(g.key), &tokenauthorityv1.RefreshTokenRequest{RefreshToken: legit.GetRefreshToken()}))
		g.eachReplica(func(r *running) {
			if !g.active(r, n.GetAccessToken()) {
				t.Error("the refreshed token, signed by the replacement key, is not active")
			}
		})
		// Announced: access tokens the withdrawn key signed in the load's in-flight iterations.
		g.stopLoad("verify inactive INACTIVE_REASON_UNKNOWN_KEY", "verify inactive INACTIVE_REASON_REVOKED")
	})

	t.Run("refresh-token key", func(t *testing.T) {
		g := newGameDay(t)
		r1 := g.all()[0]
		victim := must(tokensOf(r1).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
		g.startLoad()
		must(adminOf(r1).RotateRefreshKey(withKey(g.key), &tokenauthorityv1.RotateRefreshKeyRequest{Emergency: true}))
		// Every refresh token signed by the old key is refused: the one the attacker could have
		// forged with the leaked key is the session's current one. The access token stays valid.
		took := g.within("refresh tokens of the old key refused", 3*time.Second, func(r *running) bool {
			_, err := tokensOf(r).RefreshToken(withKey(g.key), &tokenauthorityv1.RefreshTokenRequest{RefreshToken: victim.GetRefreshToken()})
			return status.Code(err) == codes.Unauthenticated
		})
		t.Logf("old refresh tokens refused everywhere %v after the emergency rotation", took.Round(time.Millisecond))
		g.eachReplica(func(r *running) {
			if !g.active(r, victim.GetAccessToken()) {
				t.Error("an access token of a session was ended by the refresh-key rotation; the runbook says it survives")
			}
		})
		// New sessions refresh with the new key.
		p := must(tokensOf(r1).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
		g.eachReplica(func(r *running) {
			if _, err := tokensOf(r).RefreshToken(withKey(g.key), &tokenauthorityv1.RefreshTokenRequest{RefreshToken: p.GetRefreshToken()}); err != nil {
				t.Errorf("a new session's refresh: %v", err)
			}
			p = must(tokensOf(r).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
		})
		// Announced: refreshes of pairs issued just before the rotation are refused; clients issue.
		g.stopLoad("refresh Unauthenticated")
	})

	t.Run("key-encryption key with a Redis dump", func(t *testing.T) {
		g := newGameDay(t)
		r1 := g.all()[0]
		ctx := context.Background()
		// What the dump and the key give the attacker: every signing and refresh key.
		k, err := r1.app.keys.SigningKey(ctx, "gd")
		if err != nil {
			t.Fatal(err)
		}
		legit := must(tokensOf(r1).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
		forged := forgeWith(t, legit.GetAccessToken(), k)
		g.startLoad()
		// 1. A new key-encryption key, the leaked one as previous, then alone (two rolls).
		kek := make([]byte, 32)
		_, _ = rand.Read(kek)
		both := *g.cfg
		both.KeyEncryptionKey, both.PreviousKeyEncryptionKeys = kek, [][]byte{g.cfg.KeyEncryptionKey}
		g.roll(&both)
		g.within("every key set re-sealed", 30*time.Second, func(r *running) bool {
			st, ok := r.app.keys.SealedRecords()
			return ok && st.Previous == 0
		})
		only := *g.cfg
		only.KeyEncryptionKey = kek
		g.roll(&only)
		checkSealedUnder(t, g.srv.URL(), keys.KEKID(kek), 2) // the dev tenant's and gd's
		// 2. Every tenant's keys as the dump held them are of no more use: a new signing key
		// first, then the old one withdrawn, and an emergency refresh-key rotation.
		r1 = g.all()[0]
		must(adminOf(r1).RotateSigningKey(withKey(g.key), &tokenauthorityv1.RotateSigningKeyRequest{}))
		must(adminOf(r1).WithdrawSigningKey(withKey(g.key), &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: k.ID}))
		must(adminOf(r1).RotateRefreshKey(withKey(g.key), &tokenauthorityv1.RotateRefreshKeyRequest{Emergency: true}))
		g.within("the dump's keys are of no use", 3*time.Second, func(r *running) bool {
			_, err := tokensOf(r).RefreshToken(withKey(g.key), &tokenauthorityv1.RefreshTokenRequest{RefreshToken: legit.GetRefreshToken()})
			return status.Code(err) == codes.Unauthenticated && !g.active(r, forged)
		})
		// Users sign in again; new sessions work on every replica.
		g.eachReplica(func(r *running) {
			p := must(tokensOf(r).IssueToken(withKey(g.key), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
			if !g.active(r, p.GetAccessToken()) {
				t.Error("a new session's token is not active")
			}
		})
		g.stopLoad("verify inactive INACTIVE_REASON_UNKNOWN_KEY", "verify inactive INACTIVE_REASON_REVOKED", "refresh Unauthenticated")
	})
}
