package tenant_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	redisstore "github.com/tokenauthority/tokenauthority/internal/store/redis"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// countingStore counts the records that the tenant service reads, and the store calls that read
// them.
type countingStore struct {
	tenant.Store

	mu      sync.Mutex
	records int
	reads   int
	// beforeReturn, when set, runs after a GetRecord has read the store and before it returns.
	beforeReturn func(kind, id string)
	// fail, when set, is what GetRecord returns instead of reading.
	fail error
}

func (c *countingStore) count(records int) {
	c.mu.Lock()
	c.records += records
	c.reads++
	c.mu.Unlock()
}

// take returns the counts since the last call and resets them.
func (c *countingStore) take() (records, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	records, reads = c.records, c.reads
	c.records, c.reads = 0, 0
	return records, reads
}

func (c *countingStore) GetRecord(ctx context.Context, kind, id string) ([]byte, error) {
	c.mu.Lock()
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		c.count(0)
		return nil, fail
	}
	v, err := c.Store.GetRecord(ctx, kind, id)
	if err == nil {
		c.count(1)
	} else {
		c.count(0)
	}
	c.mu.Lock()
	hook := c.beforeReturn
	c.mu.Unlock()
	if hook != nil {
		hook(kind, id)
	}
	return v, err
}

func (c *countingStore) ListRecords(ctx context.Context, kind, prefix string) ([]store.Record, error) {
	recs, err := c.Store.ListRecords(ctx, kind, prefix)
	c.count(len(recs))
	return recs, err
}

func (c *countingStore) ListOwnedRecords(ctx context.Context, kind, owner string) ([]store.Record, error) {
	recs, err := c.Store.ListOwnedRecords(ctx, kind, owner)
	c.count(len(recs))
	return recs, err
}

// backends returns a fresh store of each backend, by name: the in-memory store, and Redis unless
// short.
func backends(_ *testing.T) map[string]func(t *testing.T) (tenant.Store, *redistest.Server) {
	b := map[string]func(t *testing.T) (tenant.Store, *redistest.Server){
		"Memory": func(*testing.T) (tenant.Store, *redistest.Server) { return memory.New(nil), nil },
	}
	if !testing.Short() {
		b["Redis"] = func(t *testing.T) (tenant.Store, *redistest.Server) {
			srv := redistest.Start(t)
			return redisstore.New(srv.Client(t)), srv
		}
	}
	return b
}

func createTenant(t *testing.T, svc *tenant.Service, id string) {
	t.Helper()
	if err := svc.CreateTenant(context.Background(), &tenant.Tenant{ID: id, Issuer: "https://" + id + ".example"}); err != nil {
		t.Fatalf("CreateTenant(%s): %v", id, err)
	}
}

func createKeys(t *testing.T, svc *tenant.Service, tenantID string, n int) []string {
	t.Helper()
	var values []string
	for i := range n {
		_, v, err := svc.CreateAPIKey(context.Background(), tenantID, fmt.Sprintf("k%d", i), []tenant.Role{tenant.RoleVerify})
		if err != nil {
			t.Fatalf("CreateAPIKey #%d of %s: %v", i+1, tenantID, err)
		}
		values = append(values, v)
	}
	return values
}

