package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
)

func TestServer(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") || strings.HasSuffix(srv.Addr(), ":6379") {
		t.Fatalf("Addr() = %q, want a private loopback port", srv.Addr())
	}
	if want := "redis://" + srv.Addr() + "/0"; srv.URL() != want {
		t.Errorf("URL() = %q, want %q", srv.URL(), want)
	}
	c := srv.Client(t)
	srv.ResetStats(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := c.Get(ctx, "k").Err(); err != nil {
		t.Fatalf("GET: %v", err)
	}
	stats := srv.CommandStats(t)
	if stats["set"] != 1 || stats["get"] != 1 {
		t.Errorf("CommandStats() = %v, want set=1 and get=1", stats)
	}

	addr := srv.Addr()
	srv.Stop(t)
	quick := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: 200 * time.Millisecond})
	defer quick.Close()
	if err := quick.Ping(ctx).Err(); err == nil {
		t.Fatal("PING of a stopped server succeeded")
	}

	srv.Restart(t)
	if srv.Addr() != addr {
		t.Fatalf("Addr() after Restart = %q, want %q", srv.Addr(), addr)
	}
	fresh := srv.Client(t)
	if err := fresh.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET after Restart: err = %v, want redis.Nil (no data kept)", err)
	}
}

func TestServersAreIndependent(t *testing.T) {
	ctx := context.Background()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET on the other server: err = %v, want redis.Nil", err)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		redistest.Start(rec)
		rec.msg = "Start returned"
	}()
	<-done
	if !strings.Contains(rec.msg, "make test") {
		t.Errorf("Start without redis-server: message %q, want one that mentions `make test`", rec.msg)
	}
}
