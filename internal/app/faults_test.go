package app

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// The fault tests run the service on a real redis-server behind a TCP proxy that delays, stalls,
// cuts or refuses connections. Each checks, for every call it makes, that no status is Internal
// or Unknown, that no token revoked before the fault verifies active, and that every call returns
// within hangBound; then that the service recovers by itself once the fault ends.

const (
	// hangBound is how long a call may take under a fault before it counts as hung. The store's
	// timeouts are far shorter; the bound is generous because the machine may be loaded.
	hangBound = 10 * time.Second
	// callTimeout is the client's own deadline, so that a hung call fails the test instead of
	// hanging it.
	callTimeout = 30 * time.Second
	// storeMargin is what a call may take beyond the store budget under a fault: scheduling on a
	// loaded machine, never a Redis round trip.
	storeMargin = time.Second
	// recoverWithin bounds the wait for the service to recover after a fault ends.
	recoverWithin = 30 * time.Second
	// slowLatency is the proxy's delay each way in the "slow" case: beyond the client's read
	// timeout (500ms by default, internal/app/redis.go).
	slowLatency = 2 * time.Second
)

// faultEnv is the service on a redis-server behind a proxy, with tokens issued before any fault.
type faultEnv struct {
	srv   *redistest.Server
	proxy *redistest.Proxy
	r     *running
	ts    tokenauthorityv1.TokenServiceClient
	key   string
	calls *callLog

	// live is a session that nothing revokes.
	live *tokenauthorityv1.IssueTokenResponse
	// revoked are access tokens revoked before the fault: one whose session was ended, one revoked
	// on its own while its session lives on.
	revoked []string
}

// startFaultEnv starts the service with its Redis URL pointing at a proxy in front of a new
// redis-server; query holds extra URL parameters (go-redis options such as pool_size).
func startFaultEnv(t *testing.T, query string, edit ...func(*config.Config)) *faultEnv {
	t.Helper()
	srv := redistest.Start(t)
	proxy := redistest.StartProxy(t, srv.Addr())
	url := proxy.URL()
	if query != "" {
		url += "?" + query
	}
	cfg := testConfig(t, url)
	for _, f := range edit {
		f(cfg)
	}
	r := start(t, cfg)
	e := &faultEnv{srv: srv, proxy: proxy, r: r, ts: tokenauthorityv1.NewTokenServiceClient(r.conn), key: r.devKey, calls: newCallLog()}
	e.live = e.mustIssue(t, "alice")

	ended := e.mustIssue(t, "bob")
	if _, err := e.ts.RevokeToken(e.ctx(), &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: ended.GetSessionId()}}); err != nil {
		t.Fatalf("revoke session: %v", err)
	}
	one := e.mustIssue(t, "carol")
	if _, err := e.ts.RevokeToken(e.ctx(), &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: one.GetAccessToken()}}); err != nil {
		t.Fatalf("revoke token: %v", err)
	}
	e.revoked = []string{ended.GetAccessToken(), one.GetAccessToken()}
	e.assertRevokedInactive(t)
	e.calls.reset()
	return e
}

// ctx returns a context carrying the dev API key.
func (e *faultEnv) ctx() context.Context { return withKey(e.key) }

func (e *faultEnv) mustIssue(t *testing.T, subject string) *tokenauthorityv1.IssueTokenResponse {
	t.Helper()
	p, err := e.ts.IssueToken(e.ctx(), &tokenauthorityv1.IssueTokenRequest{Subject: subject, Scopes: []string{"read"}})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return p
}

// call runs one RPC with the client deadline, records its outcome and duration, and fails the
// test when it took longer than hangBound or ended Internal or Unknown.
func (e *faultEnv) call(t *testing.T, rpc string, f func(ctx context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx(), callTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	d := time.Since(start)
	e.calls.add(rpc, err, d)
	if d > hangBound {
		t.Errorf("%s took %v (%v), more than %v: hung", rpc, d.Round(time.Millisecond), err, hangBound)
	}
	if c := status.Code(err); c == codes.Internal || c == codes.Unknown {
		t.Errorf("%s: %v: a fault of Redis must never be Internal or Unknown", rpc, err)
	}
	return err
}

func (e *faultEnv) verify(t *testing.T, tok string) (*tokenauthorityv1.VerifyTokenResponse, error) {
	t.Helper()
	var v *tokenauthorityv1.VerifyTokenResponse
	err := e.call(t, "VerifyToken", func(ctx context.Context) error {
		var err error
		v, err = e.ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: tok})
		return err
	})
	return v, err
}