// TestListAPIKeysReadsOnlyTheTenantsKeys: listing or deleting one tenant's API keys reads that
// tenant's records, however many API keys other tenants hold (issue 20, item 7: one tenant's
// 30,000 keys took another's ListApiKeys from 2.4 ms to 250 ms).
func TestListAPIKeysReadsOnlyTheTenantsKeys(t *testing.T) {
	const others, own = 2 * tenant.MaxAPIKeys, 3
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			inner, srv := open(t)
			cs := &countingStore{Store: inner}
			svc := tenant.NewService(cs, "", storetest.NewClock(t0).Now)
			for _, id := range []string{"acme", "initech", "globex"} {
				createTenant(t, svc, id)
			}
			createKeys(t, svc, "acme", others/2)
			createKeys(t, svc, "initech", others/2)
			createKeys(t, svc, "globex", own)

			cs.take()
			if srv != nil {
				srv.ResetStats(t)
			}
			keys, err := svc.ListAPIKeys(ctx, "globex")
			if err != nil || len(keys) != own {
				t.Fatalf("ListAPIKeys(globex) = %d keys, %v; want %d", len(keys), err, own)
			}
			for _, k := range keys {
				if k.Tenant != "globex" {
					t.Errorf("ListAPIKeys(globex) listed a key of %q", k.Tenant)
				}
			}
			records, reads := cs.take()
			t.Logf("ListAPIKeys of a tenant with %d keys, %d keys in other tenants: %d records read in %d store calls",
				own, others, records, reads)
			if srv != nil {
				t.Logf("Redis commands: %v", srv.CommandStats(t))
			}
			if records != own {
				t.Errorf("ListAPIKeys(globex) read %d records, want its %d keys only", records, own)
			}

			if err := svc.DeleteTenant(ctx, "globex"); err != nil {
				t.Fatalf("DeleteTenant: %v", err)
			}
			// Its keys, and its own record, which names the issuer claim to release.
			if records, _ := cs.take(); records != own+1 {
				t.Errorf("DeleteTenant(globex) read %d records, want its %d keys and its own record only", records, own)
			}
			for _, id := range []string{"acme", "initech"} {
				if keys, err := svc.ListAPIKeys(ctx, id); err != nil || len(keys) != others/2 {
					t.Errorf("ListAPIKeys(%s) after globex was deleted = %d keys, %v; want %d", id, len(keys), err, others/2)
				}
			}
			if keys, err := svc.ListAPIKeys(ctx, "globex"); err != nil || len(keys) != 0 {
				t.Errorf("ListAPIKeys of the deleted tenant = %d keys, %v; want none", len(keys), err)
			}
		})
	}
}

// TestCreateAPIKeyRefusesBeyondMaxAPIKeys: a tenant holds at most MaxAPIKeys keys; rotating one
// is no creation, deleting one makes room, and other tenants have their own count.
func TestCreateAPIKeyRefusesBeyondMaxAPIKeys(t *testing.T) {
	e := newEnv(t, "")
	createTenant(t, e.svc, "globex")
	values := createKeys(t, e.svc, tenantID, tenant.MaxAPIKeys)

	k, v, err := e.svc.CreateAPIKey(e.ctx, tenantID, "one too many", []tenant.Role{tenant.RoleIssue})
	if !errors.Is(err, tenant.ErrLimit) || k != nil || v != "" {
		t.Fatalf("CreateAPIKey beyond the limit: key returned %v, value returned %v, err %v; want ErrLimit", k != nil, v != "", err)
	}
	if want := fmt.Sprintf("at most %d API keys", tenant.MaxAPIKeys); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if keys, err := e.svc.ListAPIKeys(e.ctx, tenantID); err != nil || len(keys) != tenant.MaxAPIKeys {
		t.Errorf("ListAPIKeys = %d keys, %v; want %d", len(keys), err, tenant.MaxAPIKeys)
	}
	createKeys(t, e.svc, "globex", 1)

	first, err := e.svc.Authenticate(e.ctx, values[0])
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, _, err := e.svc.RotateAPIKey(e.ctx, tenantID, first.KeyID, 0); err != nil {
		t.Errorf("RotateAPIKey at the limit: %v", err)
	}
	if err := e.svc.DeleteAPIKey(e.ctx, tenantID, first.KeyID); err != nil {
		t.Fatalf("DeleteAPIKey: %v", err)
	}
	createKeys(t, e.svc, tenantID, 1)
}

