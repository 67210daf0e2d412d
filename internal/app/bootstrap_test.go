package app

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// devKeyCode returns the status code of a call made with key (Unauthenticated once it is gone).
func devKeyCode(t *testing.T, r *running, key string) codes.Code {
	t.Helper()
	ts := tokenauthorityv1.NewTokenServiceClient(r.conn)
	_, err := ts.ListSessions(withKey(key), &tokenauthorityv1.ListSessionsRequest{Subject: "alice"})
	return status.Code(err)
}

// devKeyID returns the id of the development API key.
func devKeyID(t *testing.T, r *running) string {
	t.Helper()
	keys, err := r.app.tenants.ListAPIKeys(context.Background(), DevTenant)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	for _, k := range keys {
		if k.Name == "development" {
			return k.ID
		}
	}
	t.Fatal("no development API key")
	return ""
}

// TestDevBootstrapOnce checks that what an operator does to the development tenant and API key
// holds after a Redis outage (the service bootstrapped again on every recovery) and after a
// restart of the service on the same data directory and Redis.
func TestDevBootstrapOnce(t *testing.T) {
	tests := []struct {
		name string
		// act is the operator's action; every case makes the key file's key unusable.
		act func(t *testing.T, r *running)
		// tenantGone is whether the dev tenant must stay deleted.
		tenantGone bool
	}{
		{"DevKeyDeleted", func(t *testing.T, r *running) {
			// As an operator must: another admin key first, since the last one cannot go.
			if _, _, err := r.app.tenants.CreateAPIKey(context.Background(), DevTenant, "ops", []tenant.Role{tenant.RoleAdmin}); err != nil {
				t.Fatalf("CreateAPIKey: %v", err)
			}
			if err := r.app.tenants.DeleteAPIKey(context.Background(), DevTenant, devKeyID(t, r)); err != nil {
				t.Fatalf("DeleteAPIKey: %v", err)
			}
		}, false},
		{"DevKeyRotated", func(t *testing.T, r *running) {
			if _, _, err := r.app.tenants.RotateAPIKey(context.Background(), DevTenant, devKeyID(t, r), 0); err != nil {
				t.Fatalf("RotateAPIKey: %v", err)
			}
		}, false},
		{"DevTenantDeleted", func(t *testing.T, r *running) {
			if err := r.app.tenants.DeleteTenant(context.Background(), DevTenant); err != nil {
				t.Fatalf("DeleteTenant: %v", err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			proxy := redistest.StartProxy(t, srv.Addr())
			cfg := testConfig(t, proxy.URL())
			r := start(t, cfg)
			key := r.devKey
			if got := devKeyCode(t, r, key); got != codes.OK {
				t.Fatalf("the dev key before the operator's action: %v, want OK", got)
			}
			tt.act(t, r)
			check := func(when string, r *running) {
				t.Helper()
				if got := devKeyCode(t, r, key); got != codes.Unauthenticated {
					t.Errorf("%s: the dev key file's key: %v, want Unauthenticated", when, got)
				}
				_, err := r.app.tenants.Tenant(context.Background(), DevTenant)
				if gone := errors.Is(err, tenant.ErrNotFound); gone != tt.tenantGone {
					t.Errorf("%s: dev tenant gone = %v (%v), want %v", when, gone, err, tt.tenantGone)
				}
			}
			check("after the action", r)

			// An outage that the service notices, then the recovery, which bootstraps.
			proxy.Refuse()
			proxy.Cut()
			r.waitServing(t, healthpb.HealthCheckResponse_NOT_SERVING)
			proxy.Accept()
			r.waitServing(t, healthpb.HealthCheckResponse_SERVING)
			check("after a Redis outage", r)

			r.stop(t)
			check("after a restart of the service", start(t, cfg))
		})
	}
}

// TestDevBootstrapFreshStore checks that development mode still works on a store that has never
// seen the data directory's key file, or has lost everything: the in-memory store of a restarted
// service, and a Redis emptied under the running service.
func TestDevBootstrapFreshStore(t *testing.T) {
	t.Run("MemoryStoreRestarted", func(t *testing.T) {
		cfg := testConfig(t, "")
		r := start(t, cfg)
		r.stop(t)
		r = start(t, cfg)
		if got := devKeyCode(t, r, r.devKey); got != codes.OK {
			t.Errorf("the dev key after a restart on the in-memory store: %v, want OK", got)
		}
	})
	t.Run("RedisEmptied", func(t *testing.T) {
		srv := redistest.Start(t)
		r := start(t, testConfig(t, srv.URL()))
		if err := srv.Client(t).FlushAll(context.Background()).Err(); err != nil {
			t.Fatalf("FLUSHALL: %v", err)
		}
		// The probe, once a second, sees the bootstrap's mark gone and bootstraps again.
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			got := devKeyCode(t, r, r.devKey)
			if got == codes.OK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dev key after Redis lost its data: %v, want OK again", got)
			}
		}
	})
}

// TestDevAPIKeyFileMode checks that the development API key file is 0600: created so, and
// tightened when it exists with a looser mode, keeping its key.
func TestDevAPIKeyFileMode(t *testing.T) {
	tests := []struct {
		name string
		mode fs.FileMode // of an existing file; 0: none
	}{
		{"Created", 0},
		{"GroupReadable", 0o640},
		{"WorldReadable", 0o644},
		{"Executable", 0o700},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, "")
			path := filepath.Join(cfg.DataDir, DevAPIKeyFile)
			want := ""
			if tt.mode != 0 {
				want = tenant.NewAPIKeyValue()
				if err := os.WriteFile(path, []byte(want+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil { // whatever the umask
					t.Fatal(err)
				}
			}
			r := start(t, cfg)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != 0o600 {
				t.Errorf("mode of %s = %04o, want 0600", DevAPIKeyFile, got)
			}
			if want != "" && r.devKey != want {
				t.Error("the existing key file's key was replaced")
			}
			if got := devKeyCode(t, r, r.devKey); got != codes.OK {
				t.Errorf("the dev key: %v, want OK", got)
			}
			if tt.mode != 0 && !strings.Contains(r.logs.String(), "tightened permissions of the development API key file") {
				t.Error("the tightening is not logged")
			}
		})
	}
}