func (e *faultEnv) issue(t *testing.T, subject string) (*tokenauthorityv1.IssueTokenResponse, error) {
	t.Helper()
	var p *tokenauthorityv1.IssueTokenResponse
	err := e.call(t, "IssueToken", func(ctx context.Context) error {
		var err error
		p, err = e.ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: subject, Scopes: []string{"read"}})
		return err
	})
	return p, err
}

func (e *faultEnv) refresh(t *testing.T, rt string) (*tokenauthorityv1.RefreshTokenResponse, error) {
	t.Helper()
	var p *tokenauthorityv1.RefreshTokenResponse
	err := e.call(t, "RefreshToken", func(ctx context.Context) error {
		var err error
		p, err = e.ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: rt})
		return err
	})
	return p, err
}

// verifyRevoked verifies every token revoked before the fault, fails the test if one is active,
// and returns the errors of the calls that failed.
func (e *faultEnv) verifyRevoked(t *testing.T) []error {
	t.Helper()
	var errs []error
	for i, tok := range e.revoked {
		v, err := e.verify(t, tok)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v.GetActive() {
			t.Errorf("revoked token %d verified active: a revocation was lost", i)
		}
	}
	return errs
}

// assertRevokedInactive requires an answer, inactive, for every revoked token.
func (e *faultEnv) assertRevokedInactive(t *testing.T) {
	t.Helper()
	if errs := e.verifyRevoked(t); len(errs) > 0 {
		t.Fatalf("verify revoked tokens: %v", errs)
	}
}

// waitRecovered polls until the service answers again: a new session issues and verifies active,
// the live session (when it should have survived) verifies active, and the revoked tokens
// verify inactive.
func (e *faultEnv) waitRecovered(t *testing.T, liveSurvives bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(recoverWithin)
	var last error
	for time.Now().Before(deadline) {
		if last = e.recovered(t, liveSurvives); last == nil {
			d := time.Since(start)
			t.Logf("recovered %v after the fault ended", d.Round(time.Millisecond))
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the service did not recover within %v of the fault's end: %v", recoverWithin, last)
	return 0
}

// stayRecovered checks, for d, that the service keeps working, and requires it to work at the end.
// d is a span of the service's own clock, the real one (its caches' lifetime), and the checks are
// samples across it, each of which must pass however few a busy machine allows: the pause between
// them paces the sampling, it waits for nothing.
func (e *faultEnv) stayRecovered(t *testing.T, d time.Duration) {
	t.Helper()
	var failures int
	var last error
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if last = e.recovered(t, false); last != nil {
			failures++
		}
	}
	if last = e.recovered(t, false); last != nil {
		t.Fatalf("the service stopped working %v after it recovered (%d failed checks): %v", d, failures+1, last)
	}
	if failures > 0 {
		t.Logf("%d checks failed in the %v after recovery, then the service worked again", failures, d)
	}
}

func (e *faultEnv) recovered(t *testing.T, liveSurvives bool) error {
	p, err := e.issue(t, "dave")
	if err != nil {
		return fmt.Errorf("issue: %w", err)
	}
	if err := e.verifyActive(t, p.GetAccessToken()); err != nil {
		return fmt.Errorf("verify new token: %w", err)
	}
	if liveSurvives {
		if err := e.verifyActive(t, e.live.GetAccessToken()); err != nil {
			return fmt.Errorf("verify the live session's token: %w", err)
		}
	}
	if errs := e.verifyRevoked(t); len(errs) > 0 {
		return fmt.Errorf("verify revoked tokens: %v", errs)
	}
	return nil
}

// verifyActive verifies tok and reports why it is not active, if it is not.
func (e *faultEnv) verifyActive(t *testing.T, tok string) error {
	t.Helper()
	v, err := e.verify(t, tok)
	if err != nil {
		return err
	}
	if !v.GetActive() {
		return fmt.Errorf("inactive: %v", v.GetReason())
	}
	return nil
}

// callLog counts outcomes per RPC and status code, and the slowest call of each RPC.
type callLog struct {
	mu      sync.Mutex
	counts  map[string]map[codes.Code]int
	slowest map[string]time.Duration
}

func newCallLog() *callLog {
	return &callLog{counts: map[string]map[codes.Code]int{}, slowest: map[string]time.Duration{}}
}

func (l *callLog) add(rpc string, err error, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts[rpc] == nil {
		l.counts[rpc] = map[codes.Code]int{}
	}
	l.counts[rpc][status.Code(err)]++
	l.slowest[rpc] = max(l.slowest[rpc], d)
}

// fewest returns the number of calls of the rpc, among rpcs, that was called least.
func (l *callLog) fewest(rpcs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := -1
	for _, rpc := range rpcs {
		sum := 0
		for _, c := range l.counts[rpc] {
			sum += c
		}
		if n < 0 || sum < n {
			n = sum
		}
	}
	return n
}

// reset forgets what was counted.
func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.counts)
	clear(l.slowest)
}

