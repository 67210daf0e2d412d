package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

// TestPerformanceRatios measures, in one run on one server backed by a real redis-server, the
// throughput of VerifyToken, IssueToken and RefreshToken as fractions of a no-op RPC
// (grpc.health.v1.Health/Check), the CPU each call costs this process and redis-server, the Redis
// commands each call costs, and Redis memory per live session. Then it measures the same server on
// the in-memory store, which does no I/O: the ratios any store could reach on this machine, and
// what one Ed25519 signature costs next to a no-op call. It prints figures and asserts only the
// command counts, since timings on shared machines are noise: run it with `make bench`
// (TOKENAUTHORITY_BENCH=1).
func TestPerformanceRatios(t *testing.T) {
	if os.Getenv("TOKENAUTHORITY_BENCH") == "" {
		t.Skip("set TOKENAUTHORITY_BENCH=1 (make bench) to measure")
	}
	dur := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BENCH_TIME")); err == nil {
		dur = d
	}
	srv := redistest.Start(t)
	r := startAsInProduction(t, testConfig(t, srv.URL()))
	// The load is far above the default per-key rate limits: measure on a tenant without them.
	r.devKey = unlimitedKey(t, r, "bench", "https://bench.example")
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	ctx := withKey(r.devKey)

	issued := benchPair(t, r)

	// Commands per call, from INFO commandstats.
	perCall := func(name string, call func() error) map[string]int64 {
		srv.ResetStats(t)
		const n = 100
		for range n {
			if err := call(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		stats := srv.CommandStats(t)
		out := map[string]int64{}
		for cmd, c := range stats {
			if cmd == "config" || cmd == "info" || cmd == "ping" {
				continue
			}
			out[cmd] = c / n
		}
		return out
	}
	verifyReq := &tokenauthorityv1.VerifyTokenRequest{Token: issued.GetAccessToken()}
	verifyCmds := perCall("verify", func() error { _, err := ts.VerifyToken(ctx, verifyReq); return err })
	issueCmds := perCall("issue", func() error {
		_, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "bench"})
		return err
	})
	rt := issued.GetRefreshToken()
	refreshCmds := perCall("refresh", func() error {
		p, err := ts.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: rt})
		if err == nil {
			rt = p.GetRefreshToken()
		}
		return err
	})
	t.Logf("redis commands per call: verify %v, issue %v, refresh %v", verifyCmds, issueCmds, refreshCmds)
	// Redis counts the commands a script runs as well as the script. Every call is one round trip
	// (internal/store/redis TestRoundTrips checks the pipelines on the client side).
	for name, cmds := range map[string]map[string]int64{"issue": issueCmds, "refresh": refreshCmds} {
		if cmds["evalsha"] != 1 {
			t.Errorf("%s: %v, want exactly one script call", name, cmds)
		}
	}
	if verifyCmds["hmget"] != 1 || verifyCmds["mget"] != 1 || verifyCmds["get"] != 1 || verifyCmds["evalsha"] != 0 {
		t.Errorf("verify: %v, want hmget 1, mget 1, get 1", verifyCmds)
	}
	// An exchange reads what a verification reads, and writes nothing.
	ex := newBenchExchange(t, r)
	exchangeCmds := perCall("exchange", ex.call(r.conn))
	t.Logf("redis commands per exchange: %v", exchangeCmds)
	if !maps.Equal(exchangeCmds, verifyCmds) {
		t.Errorf("exchange: %v, want what verify costs: %v", exchangeCmds, verifyCmds)
	}

	rows := throughput(t, r, dur, func() float64 { return srv.CPUSeconds(t) })
	t.Log("on redis-server (cpu/call: this process, load generator included; redis/call: redis-server):\n" + rows.String())
	logExchangeRatio(t, rows)
	ghz := os.Getenv("GHZ")
	if ghz != "" {
		runGHZ(t, ghz, labelRedis, r, dur)
	}
	if os.Getenv("BENCH_SKIP_CEILING") == "" {
		// The same server on the in-memory store: a store that costs no I/O at all.
		mem := startAsInProduction(t, testConfig(t, ""))
		mem.devKey = unlimitedKey(t, mem, "bench", "https://bench.example")
		memRows := throughput(t, mem, dur, nil)
		t.Log("the same server on the in-memory store (no store I/O):\n" + memRows.String())
		logExchangeRatio(t, memRows)
		if ghz != "" {
			runGHZ(t, ghz, "on the in-memory store", mem, dur)
		}
		if len(rows) > 0 && len(memRows) > 0 {
			sign := signingCost(t, issued.GetAccessToken())
			t.Logf("one Ed25519 signature of the issued access token: %s of CPU, %.2f of a no-op call's %s (on Redis) and %.2f of its %s (in-memory)",
				sign.Round(100*time.Nanosecond), sign.Seconds()/rows[0].procCPU.Seconds(), rows[0].procCPU.Round(100*time.Nanosecond),
				sign.Seconds()/memRows[0].procCPU.Seconds(), memRows[0].procCPU.Round(100*time.Nanosecond))
		}
	}

	// Redis memory per live session, over 100k sessions written through the store.
	if os.Getenv("BENCH_SKIP_MEMORY") == "" {
		sessionMemory(t, srv, r)
	}
}

