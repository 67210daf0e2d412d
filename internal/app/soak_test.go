package app

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// The soak's mix, in percent of requests. Every operation has a known right answer, so that any
// other answer counts as an error.
const (
	soakVerify  = 60 // active for a live session's access token, inactive for an ended one's
	soakIssue   = 20 // a new session: succeeds
	soakRefresh = 15 // a live session's refresh token: succeeds; an ended one's: Unauthenticated
	soakRevoke  = 5  // ends a session: succeeds, also for one that has already ended
)

const (
	// soakSlots is the number of sessions the soak works on; an issue replaces a slot's session.
	soakSlots = 1024
	// soakConcurrency bounds the requests in flight.
	soakConcurrency = 64
	// soakMaxHeapGrowth bounds the growth of the heap in use from the end of the warm-up to the
	// end of the run.
	soakMaxHeapGrowth = 0.10
)

var soakKinds = [...]string{"verify", "issue", "refresh", "revoke"}

// TestSoak drives the service on a real redis-server with a fixed-rate mix of verify, issue,
// refresh and revoke for a set time, and reports the requests, errors, latency and memory. It
// fails on any error and on heap growth beyond soakMaxHeapGrowth after a warm-up of a tenth of
// the time. Run it with `make soak` (TOKENAUTHORITY_SOAK=1; SOAK_TIME and SOAK_RATE).
//
// The load is open-loop: requests are scheduled at fixed times whatever the answers, at most
// soakConcurrency in flight; latency runs from the scheduled time, so a service that falls
// behind shows it in the latency instead of slowing the load down.
func TestSoak(t *testing.T) {
	if os.Getenv("TOKENAUTHORITY_SOAK") == "" {
		t.Skip("set TOKENAUTHORITY_SOAK=1 (make soak) to run the soak")
	}
	dur := 60 * time.Second
	if v := os.Getenv("SOAK_TIME"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("SOAK_TIME=%q: want a positive duration", v)
		}
		dur = d
	}
	rate := 500
	if v := os.Getenv("SOAK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SOAK_RATE=%q: want a positive number of requests per second", v)
		}
		rate = n
	}

	srv := redistest.Start(t)
	r := startAsInProduction(t, testConfig(t, srv.URL()))
	s := &soak{ts: tokenauthorityv1.NewTokenServiceClient(r.conn), ctx: withKey(r.devKey)}
	for i := range s.slots {
		if err := s.fill(s.ctx, i); err != nil {
			t.Fatalf("issue the initial sessions: %v", err)
		}
	}
	fillVerifyCache(t, r)
	redis := srv.Client(t)
	redisBefore := usedMemory(t, redis)
	heapStart := heapInUse()
	start := time.Now()

	// The heap is sampled after each tenth of the time: the first sample ends the warm-up, the
	// last is taken under load just before the last request, and the series shows the trend.
	warmUp := dur / 10
	samples := make([]uint64, 0, 10)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for k := 1; k < 10; k++ {
			time.Sleep(time.Until(start.Add(time.Duration(k) * warmUp)))
			samples = append(samples, heapInUse())
		}
	}()
	sent, late := s.run(start, rate, dur, func() { <-sampled; samples = append(samples, heapInUse()) })
	heapAfter := heapInUse()
	redisAfter := usedMemory(t, redis)
	heapWarm, heapEnd := samples[0], samples[len(samples)-1]
	series := make([]string, len(samples))
	for i, h := range samples {
		series[i] = mib(h)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nsoak: %v at %d req/s (open loop, at most %d in flight): %d requests sent, %.0f req/s; %d started over 10ms late\n",
		dur, rate, soakConcurrency, sent, float64(sent)/dur.Seconds(), late)
	fmt.Fprintf(&b, "%-8s %9s %7s %10s %10s %10s  %s\n", "kind", "requests", "errors", "p50", "p99", "max", "answers")
	var errs int64
	for k := range soakKinds {
		st := &s.stats[k]
		st.mu.Lock()
		fmt.Fprintf(&b, "%-8s %9d %7d %10v %10v %10v  %s\n", soakKinds[k], st.n, st.errors,
			st.lat.quantile(0.50), st.lat.quantile(0.99), st.lat.max.Round(time.Microsecond), st.answers())
		errs += st.errors
		st.mu.Unlock()
	}
	fmt.Fprintf(&b, "heap in use after GC: %s at the start, %s after the warm-up (%v), %s at the end under load (%+.1f%%), %s after the load\n",
		mib(heapStart), mib(heapWarm), warmUp, mib(heapEnd), growth(heapWarm, heapEnd)*100, mib(heapAfter))
	fmt.Fprintf(&b, "heap in use after each tenth of the time: %s\n", strings.Join(series, ", "))
	fmt.Fprintf(&b, "redis used_memory: %s before, %s after (%+.1f%%; live sessions expire with their refresh TTL)",
		mib(uint64(redisBefore)), mib(uint64(redisAfter)), growth(uint64(redisBefore), uint64(redisAfter))*100)
	t.Log(b.String())

	if errs > 0 {
		for k := range soakKinds {
			for _, e := range s.stats[k].firstErrors {
				t.Errorf("%s: %s", soakKinds[k], e)
			}
		}
		t.Errorf("%d requests had a wrong answer or failed, want 0", errs)
	}
	if g := growth(heapWarm, heapEnd); g > soakMaxHeapGrowth {
		t.Errorf("the heap grew by %.1f%% after the warm-up, more than %.0f%%", g*100, soakMaxHeapGrowth*100)
	}
}