func (l *callLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, rpc := range slices.Sorted(maps.Keys(l.counts)) {
		fmt.Fprintf(&b, "\n  %-13s slowest %-8v", rpc, l.slowest[rpc].Round(time.Millisecond))
		for _, c := range slices.Sorted(maps.Keys(l.counts[rpc])) {
			fmt.Fprintf(&b, " %v=%d", c, l.counts[rpc][c])
		}
	}
	return b.String()
}

// TestFaultRedisUnreachable covers Redis answering too slowly, not at all on open connections,
// and not accepting connections: every call fails Unavailable within a bounded time, nothing
// revoked turns active, and the service recovers when the fault ends.
func TestFaultRedisUnreachable(t *testing.T) {
	tests := []struct {
		name         string
		inject, heal func(p *redistest.Proxy)
	}{
		{
			name:   "slow beyond the read timeout",
			inject: func(p *redistest.Proxy) { p.SetLatency(slowLatency) },
			heal:   func(p *redistest.Proxy) { p.SetLatency(0) },
		},
		{
			name:   "connections stalled",
			inject: func(p *redistest.Proxy) { p.Stall() },
			heal:   func(p *redistest.Proxy) { p.Resume() },
		},
		{
			name:   "connections refused",
			inject: func(p *redistest.Proxy) { p.Refuse(); p.Cut() },
			heal:   func(p *redistest.Proxy) { p.Accept() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startFaultEnv(t, "")
			rt := e.live.GetRefreshToken()
			tt.inject(e.proxy)

			// Twice: the first round may be served from the API-key cache, the second after the
			// health probe has seen the fault.
			for round := range 2 {
				for _, c := range []struct {
					name string
					err  error
				}{
					{"verify revoked (session ended)", second(e.verify(t, e.revoked[0]))},
					{"verify revoked (token)", second(e.verify(t, e.revoked[1]))},
					{"verify live", second(e.verify(t, e.live.GetAccessToken()))},
					{"issue", second(e.issue(t, "erin"))},
					{"refresh", second(e.refresh(t, rt))},
				} {
					if status.Code(c.err) != codes.Unavailable {
						t.Errorf("round %d: %s during the fault: %v, want Unavailable", round, c.name, c.err)
					}
				}
				if round == 0 {
					e.r.waitServing(t, healthpb.HealthCheckResponse_NOT_SERVING)
				}
			}
			t.Logf("calls during the fault:%v", e.calls)
			// Every call ends within the store budget (TOKENAUTHORITY_STORE_TIMEOUT, 1s here), its
			// authentication and go-redis's retries included, plus a margin for a loaded machine;
			// before the budget, a Verify took up to 4.3s.
			for rpc, d := range e.calls.slowest {
				if limit := e.r.app.cfg.StoreTimeout + storeMargin; d > limit {
					t.Errorf("%s took %v during the fault, more than the store budget plus %v", rpc, d.Round(time.Millisecond), storeMargin)
				}
			}
			e.calls.reset()

			tt.heal(e.proxy)
			e.waitRecovered(t, true)
			e.r.waitServing(t, healthpb.HealthCheckResponse_SERVING)
			// The refresh token that could not be used during the fault still works.
			if _, err := e.refresh(t, rt); err != nil {
				t.Errorf("refresh after recovery: %v", err)
			}
			t.Logf("calls during recovery:%v", e.calls)
		})
	}
}

