package app

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

const (
	// sentinelVerifiers is the number of goroutines that keep verifying during the failover.
	sentinelVerifiers = 4
	// sentinelCallTimeout is each call's own deadline, so that a hung call fails the test instead
	// of hanging it. Far beyond the store's timeouts: the machine may be loaded.
	sentinelCallTimeout = 30 * time.Second
	// sentinelRecoverWithin bounds the wait for the service to work again after the master's death.
	sentinelRecoverWithin = 90 * time.Second
)

// replica is one running replica of the service and its client.
type replica struct {
	r   *running
	ts  tokenauthorityv1.TokenServiceClient
	key string
}

func (p replica) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(withKey(p.key), sentinelCallTimeout)
}

func (p replica) verify(tok string) (*tokenauthorityv1.VerifyTokenResponse, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	return p.ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: tok})
}

func (p replica) issue(subject string) (*tokenauthorityv1.IssueTokenResponse, error) {
	ctx, cancel := p.ctx()
	defer cancel()
	return p.ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: subject})
}

// failoverTally counts the verify calls of the load, by phase.
type failoverTally struct {
	mu sync.Mutex
	// phase: 0 before the master is killed, 1 until the service has recovered, 2 after.
	phase      int
	calls      [3]int
	slowest    [3]time.Duration
	byCode     [3]map[codes.Code]int
	falseState []string // revoked tokens answered active, live tokens answered inactive
}

func (f *failoverTally) add(code codes.Code, took time.Duration, bad string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.slowest[f.phase] = max(f.slowest[f.phase], took)
	if f.byCode[f.phase] == nil {
		f.byCode[f.phase] = make(map[codes.Code]int)
	}
	f.calls[f.phase]++
	f.byCode[f.phase][code]++
	if bad != "" {
		f.falseState = append(f.falseState, bad)
	}
}

// reached returns a condition that holds once phase p has counted n calls.
func (f *failoverTally) reached(p, n int) func() bool {
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.calls[p] >= n
	}
}

func (f *failoverTally) setPhase(p int) {
	f.mu.Lock()
	f.phase = p
	f.mu.Unlock()
}

// TestSentinelFailoverUnderLoad runs two replicas of the service on one Sentinel-managed Redis (a
// master and a replica). Tokens are issued and revoked through both replicas, each seeing the
// other's writes; once the revocations are on the Redis replica, goroutines keep verifying live and
// revoked tokens while the master is killed and the Sentinels fail over. No revoked token may ever
// verify active, no live one inactive; every error must be Unavailable (never Internal, never a
// hang); and the service must recover by itself: issue and verify succeed again on both replicas.
//
// It runs twice: with go-redis's default retries, which carry most calls through a short failover
// (they wait instead of failing), and with retries off, so that calls during the failover fail at
// once and the test sees the errors they turn into.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	for _, tt := range []struct {
		name  string
		query string // appended to the Sentinel URL
	}{
		{"DefaultRetries", ""},
		{"NoRetries", "&max_retries=-1&dialer_retries=1"},
	} {
		t.Run(tt.name, func(t *testing.T) { testSentinelFailoverUnderLoad(t, tt.query) })
	}
}