// soak is the load generator's state: the sessions it works on and what it measured.
type soak struct {
	ts    tokenauthorityv1.TokenServiceClient
	ctx   context.Context
	slots [soakSlots]soakSlot
	stats [len(soakKinds)]soakStats
}

// soakSlot is one session the soak knows the state of. Its lock is held for the whole of an
// operation on it, so that the answer each operation must get is known.
type soakSlot struct {
	mu      sync.Mutex
	subject string
	access  string
	refresh string
	ended   bool
}

type soakStats struct {
	mu          sync.Mutex
	n, errors   int64
	byAnswer    map[string]int64
	firstErrors []string
	lat         histogram
}

func (st *soakStats) answers() string {
	var parts []string
	for a, n := range st.byAnswer {
		parts = append(parts, fmt.Sprintf("%s=%d", a, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// record counts one request of a kind: its latency, its answer, and whether it was wrong.
func (s *soak) record(kind int, d time.Duration, answer string, wrong error) {
	st := &s.stats[kind]
	st.mu.Lock()
	defer st.mu.Unlock()
	st.n++
	st.lat.add(d)
	if st.byAnswer == nil {
		st.byAnswer = map[string]int64{}
	}
	st.byAnswer[answer]++
	if wrong != nil {
		st.errors++
		if len(st.firstErrors) < 5 {
			st.firstErrors = append(st.firstErrors, wrong.Error())
		}
	}
}

// run sends requests at rate for dur from start and waits for the last to finish; atEnd runs
// just before the last request is sent, under load. It returns the requests sent and how many
// started more than 10ms after their scheduled time (the concurrency bound was reached, or the
// machine could not keep up).
func (s *soak) run(start time.Time, rate int, dur time.Duration, atEnd func()) (sent, late int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	sem := make(chan struct{}, soakConcurrency)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	total := int64(dur / interval)
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if i == total-1 {
			atEnd()
		}
		time.Sleep(time.Until(at))
		sem <- struct{}{}
		if time.Since(at) > 10*time.Millisecond {
			late++
		}
		p := rng.IntN(100)
		slot := rng.IntN(soakSlots)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.one(p, slot, at)
		}()
		sent++
	}
	wg.Wait()
	return sent, late
}

// one runs the request that p (0-99) picks from the mix on slot i, timed from at.
func (s *soak) one(p, i int, at time.Time) {
	sl := &s.slots[i]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	switch {
	case p < soakVerify:
		v, err := s.ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: sl.access})
		d := time.Since(at)
		switch {
		case err != nil:
			s.record(0, d, status.Code(err).String(), fmt.Errorf("verify: %w", err))
		case sl.ended && v.GetActive():
			s.record(0, d, "active", fmt.Errorf("verify: a token of an ended session is active"))
		case sl.ended && v.GetReason() != tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED:
			s.record(0, d, v.GetReason().String(), fmt.Errorf("verify: a token of an ended session is inactive for %v", v.GetReason()))
		case sl.ended:
			s.record(0, d, "inactive (ended)", nil)
		case !v.GetActive():
			s.record(0, d, v.GetReason().String(), fmt.Errorf("verify: a live session's token is inactive: %v", v.GetReason()))
		case v.GetClaims().GetSubject() != sl.subject:
			s.record(0, d, "wrong subject", fmt.Errorf("verify: subject %q, want %q", v.GetClaims().GetSubject(), sl.subject))
		default:
			s.record(0, d, "active", nil)
		}
	case p < soakVerify+soakIssue:
		err := s.fillLocked(ctx, sl, i)
		answer := status.Code(err).String()
		if err != nil {
			err = fmt.Errorf("issue: %w", err)
		}
		s.record(1, time.Since(at), answer, err)
	case p < soakVerify+soakIssue+soakRefresh:
		n, err := s.ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: sl.refresh})
		d := time.Since(at)
		code := status.Code(err)
		switch {
		case sl.ended && code == codes.Unauthenticated:
			s.record(2, d, "Unauthenticated (ended)", nil)
		case sl.ended:
			s.record(2, d, code.String(), fmt.Errorf("refresh of an ended session: %w, want Unauthenticated", err))
		case err != nil:
			s.record(2, d, code.String(), fmt.Errorf("refresh: %w", err))
		default:
			sl.access, sl.refresh = n.GetAccessToken(), n.GetRefreshToken()
			s.record(2, d, "OK", nil)
		}
	default:
		// A refresh token revokes its session (RFC 7009).
		_, err := s.ts.RevokeToken(ctx, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: sl.refresh}})
		d := time.Since(at)
		if err != nil {
			s.record(3, d, status.Code(err).String(), fmt.Errorf("revoke: %w", err))
			return
		}
		answer := "OK"
		if sl.ended {
			answer = "OK (already ended)"
		}
		sl.ended = true
		s.record(3, d, answer, nil)
	}
}