// second returns its second argument: the error of a call that returns a value and an error.
func second[T any](_ T, err error) error { return err }

// TestFaultConnectionsCut cuts every Redis connection over and over while traffic runs: each
// call succeeds with the right answer or fails Unavailable, and nothing revoked turns active.
func TestFaultConnectionsCut(t *testing.T) {
	e := startFaultEnv(t, "")
	// A little latency keeps commands in flight, so that cuts land mid-command.
	e.proxy.SetLatency(5 * time.Millisecond)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var refreshed atomic.Int64
	allowed := func(rpc string, err error) {
		if c := status.Code(err); c != codes.OK && c != codes.Unavailable {
			t.Errorf("%s during cuts: %v, want success or Unavailable", rpc, err)
		}
	}
	for w := range 4 {
		// Each worker walks its own session's chain of refresh tokens.
		rt := e.mustIssue(t, fmt.Sprintf("worker-%d", w)).GetRefreshToken()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				e.verifyRevoked(t)
				v, err := e.verify(t, e.live.GetAccessToken())
				allowed("VerifyToken", err)
				if err == nil && !v.GetActive() {
					t.Errorf("the live session's token verified inactive (%v) during cuts", v.GetReason())
				}
				p, err := e.issue(t, "frank")
				allowed("IssueToken", err)
				if err == nil {
					if v, err := e.verify(t, p.GetAccessToken()); err == nil && !v.GetActive() {
						t.Errorf("a token issued during cuts verified inactive (%v)", v.GetReason())
					}
				}
				// A refresh that failed may have rotated in Redis: retrying it with the same token
				// within the refresh grace gets the same new pair.
				n, err := e.refresh(t, rt)
				allowed("RefreshToken", err)
				if err == nil {
					rt = n.GetRefreshToken()
					refreshed.Add(1)
				}
			}
		}()
	}
	cuts := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); cuts++ {
		time.Sleep(50 * time.Millisecond)
		e.proxy.Cut()
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d cuts; calls:%v", cuts, e.calls)
	e.proxy.SetLatency(0)
	e.waitRecovered(t, true)
}

// TestFaultRedisRestartedEmpty restarts Redis with no data under the running service: the tokens
// of sessions that existed before are inactive (the store is an allow-list: what it lost is not
// active), the service recovers without a restart, and new tokens work.
func TestFaultRedisRestartedEmpty(t *testing.T) {
	tests := []struct {
		name string
		// restart stops and restarts the server.
		restart func(t *testing.T, e *faultEnv)
		// reasons are the acceptable reasons of the old tokens afterwards.
		reasons []tokenauthorityv1.InactiveReason
	}{
		{
			// In development the service recreates its tenant with new keys: the old tokens name
			// a key that no longer exists, or a session that no longer exists.
			name: "after the service noticed the outage",
			restart: func(t *testing.T, e *faultEnv) {
				e.srv.Stop(t)
				e.r.waitServing(t, healthpb.HealthCheckResponse_NOT_SERVING)
				e.srv.Restart(t)
			},
			reasons: []tokenauthorityv1.InactiveReason{tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY, tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED},
		},
		{
			// The health probe runs once a second: a restart in between is not seen as an outage.
			name: "between two health probes",
			restart: func(t *testing.T, e *faultEnv) {
				e.srv.Stop(t)
				e.srv.Restart(t)
			},
			reasons: []tokenauthorityv1.InactiveReason{tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY, tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED},
		},
		{
			// Redis comes back with the records (tenants, API keys, key sets) but not the sessions,
			// as from a snapshot of the configuration: the keys still verify the old tokens, and the
			// allow-list alone makes them inactive.
			name: "with the records restored but not the sessions",
			restart: func(t *testing.T, e *faultEnv) {
				records := dumpRecords(t, e.srv)
				e.srv.Stop(t)
				e.srv.Restart(t)
				restoreRecords(t, e.srv, records)
			},
			reasons: []tokenauthorityv1.InactiveReason{tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startFaultEnv(t, "")
			before := append([]string{e.live.GetAccessToken()}, e.revoked...)
			tt.restart(t, e)
			e.waitRecovered(t, false)
			// What the service caches (API keys, key sets) outlives the data for a while: the
			// service must still work once every cache has been re-read from the new Redis.
			e.stayRecovered(t, tenant.DefaultCacheTTL+2*time.Second)
			// The key sets are re-read once a second: poll until each old token has its final
			// reason, checking on the way that none is ever active.
			for i, tok := range before {
				var last *tokenauthorityv1.VerifyTokenResponse
				for deadline := time.Now().Add(recoverWithin); ; {
					v, err := e.verify(t, tok)
					if err != nil {
						t.Fatalf("old token %d after the restart: %v", i, err)
					}
					if v.GetActive() {
						t.Fatalf("old token %d is active after Redis lost its session", i)
					}
					last = v
					if slices.Contains(tt.reasons, v.GetReason()) || time.Now().After(deadline) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if !slices.Contains(tt.reasons, last.GetReason()) {
					t.Errorf("old token %d: reason %v, want one of %v", i, last.GetReason(), tt.reasons)
				}
				t.Logf("old token %d: inactive, %v", i, last.GetReason())
			}
			// The API key and the signing keys work again: a full cycle on a new session.
			p, err := e.issue(t, "grace")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.refresh(t, p.GetRefreshToken()); err != nil {
				t.Fatalf("refresh a new session: %v", err)
			}
			t.Logf("calls:%v", e.calls)
		})
	}
}

// dumpRecords returns the serialized records (tenants, API keys, key sets: the keys of the
// "r:" tags, see internal/store/redis/keys.go), by key.
func dumpRecords(t *testing.T, srv *redistest.Server) map[string]string {
	t.Helper()
	c := srv.Client(t)
	ctx := context.Background()
	keys, err := c.Keys(ctx, "ta:{r:*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("list records: %v %v", keys, err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if out[k], err = c.Dump(ctx, k).Result(); err != nil {
			t.Fatalf("dump: %v", err)
		}
	}
	return out
}