// benchRow is one RPC's figures in a throughput run.
type benchRow struct {
	name string
	rps  float64
	// ratio is the median over the rounds of the throughput as a fraction of the first RPC's in
	// the same round; minRatio and maxRatio are the extremes.
	ratio, minRatio, maxRatio float64
	p50, p99                  time.Duration
	// CPU per call, of this process (load generator and server) and of redis-server.
	procCPU, redisCPU time.Duration
}

type benchRows []benchRow

// String formats the rows as a table.
func (rows benchRows) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %10s %8s %12s %10s %10s %12s %12s\n", "rpc", "req/s", "ratio", "(rounds)", "p50", "p99", "cpu/call", "redis/call")
	for _, rw := range rows {
		fmt.Fprintf(&b, "%-22s %10.0f %8.2f %12s %10s %10s %12s %12s\n", rw.name, rw.rps, rw.ratio,
			fmt.Sprintf("%.2f-%.2f", rw.minRatio, rw.maxRatio), rw.p50.Round(time.Microsecond), rw.p99.Round(time.Microsecond),
			rw.procCPU.Round(100*time.Nanosecond), rw.redisCPU.Round(100*time.Nanosecond))
	}
	return b.String()
}

// throughput drives the no-op RPC, VerifyToken, IssueToken and RefreshToken on r for dur each, in
// turns of dur/BENCH_ROUNDS (5 by default), with the same in-process load generator (32 workers on
// 4 connections), and returns their figures, the no-op first. redisCPU, when not nil, reads
// redis-server's CPU seconds. BENCH_ONLY=<name> runs only the RPCs whose name contains it.
func throughput(t *testing.T, r *running, dur time.Duration, redisCPU func() float64) benchRows {
	t.Helper()
	ctx := withKey(r.devKey)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	verifyReq := &tokenauthorityv1.VerifyTokenRequest{Token: benchPair(t, r).GetAccessToken()}
	conns := make([]*grpc.ClientConn, 4)
	for i := range conns {
		c, err := grpc.NewClient(r.conn.Target(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	const workers = 32
	measure := func(call func(cc *grpc.ClientConn, worker int) error, d time.Duration) []time.Duration {
		var errs atomic.Int64
		var mu sync.Mutex
		var lat []time.Duration
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cc := conns[w%len(conns)]
				local := make([]time.Duration, 0, 4096)
				for time.Now().Before(deadline) {
					t0 := time.Now()
					if err := call(cc, w); err != nil {
						errs.Add(1)
						continue
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if errs.Load() > 0 {
			t.Errorf("%d calls failed", errs.Load())
		}
		return lat
	}
	noop := func(cc *grpc.ClientConn, _ int) error {
		_, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err
	}
	verify := func(cc *grpc.ClientConn, _ int) error {
		v, err := tokenauthorityv1.NewTokenServiceClient(cc).VerifyToken(ctx, verifyReq)
		if err == nil && !v.GetActive() {
			return fmt.Errorf("inactive: %v", v.GetReason())
		}
		return err
	}
	issue := func(cc *grpc.ClientConn, _ int) error {
		_, err := tokenauthorityv1.NewTokenServiceClient(cc).IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "bench", Scopes: []string{"read"}})
		return err
	}
	// Each refresh worker walks its own session's chain of refresh tokens.
	chains := make([]string, workers)
	for i := range chains {
		p, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "bench-" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		chains[i] = p.GetRefreshToken()
	}
	refresh := func(cc *grpc.ClientConn, w int) error {
		p, err := tokenauthorityv1.NewTokenServiceClient(cc).RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: chains[w]})
		if err == nil {
			chains[w] = p.GetRefreshToken()
		}
		return err
	}
	if redisCPU == nil {
		redisCPU = func() float64 { return 0 }
	}
	type workload struct {
		name string
		call func(*grpc.ClientConn, int) error
	}
	exchange := newBenchExchange(t, r)
	workloads := []workload{{"Health/Check (no-op)", noop}, {"VerifyToken", verify}, {"IssueToken", issue}, {"RefreshToken", refresh},
		{"ExchangeToken", func(cc *grpc.ClientConn, _ int) error { return exchange.call(cc)() }}}
	if only := os.Getenv("BENCH_ONLY"); only != "" {
		workloads = slices.DeleteFunc(workloads, func(wl workload) bool { return !strings.Contains(wl.name, only) })
	}
	// The machine's speed drifts during a run: the RPCs take turns in short rounds, and each
	// ratio is the median of the rounds' ratios, each to the same round's first RPC.
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	slice := dur / time.Duration(rounds)
	lats := make([][]time.Duration, len(workloads))
	ratios := make([][]float64, len(workloads))
	procCPU := make([]float64, len(workloads))
	storeCPU := make([]float64, len(workloads))
	for range rounds {
		var first float64
		for i, wl := range workloads {
			proc0, redis0 := processCPU(t), redisCPU()
			lat := measure(wl.call, slice)
			procCPU[i] += processCPU(t) - proc0
			storeCPU[i] += redisCPU() - redis0
			lats[i] = append(lats[i], lat...)
			rps := float64(len(lat)) / slice.Seconds()
			if i == 0 {
				first = max(rps, 1)
			}
			ratios[i] = append(ratios[i], rps/first)
		}
	}
	rows := make(benchRows, len(workloads))
	for i, wl := range workloads {
		lat := lats[i]
		calls := float64(max(len(lat), 1))
		perCall := func(seconds float64) time.Duration { return time.Duration(seconds / calls * float64(time.Second)) }
		slices.Sort(lat)
		slices.Sort(ratios[i])
		rows[i] = benchRow{name: wl.name, rps: float64(len(lat)) / (slice * time.Duration(rounds)).Seconds(),
			ratio: ratios[i][len(ratios[i])/2], minRatio: ratios[i][0], maxRatio: ratios[i][len(ratios[i])-1],
			procCPU: perCall(procCPU[i]), redisCPU: perCall(storeCPU[i])}
		if len(lat) > 0 {
			rows[i].p50, rows[i].p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
	}
	return rows
}

// benchExchange is what the ExchangeToken phases present: the key of service "bench-in", which
// exchanges tokens meant for it for tokens for "bench-out", and a user's token for "bench-in".
type benchExchange struct {
	key, subjectToken string
}

func newBenchExchange(t *testing.T, r *running) *benchExchange {
	t.Helper()
	k := must(tokenauthorityv1.NewAdminServiceClient(r.conn).CreateApiKey(withKey(r.devKey), &tokenauthorityv1.CreateApiKeyRequest{
		Name: "bench-in", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_EXCHANGE},
		ExchangePolicy: &tokenauthorityv1.ExchangePolicy{AcceptAudience: "bench-in", TargetAudiences: []string{"bench-out"}}}))
	p := must(tokenauthorityv1.NewTokenServiceClient(r.conn).IssueToken(withKey(r.devKey), &tokenauthorityv1.IssueTokenRequest{
		Subject: "bench", Audience: []string{"bench-in"}, Scopes: []string{"read", "write"}}))
	return &benchExchange{key: k.GetSecret(), subjectToken: p.GetAccessToken()}
}

// call returns one exchange over cc.
func (b *benchExchange) call(cc *grpc.ClientConn) func() error {
	ctx := withKey(b.key)
	req := &tokenauthorityv1.ExchangeTokenRequest{SubjectToken: b.subjectToken, Audience: []string{"bench-out"}, Scopes: []string{"read"}}
	return func() error {
		_, err := tokenauthorityv1.NewTokenServiceClient(cc).ExchangeToken(ctx, req)
		return err
	}
}

// logExchangeRatio logs ExchangeToken's throughput as a fraction of IssueToken's.
func logExchangeRatio(t *testing.T, rows benchRows) {
	t.Helper()
	var issue, exchange benchRow
	for _, rw := range rows {
		switch rw.name {
		case "IssueToken":
			issue = rw
		case "ExchangeToken":
			exchange = rw
		}
	}
	if issue.rps > 0 && exchange.rps > 0 {
		t.Logf("ExchangeToken / IssueToken throughput: %.2f (medians of the rounds' ratios to the no-op: %.2f / %.2f)",
			exchange.rps/issue.rps, exchange.ratio, issue.ratio)
	}
}

// benchPair opens the session whose access token the Verify phases present.
func benchPair(t *testing.T, r *running) *tokenauthorityv1.IssueTokenResponse {
	t.Helper()
	return must(tokenauthorityv1.NewTokenServiceClient(r.conn).IssueToken(withKey(r.devKey),
		&tokenauthorityv1.IssueTokenRequest{Subject: "bench", Audience: []string{"orders"}, Scopes: []string{"read"}}))
}

// signingCost returns the CPU time of one Ed25519 signature over the signing input of token (its
// header and payload), with a fresh key: what every IssueToken and RefreshToken pays at least once.
func signingCost(t *testing.T, token string) time.Duration {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	input := []byte(token[:strings.LastIndexByte(token, '.')])
	res := testing.Benchmark(func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(key, input)
		}
	})
	return time.Duration(res.NsPerOp())
}

