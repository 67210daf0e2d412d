package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

// TestTLSPerformanceRatio measures VerifyToken and IssueToken throughput over mutual TLS as a
// fraction of the same server configuration in plaintext, both on one redis-server, over
// long-lived connections (4 per server, 32 workers), so that handshakes are not in the figure.
// The two take turns in short rounds; each ratio is the median of the rounds'. It prints the
// figures and asserts only that no call failed: run it with TOKENAUTHORITY_BENCH=1 (BENCH_TIME,
// BENCH_ROUNDS as for TestPerformanceRatios).
func TestTLSPerformanceRatio(t *testing.T) {
	if os.Getenv("TOKENAUTHORITY_BENCH") == "" {
		t.Skip("set TOKENAUTHORITY_BENCH=1 (make bench) to measure")
	}
	dur := 5 * time.Second
	if d, err := time.ParseDuration(os.Getenv("BENCH_TIME")); err == nil {
		dur = d
	}
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	srv := redistest.Start(t)
	plainCfg := testConfig(t, srv.URL())
	plain := startAsInProduction(t, plainCfg)

	ca := tlstest.NewCA(t, "bench CA")
	dir := t.TempDir()
	// The same configuration, its development secrets included, but over mutual TLS.
	tlsCfg := *plainCfg
	cfg := &tlsCfg
	cfg.TLSCertFile, cfg.TLSKeyFile = ca.Server(t).Write(t, dir)
	cfg.TLSClientCAFile, cfg.TLSClientAuth = filepath.Join(dir, "ca.pem"), config.ClientAuthRequire
	tlstest.WriteFile(t, cfg.TLSClientCAFile, ca.PEM)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	tlsCreds := credentials.NewTLS(tlstest.ClientConfig(ca, ca.Client(t, "bench")))
	secure, _ := startWithCreds(t, cfg, logFile, func(log *slog.Logger) (*App, error) { return New(cfg, log) }, tlsCreds)

	type side struct {
		name   string
		r      *running
		creds  credentials.TransportCredentials
		key    string
		conns  []*grpc.ClientConn
		verify *tokenauthorityv1.VerifyTokenRequest
	}
	sides := []*side{{name: "plaintext", r: plain, creds: insecure.NewCredentials()}, {name: "mTLS", r: secure, creds: tlsCreds}}
	for i, s := range sides {
		s.key = unlimitedKey(t, s.r, "bench-"+strconv.Itoa(i), "https://bench"+strconv.Itoa(i)+".example")
		for range 4 {
			c, err := grpc.NewClient(s.r.conn.Target(), grpc.WithTransportCredentials(s.creds))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			s.conns = append(s.conns, c)
		}
		p := must(tokenauthorityv1.NewTokenServiceClient(s.r.conn).IssueToken(withKey(s.key), &tokenauthorityv1.IssueTokenRequest{Subject: "bench"}))
		s.verify = &tokenauthorityv1.VerifyTokenRequest{Token: p.GetAccessToken()}
	}
	const workers = 32
	var failed atomic.Int64
	// run calls call from the workers on s's connections for d and returns the calls per second.
	run := func(s *side, call func(tokenauthorityv1.TokenServiceClient, context.Context) error, d time.Duration) float64 {
		ctx := withKey(s.key)
		var n atomic.Int64
		deadline := time.Now().Add(d)
		var wg sync.WaitGroup
		for w := range workers {
			client := tokenauthorityv1.NewTokenServiceClient(s.conns[w%len(s.conns)])
			wg.Go(func() {
				for time.Now().Before(deadline) {
					if err := call(client, ctx); err != nil {
						failed.Add(1)
						continue
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / d.Seconds()
	}
	workloads := []struct {
		name string
		call func(*side) func(tokenauthorityv1.TokenServiceClient, context.Context) error
	}{
		{"VerifyToken", func(s *side) func(tokenauthorityv1.TokenServiceClient, context.Context) error {
			return func(c tokenauthorityv1.TokenServiceClient, ctx context.Context) error {
				v, err := c.VerifyToken(ctx, s.verify)
				if err == nil && !v.GetActive() {
					return fmt.Errorf("inactive: %v", v.GetReason())
				}
				return err
			}
		}},
		{"IssueToken", func(*side) func(tokenauthorityv1.TokenServiceClient, context.Context) error {
			return func(c tokenauthorityv1.TokenServiceClient, ctx context.Context) error {
				_, err := c.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "bench", Scopes: []string{"read"}})
				return err
			}
		}},
	}
	slice := dur / time.Duration(rounds)
	for _, wl := range workloads {
		var ratios []float64
		var total [2]float64
		for range rounds {
			var rps [2]float64
			for i, s := range sides {
				rps[i] = run(s, wl.call(s), slice)
				total[i] += rps[i]
			}
			ratios = append(ratios, rps[1]/max(rps[0], 1))
		}
		slices.Sort(ratios)
		t.Logf("%-12s plaintext %8.0f req/s, mTLS %8.0f req/s, ratio mTLS/plaintext %.2f (rounds %.2f-%.2f)", wl.name,
			total[0]/float64(rounds), total[1]/float64(rounds), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	}
	if failed.Load() > 0 {
		t.Errorf("%d calls failed", failed.Load())
	}
}