// TestIndexAPIKeysListsKeysStoredBefore: API keys stored before keys were listed per tenant are
// missing from ListAPIKeys and DeleteTenant until IndexAPIKeys has run (at start-up); it lists
// them once, skips what does not decode, and never lists a deleted key.
func TestIndexAPIKeysListsKeysStoredBefore(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := open(t)
			clock := storetest.NewClock(t0)
			svc := tenant.NewService(s, "", clock.Now)
			createTenant(t, svc, "acme")
			createTenant(t, svc, "globex")
			// As the previous version stored them: plain records, no per-tenant list.
			legacy := map[string]string{} // key id -> tenant
			values := map[string]string{} // key id -> value
			for _, tn := range []string{"acme", "acme", "globex", "acme"} {
				value := tenant.NewAPIKeyValue()
				k := registerLegacy(t, s, tn, value)
				legacy[k.ID], values[k.ID] = tn, value
			}
			if err := s.PutRecord(ctx, store.KindAPIKey, "garbage", []byte("{not json")); err != nil {
				t.Fatal(err)
			}
			deleted := registerLegacy(t, s, "acme", tenant.NewAPIKeyValue())
			if _, err := s.DeleteRecord(ctx, store.KindAPIKey, deleted.ID); err != nil {
				t.Fatal(err)
			}
			createKeys(t, svc, "acme", 1)

			if keys, _ := svc.ListAPIKeys(ctx, "acme"); len(keys) != 1 {
				t.Fatalf("before IndexAPIKeys, ListAPIKeys(acme) = %d keys, want the 1 created since", len(keys))
			}
			listed, skipped, err := svc.IndexAPIKeys(ctx)
			if err != nil || listed != 4 || skipped != 1 {
				t.Fatalf("IndexAPIKeys = %d listed, %d skipped, %v; want 4, 1, nil", listed, skipped, err)
			}
			if listed, skipped, err := svc.IndexAPIKeys(ctx); err != nil || listed != 0 || skipped != 1 {
				t.Errorf("IndexAPIKeys again = %d listed, %d skipped, %v; want 0, 1, nil", listed, skipped, err)
			}
			for tn, want := range map[string]int{"acme": 4, "globex": 1} {
				if keys, err := svc.ListAPIKeys(ctx, tn); err != nil || len(keys) != want {
					t.Errorf("ListAPIKeys(%s) = %d keys, %v; want %d", tn, len(keys), err, want)
				}
			}
			for id, v := range values {
				if c, err := svc.Authenticate(ctx, v); err != nil || c.KeyID != id {
					t.Errorf("Authenticate with the value of %s = %v, %v", id, c, err)
				}
			}
			// The tenant's legacy keys go with it; other tenants' stay.
			if err := svc.DeleteTenant(ctx, "acme"); err != nil {
				t.Fatalf("DeleteTenant: %v", err)
			}
			for id, tn := range legacy {
				_, err := s.GetRecord(ctx, store.KindAPIKey, id)
				if gone := errors.Is(err, store.ErrNotFound); gone != (tn == "acme") {
					t.Errorf("after DeleteTenant(acme), GetRecord of a key of %s: %v", tn, err)
				}
			}
			// Listed keys count towards the limit.
			createKeys(t, svc, "globex", tenant.MaxAPIKeys-1)
			if _, _, err := svc.CreateAPIKey(ctx, "globex", "over", []tenant.Role{tenant.RoleIssue}); !errors.Is(err, tenant.ErrLimit) {
				t.Errorf("CreateAPIKey with a listed legacy key and %d new ones: %v, want ErrLimit", tenant.MaxAPIKeys-1, err)
			}
		})
	}
}

// registerLegacy stores an API key of value as the version before per-tenant lists did.
func registerLegacy(t *testing.T, s tenant.Store, tenantID, value string) *tenant.APIKey {
	t.Helper()
	k, err := tenant.NewService(memory.New(nil), "", storetest.NewClock(t0).Now).RegisterAPIKey(context.Background(), tenantID, "legacy", []tenant.Role{tenant.RoleAdmin}, value)
	if err != nil {
		t.Fatal(err)
	}
	k.CreatedAt = t0
	raw, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(context.Background(), store.KindAPIKey, k.ID, raw); err != nil {
		t.Fatal(err)
	}
	return k
}