// processCPU returns the CPU time (user and system) this process has used so far.
func processCPU(t *testing.T) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// startAsInProduction starts the service logging as in production, for measurements: at info
// level (audit events on, per-call debug lines off), to a file rather than to a buffer growing in
// the measured process.
func startAsInProduction(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	cfg.LogLevel = slog.LevelInfo
	// The bench saturates the server on purpose (32 callers on two cores, the load generator
	// included): it measures throughput, not the store budget shedding calls queued past 1s,
	// which the fault tests cover.
	cfg.StoreTimeout = 10 * time.Second
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	return startLogging(t, cfg, logFile)
}

// unlimitedKey creates a tenant whose rate limits are the highest allowed and returns an API key
// of it with every role.
func unlimitedKey(t *testing.T, r *running, id, issuer string) string {
	t.Helper()
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	most := &tokenauthorityv1.RateLimit{PerSecond: 100_000, Burst: 100_000}
	created := must(admin.CreateTenant(withKey(r.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: id, Issuer: issuer, IssueRateLimit: most, RefreshRateLimit: most, RevokeRateLimit: most, ExchangeRateLimit: most}}))
	return must(admin.CreateApiKey(withKey(created.GetAdminApiKey()), &tokenauthorityv1.CreateApiKeyRequest{Name: id,
		Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY,
			tokenauthorityv1.Role_ROLE_REVOKE, tokenauthorityv1.Role_ROLE_ADMIN}})).GetSecret()
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO")
	return 0
}