// fill gives slot i a new session.
func (s *soak) fill(ctx context.Context, i int) error {
	sl := &s.slots[i]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return s.fillLocked(ctx, sl, i)
}

func (s *soak) fillLocked(ctx context.Context, sl *soakSlot, i int) error {
	subject := "soak-" + strconv.Itoa(i)
	p, err := s.ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: subject, Audience: []string{"orders"}, Scopes: []string{"read"}})
	if err != nil {
		return err
	}
	sl.subject, sl.access, sl.refresh, sl.ended = subject, p.GetAccessToken(), p.GetRefreshToken(), false
	return nil
}

// heapInUse returns the heap in use after a full collection.
// soakCacheFill exceeds the verify cache's bound (16384 entries, internal/token): the cache holds
// the last tokens verified, about 1 KiB each, and grows until full.
const soakCacheFill = 20_000

// fillVerifyCache issues and verifies soakCacheFill tokens as fast as the service goes, so that the
// warm-up ends in the steady state that the heap rule is about rather than while the bounded cache
// is still filling. The tokens have the soak's shape (issuer, audience, scope, subject length), so
// that the soak's own tokens replace them without changing the cache's size; they come from a
// tenant without rate limits, as the fill goes faster than the default limits allow.
func fillVerifyCache(t *testing.T, r *running) {
	t.Helper()
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	dev := must(ts.IssueToken(withKey(r.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "soak-0"}))
	// "fil" as long as "dev", the issuer of dev: the cache keys and claims have the soak's size.
	ctx := withKey(unlimitedKey(t, r, "fil", claimOf(t, dev.GetAccessToken(), "iss")))
	began := time.Now()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range soakCacheFill {
		g.Go(func() error {
			p, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "soak-" + strconv.Itoa(i%soakSlots),
				Audience: []string{"orders"}, Scopes: []string{"read"}})
			if err != nil {
				return err
			}
			_, err = ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: p.GetAccessToken()})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("fill the verify cache: %v", err)
	}
	t.Logf("filled the verify cache with %d tokens in %v", soakCacheFill, time.Since(began).Round(time.Millisecond))
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func growth(from, to uint64) float64 {
	if from == 0 {
		return 0
	}
	return float64(int64(to)-int64(from)) / float64(from)
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// histogram records durations in buckets 1% wide, from 1µs up: constant memory, whatever the
// number of samples, so that it does not add to the heap growth the soak measures.
type histogram struct {
	counts [histBuckets]int64
	n      int64
	max    time.Duration
}

const (
	histBuckets = 2048 // 1µs * 1.01^2048 is beyond 7 minutes
	histGrowth  = 1.01
)

func (h *histogram) add(d time.Duration) {
	i := 0
	if us := float64(d) / float64(time.Microsecond); us > 1 {
		i = min(int(math.Log(us)/math.Log(histGrowth))+1, histBuckets-1)
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the upper bound of the bucket holding quantile q (within 1%).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			upper := time.Duration(math.Pow(histGrowth, float64(i)) * float64(time.Microsecond))
			return min(upper, h.max).Round(time.Microsecond)
		}
	}
	return h.max
}