func restoreRecords(t *testing.T, srv *redistest.Server, records map[string]string) {
	t.Helper()
	c := srv.Client(t)
	for k, v := range records {
		// REPLACE: the service may have bootstrapped new ones in the meantime.
		if err := c.RestoreReplace(context.Background(), k, 0, v).Err(); err != nil {
			t.Fatalf("restore: %v", err)
		}
	}
}

// TestFaultPoolExhausted runs the service with a pool of two Redis connections, slowed down,
// under many concurrent calls: each call succeeds with the right answer or fails with a status
// that says to retry, and nothing revoked turns active.
func TestFaultPoolExhausted(t *testing.T) {
	e := startFaultEnv(t, "pool_size=2&pool_timeout=200ms")
	e.proxy.SetLatency(100 * time.Millisecond)
	okCodes := []codes.Code{codes.OK, codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded}
	allowed := func(rpc string, err error) {
		if c := status.Code(err); !slices.Contains(okCodes, c) {
			t.Errorf("%s with the pool exhausted: %v, want one of %v", rpc, err, okCodes)
		}
	}
	// Verifies share pipelines (internal/store/redis batcher) and so hold one connection
	// between them; revocations and listings each take their own, which exhausts the pool.
	victim := e.mustIssue(t, "victim")
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				switch w % 3 {
				case 0:
					e.verifyRevoked(t)
					v, err := e.verify(t, e.live.GetAccessToken())
					allowed("VerifyToken", err)
					if err == nil && !v.GetActive() {
						t.Errorf("the live session's token verified inactive (%v)", v.GetReason())
					}
				case 1:
					err := e.call(t, "RevokeToken", func(ctx context.Context) error {
						_, err := e.ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: victim.GetAccessToken()}})
						return err
					})
					allowed("RevokeToken", err)
				case 2:
					err := e.call(t, "ListSessions", func(ctx context.Context) error {
						_, err := e.ts.ListSessions(ctx, &tokenauthorityv1.ListSessionsRequest{Subject: "alice"})
						return err
					})
					allowed("ListSessions", err)
				}
			}
		}()
	}
	// The load must exhaust the pool, or the test proves nothing: calls wait out the pool's
	// timeout, or the store budget (TOKENAUTHORITY_STORE_TIMEOUT) runs out while they wait. It runs
	// until the log shows that and every kind of call has been made a few dozen times, however
	// long that takes on this machine; after a minute the check below reports that it never did.
	exhausted := func() int {
		logs := e.r.logs.String()
		return strings.Count(logs, "connection pool timeout") + strings.Count(logs, "context deadline exceeded")
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if exhausted() > 0 && e.calls.fewest("VerifyToken", "RevokeToken", "ListSessions") >= 30 {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("calls with a pool of 2 and %v each way:%v", 100*time.Millisecond, e.calls)
	if n := exhausted(); n == 0 {
		t.Error("no call waited out the pool or the store budget: the test did not exhaust the pool")
	} else {
		t.Logf("%d calls logged a pool timeout or the end of their store budget", n)
	}
	e.calls.reset()
	e.proxy.SetLatency(0)
	e.waitRecovered(t, true)
}

// TestShutdownUnderLoad shuts the service down while calls run: every call the server accepted
// completes successfully; calls made after the shutdown fail Unavailable at the connection.
func TestShutdownUnderLoad(t *testing.T) {
	e := startFaultEnv(t, "")
	// Latency keeps every call in flight for a while (over 100ms), so that the shutdown surely
	// lands on running calls.
	e.proxy.SetLatency(50 * time.Millisecond)
	type outcome struct {
		rpc        string
		start, end time.Time
		code       codes.Code
		err        error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				o := outcome{start: time.Now()}
				ctx, cancel := context.WithTimeout(e.ctx(), callTimeout)
				switch (w + i) % 3 {
				case 0:
					o.rpc = "VerifyToken"
					v, err := e.ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: e.live.GetAccessToken()})
					if err == nil && !v.GetActive() {
						t.Errorf("the live token verified inactive (%v)", v.GetReason())
					}
					o.err = err
				case 1:
					o.rpc = "VerifyToken"
					v, err := e.ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: e.revoked[i%len(e.revoked)]})
					if err == nil && v.GetActive() {
						t.Errorf("a revoked token verified active")
					}
					o.err = err
				case 2:
					o.rpc = "IssueToken"
					_, o.err = e.ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "henry"})
				}
				cancel()
				o.end, o.code = time.Now(), status.Code(o.err)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if o.err != nil {
					// The server is gone; pause so as not to spin on a closed port.
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	// The calls of the set-up, which the server's log holds too.
	setupCalls, _ := serverCalls(t, e.r.logs.String())
	// counted returns how many calls that started after since have ended.
	counted := func(since time.Time) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			n := 0
			for _, o := range outcomes {
				if o.start.After(since) {
					n++
				}
			}
			return n >= 48 // three a worker
		}
	}
	waitUntil(t, "the load to make calls before the shutdown", time.Minute, counted(time.Time{}))
	shutdownAt := time.Now()
	e.r.stop(t) // cancels Serve's context and waits for it to return
	stopped := time.Now()
	waitUntil(t, "the load to make calls against the stopped server", time.Minute, counted(stopped))
	stop.Store(true)
	wg.Wait()

	var ok, inFlight, failedBefore, failedAfter int
	for _, o := range outcomes {
		switch {
		case o.code == codes.OK:
			ok++
			if o.start.Before(shutdownAt) && o.end.After(shutdownAt) {
				inFlight++
			}
		case o.code != codes.Unavailable:
			t.Errorf("%s ended %v (%v): only Unavailable, at the connection, may fail", o.rpc, o.code, o.err)
		case o.start.Before(shutdownAt):
			failedBefore++
			t.Logf("%s started %v before the shutdown failed: %v", o.rpc, shutdownAt.Sub(o.start), o.err)
		default:
			failedAfter++
		}
	}
	// The server's own record: every call it accepted finished OK (its log has a line per call).
	served, servedOK := serverCalls(t, e.r.logs.String())
	t.Logf("%d calls: %d OK, of which %d were in flight at the shutdown; %d started before the shutdown failed, %d after; "+
		"the server finished %d token calls (%d of the set-up), %d OK; shutdown took %v",
		len(outcomes), ok, inFlight, failedBefore, failedAfter, served, setupCalls, servedOK, stopped.Sub(shutdownAt).Round(time.Millisecond))
	if served != servedOK {
		t.Errorf("the server finished %d token calls but only %d OK: an accepted call failed", served, servedOK)
	}
	if inFlight == 0 {
		t.Error("no call was in flight at the shutdown: the test proved nothing")
	}
	// The calls the client saw succeed are exactly those the server finished: none that the
	// server answered was lost on the way.
	if ok != servedOK-setupCalls {
		t.Errorf("the client saw %d calls succeed, the server finished %d", ok, servedOK-setupCalls)
	}
}