func sessionMemory(t *testing.T, srv *redistest.Server, r *running) {
	const n = 100_000
	c := srv.Client(t)
	before := usedMemory(t, c)
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	ctx := withKey(r.devKey)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				_, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{
					Subject: "user-" + strconv.Itoa(i), Audience: []string{"orders"}, Scopes: []string{"read", "write"},
					Metadata: &tokenauthorityv1.SessionMetadata{UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", Ip: "203.0.113.7"},
				})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d issues failed", failed.Load())
	}
	after := usedMemory(t, c)
	t.Logf("redis memory per live session over %d sessions (distinct subjects, with metadata): %d bytes", n, (after-before)/n)
}

// runGHZ drives the same server with ghz, the standard gRPC load tool, for a second opinion.
func runGHZ(t *testing.T, ghz, label string, r *running, dur time.Duration) {
	key, addr := r.devKey, r.conn.Target()
	accessToken := benchPair(t, r).GetAccessToken()
	// A fixed number of requests, not a duration: ghz cancels what is in flight when a duration ends.
	count := int(dur.Seconds() * 6000)
	n := strconv.Itoa(count)
	// Each run reports its throughput, and the CPU per call of ghz and of this process (the
	// server's: the in-process generator is idle meanwhile).
	type ghzRun struct {
		rps               float64
		ghzCPU, serverCPU time.Duration
	}
	run := func(call, data string, meta bool) ghzRun {
		args := []string{"--insecure", "--call", call, "-n", n, "-c", "32", "--connections", "4", "-O", "json"}
		if strings.HasPrefix(data, "@") {
			args = append(args, "-D", data[1:])
		} else {
			args = append(args, "-d", data)
		}
		if meta {
			args = append(args, "-m", `{"x-api-key":"`+key+`"}`)
		}
		cmd := exec.Command(ghz, append(args, addr)...)
		proc0 := processCPU(t)
		// BENCH_CPUPROFILE=<file> writes a CPU profile of the server during ghz's VerifyToken load
		// on redis-server: this process is the server alone then, so the profile attributes its
		// CPU per call to its parts.
		stopProfile := func() {}
		if path := os.Getenv("BENCH_CPUPROFILE"); path != "" && label == labelRedis && strings.HasSuffix(call, "/VerifyToken") {
			stopProfile = startCPUProfile(t, path)
		}
		out, err := cmd.Output()
		stopProfile()
		if err != nil {
			t.Fatalf("ghz %s: %v", call, err)
		}
		serverCPU := time.Duration((processCPU(t) - proc0) / float64(count) * float64(time.Second))
		ghzCPU := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()) / time.Duration(count)
		var rep struct {
			RPS          float64        `json:"rps"`
			StatusCodeDn map[string]int `json:"statusCodeDistribution"`
			ErrorDn      map[string]int `json:"errorDistribution"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("ghz output: %v", err)
		}
		for code, n := range rep.StatusCodeDn {
			if code != "OK" {
				t.Errorf("ghz %s: %d calls ended %s: %v", call, n, code, rep.ErrorDn)
			}
		}
		return ghzRun{rep.RPS, ghzCPU, serverCPU}
	}
	noop := run("grpc.health.v1.Health/Check", `{}`, false)
	verify := run("tokenauthority.v1.TokenService/VerifyToken", `{"token":"`+accessToken+`"}`, true)
	issue := run("tokenauthority.v1.TokenService/IssueToken", `{"subject":"ghz"}`, true)
	// Refresh: ghz sends the messages of an array in turn, so one fresh refresh token per request.
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	reqs := make([]map[string]string, count)
	for i := range reqs {
		p, err := ts.IssueToken(withKey(key), &tokenauthorityv1.IssueTokenRequest{Subject: "ghz-" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = map[string]string{"refresh_token": p.GetRefreshToken()}
	}
	data, err := json.Marshal(reqs)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "refresh.json")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	refresh := run("tokenauthority.v1.TokenService/RefreshToken", "@"+file, true)
	var b strings.Builder
	fmt.Fprintf(&b, "ghz %s:\n%-22s %10s %8s %12s %12s\n", label, "rpc", "req/s", "ratio", "ghz cpu/call", "cpu/call")
	for _, row := range []struct {
		name string
		run  ghzRun
	}{{"Health/Check (no-op)", noop}, {"VerifyToken", verify}, {"IssueToken", issue}, {"RefreshToken", refresh}} {
		fmt.Fprintf(&b, "%-22s %10.0f %8.2f %12s %12s\n", row.name, row.run.rps, row.run.rps/max(noop.rps, 1),
			row.run.ghzCPU.Round(100*time.Nanosecond), row.run.serverCPU.Round(100*time.Nanosecond))
	}
	t.Log(b.String())
	if label != labelRedis {
		return
	}
	// Regression floors (issue 16): the ratios measured with ghz on Redis were about 0.6 for
	// Verify and 0.35 for Issue and Refresh; the floors sit below them by the spread seen between
	// runs on this shared two-core machine (Verify 0.49-0.58 in four runs of one afternoon).
	for _, f := range []struct {
		name  string
		run   ghzRun
		floor float64
	}{{"VerifyToken", verify, 0.45}, {"IssueToken", issue, 0.25}, {"RefreshToken", refresh, 0.25}} {
		if ratio := f.run.rps / max(noop.rps, 1); ratio < f.floor {
			t.Errorf("ghz %s: %.2f of a no-op call, below its regression floor %.2f", f.name, ratio, f.floor)
		}
	}
}

// labelRedis labels the ghz runs against the server on redis-server, which the floors apply to.
const labelRedis = "on redis-server"

// startCPUProfile starts writing a CPU profile of this process to path, and returns what stops it.
func startCPUProfile(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}