func testSentinelFailoverUnderLoad(t *testing.T, query string) {
	sentinel := redistest.StartSentinel(t)
	cfg := testConfig(t, sentinel.URL()+query)
	var replicas []replica
	for range 2 {
		r := start(t, cfg)
		replicas = append(replicas, replica{r: r, ts: tokenauthorityv1.NewTokenServiceClient(r.conn), key: r.devKey})
	}
	a, b := replicas[0], replicas[1]
	ctxB := withKey(b.key)

	// Live tokens, issued on either replica, verify on the other.
	var live []string
	for i := range 4 {
		from, to := replicas[i%2], replicas[(i+1)%2]
		p := must(from.issue(fmt.Sprintf("live-%d", i)))
		if v := must(to.verify(p.GetAccessToken())); !v.GetActive() {
			t.Fatalf("token issued on one replica, on the other: %v", v.GetReason())
		}
		live = append(live, p.GetAccessToken())
	}
	// Revoked tokens, each revoked on the replica that did not issue it, and inactive on both.
	revoke := []struct {
		subject string
		reason  tokenauthorityv1.InactiveReason
		revoke  func(p *tokenauthorityv1.IssueTokenResponse) error
	}{
		{"revoked-token", tokenauthorityv1.InactiveReason_INACTIVE_REASON_REVOKED, func(p *tokenauthorityv1.IssueTokenResponse) error {
			_, err := b.ts.RevokeToken(ctxB, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: p.GetAccessToken()}})
			return err
		}},
		{"ended-session", tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED, func(p *tokenauthorityv1.IssueTokenResponse) error {
			_, err := b.ts.RevokeToken(ctxB, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: p.GetSessionId()}})
			return err
		}},
		{"revoked-refresh-token", tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED, func(p *tokenauthorityv1.IssueTokenResponse) error {
			_, err := b.ts.RevokeToken(ctxB, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: p.GetRefreshToken()}})
			return err
		}},
		{"cut-off-subject", tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF, func(*tokenauthorityv1.IssueTokenResponse) error {
			leaveMillisecond()
			_, err := b.ts.RevokeSessions(ctxB, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "cut-off-subject"}})
			return err
		}},
	}
	var revoked []string
	for _, rv := range revoke {
		p := must(a.issue(rv.subject))
		if err := rv.revoke(p); err != nil {
			t.Fatalf("revoke %s: %v", rv.subject, err)
		}
		for _, r := range replicas {
			if v := must(r.verify(p.GetAccessToken())); v.GetActive() || v.GetReason() != rv.reason {
				t.Fatalf("%s: %v, want inactive with %v", rv.subject, v, rv.reason)
			}
		}
		revoked = append(revoked, p.GetAccessToken())
	}
	// What follows rests on this: replication is asynchronous, and a revocation that had not
	// reached the replica would be lost with the master (docs/deployment-modes.md).
	sentinel.WaitReplicated(t)

	tally := &failoverTally{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range sentinelVerifiers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !stop.Load(); i++ {
				r := replicas[i%2]
				tok, isRevoked := live[i%len(live)], false
				if i%3 == 0 {
					tok, isRevoked = revoked[i%len(revoked)], true
				}
				began := time.Now()
				v, err := r.verify(tok)
				took := time.Since(began)
				var bad string
				switch {
				case err == nil && isRevoked && v.GetActive():
					bad = "a revoked token verified active"
				case err == nil && !isRevoked && !v.GetActive():
					bad = "a live token verified inactive: " + v.GetReason().String()
				}
				tally.add(status.Code(err), took, bad)
			}
		}()
	}
	// Load before, during and after the failover, counted in calls: a few for each verifier
	// before the kill and after the recovery. The failover itself takes the Sentinels' real time;
	// nothing about timing is asserted.
	waitUntil(t, "the load to verify before the kill", time.Minute, tally.reached(0, 5*sentinelVerifiers))
	tally.setPhase(1)
	killed := time.Now()
	old := sentinel.KillMaster(t)

	// Recovered: each replica issues a token that the other verifies. The probe runs from the
	// master's death, alongside the wait for the Sentinels, so that it measures the service.
	probe := make(chan failoverProbe, 1)
	go func() { probe <- probeRecovery(replicas, killed) }()
	promoted := sentinel.WaitFailover(t, old)
	failedOver := time.Since(killed)
	rec := <-probe
	for _, err := range rec.wrong {
		t.Errorf("issue or verify during the failover: %v, want Unavailable", err)
	}
	if rec.err != nil {
		t.Fatalf("the service did not recover within %v of the master's death: %v", sentinelRecoverWithin, rec.err)
	}
	tally.setPhase(2)
	waitUntil(t, "the load to verify after the recovery", time.Minute, tally.reached(2, 5*sentinelVerifiers))
	stop.Store(true)
	wg.Wait()
	for _, p := range replicas {
		p.r.waitServing(t, healthpb.HealthCheckResponse_SERVING)
	}

	tally.mu.Lock()
	defer tally.mu.Unlock()
	for _, bad := range tally.falseState {
		t.Errorf("during the load: %s", bad)
	}
	for phase, counts := range tally.byCode {
		for code, n := range counts {
			if code != codes.OK && code != codes.Unavailable {
				t.Errorf("%d verify calls answered %v in phase %d, want only OK or Unavailable", n, code, phase)
			}
		}
	}
	// After the failover, every token is as it was: revocations replicated before the master died
	// hold, and live sessions live.
	for _, r := range replicas {
		for _, tok := range revoked {
			if v := must(r.verify(tok)); v.GetActive() {
				t.Fatal("a token revoked before the failover is active after it")
			}
		}
		for _, tok := range live {
			if v := must(r.verify(tok)); !v.GetActive() {
				t.Fatalf("a live token is inactive after the failover: %v", v.GetReason())
			}
		}
	}
	t.Logf("master %s killed; sentinels promoted %s after %v; service recovered (issue+verify on both replicas) after %v, %d attempts",
		old, promoted, failedOver.Round(time.Millisecond), rec.after.Round(time.Millisecond), rec.attempts)
	for phase, name := range []string{"before the kill", "kill to recovery", "after recovery"} {
		t.Logf("verify calls %s: %d %v, slowest %v", name, tally.calls[phase], tally.byCode[phase], tally.slowest[phase].Round(time.Millisecond))
	}
}

// failoverProbe is the outcome of probeRecovery.
type failoverProbe struct {
	after    time.Duration // from the master's death to the first success
	attempts int
	wrong    []error // failures other than Unavailable
	err      error   // the last failure, when the service did not recover in time
}

// probeRecovery tries, until it succeeds or sentinelRecoverWithin passes, to issue a token on each
// replica and verify it on the other.
func probeRecovery(replicas []replica, since time.Time) failoverProbe {
	var res failoverProbe
	deadline := since.Add(sentinelRecoverWithin)
	for {
		res.attempts++
		err := func() error {
			for i, from := range replicas {
				p, err := from.issue("after-failover")
				if err != nil {
					return err
				}
				v, err := replicas[(i+1)%2].verify(p.GetAccessToken())
				if err != nil {
					return err
				}
				if !v.GetActive() {
					return fmt.Errorf("new token inactive: %v", v.GetReason())
				}
			}
			return nil
		}()
		if err == nil {
			res.after = time.Since(since)
			return res
		}
		if status.Code(err) != codes.Unavailable {
			res.wrong = append(res.wrong, err)
		}
		if time.Now().After(deadline) {
			res.err = err
			return res
		}
		time.Sleep(50 * time.Millisecond)
	}
}