// serverCalls counts the TokenService calls in the server's log, and those that ended OK.
func serverCalls(t *testing.T, logs string) (total, ok int) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"finished call"`) {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("server log line: %v", err)
		}
		if rec["grpc.service"] != tokenauthorityv1.TokenService_ServiceDesc.ServiceName {
			continue
		}
		total++
		if rec["grpc.code"] == codes.OK.String() {
			ok++
		}
	}
	return total, ok
}

// TestFaultReplyLost loses Redis's reply to a write that Redis has applied: the client sees its
// connection drop and sends the command again (go-redis retries a pipeline on EOF), so each write
// must answer its own retry as it would have answered the first attempt.
func TestFaultReplyLost(t *testing.T) {
	// Slow enough that the test sees the write applied while its reply is still held by the
	// proxy; the read timeout is raised above the round trip so that the retry gets its answer.
	const latency = 500 * time.Millisecond
	tests := []struct {
		name string
		// write makes the call whose reply is lost, and returns the checks to run once the
		// latency is gone.
		write func(t *testing.T, e *faultEnv) (then func(), err error)
		// scripts is the number of the script call whose reply is lost (1 when zero): a
		// revocation checks the log's room before it writes.
		scripts int64
	}{
		{
			name: "issue",
			write: func(t *testing.T, e *faultEnv) (func(), error) {
				p, err := e.issue(t, "ivan")
				return func() {
					if v, err := e.verify(t, p.GetAccessToken()); err != nil || !v.GetActive() {
						t.Errorf("the issued token: %v %v, want active", v.GetReason(), err)
					}
				}, err
			},
		},
		{
			name: "refresh",
			write: func(t *testing.T, e *faultEnv) (func(), error) {
				p, err := e.refresh(t, e.live.GetRefreshToken())
				return func() {
					if v, err := e.verify(t, p.GetAccessToken()); err != nil || !v.GetActive() {
						t.Errorf("the refreshed access token: %v %v, want active", v.GetReason(), err)
					}
					if _, err := e.refresh(t, p.GetRefreshToken()); err != nil {
						t.Errorf("refresh with the new refresh token: %v", err)
					}
				}, err
			},
		},
		{
			name: "revoke session",
			write: func(t *testing.T, e *faultEnv) (func(), error) {
				err := e.call(t, "RevokeToken", func(ctx context.Context) error {
					_, err := e.ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: e.live.GetSessionId()}})
					return err
				})
				return func() {
					if v, err := e.verify(t, e.live.GetAccessToken()); err != nil || v.GetActive() {
						t.Errorf("the revoked session's token: active %v, %v", v.GetActive(), err)
					}
				}, err
			},
			scripts: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The store budget is raised with the read timeout, so that go-redis's retry can finish.
			e := startFaultEnv(t, "read_timeout=10s&write_timeout=10s", func(c *config.Config) { c.StoreTimeout = 20 * time.Second })
			e.proxy.SetLatency(latency)
			e.srv.ResetStats(t)
			type result struct {
				then func()
				err  error
			}
			done := make(chan result, 1)
			go func() {
				then, err := tt.write(t, e)
				done <- result{then, err}
			}()
			// Wait for Redis to run the write's script, then cut the connection its reply is on.
			deadline := time.Now().Add(hangBound)
			for {
				stats := e.srv.CommandStats(t)
				if stats["evalsha"]+stats["eval"] >= max(tt.scripts, 1) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the write never reached Redis: %v", stats)
				}
				time.Sleep(5 * time.Millisecond)
			}
			e.proxy.Cut()
			res := <-done
			e.proxy.SetLatency(0)
			if res.err != nil {
				t.Fatalf("%s whose first reply was lost: %v, want success", tt.name, res.err)
			}
			res.then()
			e.assertRevokedInactive(t)
			t.Logf("calls:%v", e.calls)
		})
	}
}
