package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
	"github.com/tokenauthority/tokenauthority/internal/audit/audittest"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/lifecycle"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// faultStore is the memory store with a fault injected into the writes that the lifecycle's
// steps make, named "<method> <kind or tenant>" (as "CreateRecord keyset"). Like a networked
// store, it refuses a write whose context is done. It logs those writes in order.
type faultStore struct {
	*memory.Store
	mu sync.Mutex
	// fault, when not nil, is asked before each write; an error fails the write.
	fault func(ctx context.Context, op string) error
	ops   []string
}

func (f *faultStore) write(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	f.mu.Lock()
	fault := f.fault
	f.mu.Unlock()
	if fault != nil {
		if err := fault(ctx, op); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.ops = append(f.ops, op)
	f.mu.Unlock()
	return nil
}

func (f *faultStore) setFault(fault func(ctx context.Context, op string) error) {
	f.mu.Lock()
	f.fault = fault
	f.mu.Unlock()
}

// forget clears the record of writes done so far.
func (f *faultStore) forget() {
	f.mu.Lock()
	f.ops = nil
	f.mu.Unlock()
}

// log returns the writes done so far whose name is one of names, in order.
func (f *faultStore) log(names ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, op := range f.ops {
		if slices.Contains(names, op) {
			out = append(out, op)
		}
	}
	return out
}

func (f *faultStore) CreateRecord(ctx context.Context, kind, id string, value []byte) error {
	if err := f.write(ctx, "CreateRecord "+kind); err != nil {
		return err
	}
	return f.Store.CreateRecord(ctx, kind, id, value)
}

func (f *faultStore) DeleteRecord(ctx context.Context, kind, id string) (bool, error) {
	if err := f.write(ctx, "DeleteRecord "+kind); err != nil {
		return false, err
	}
	return f.Store.DeleteRecord(ctx, kind, id)
}

func (f *faultStore) CreateOwnedRecord(ctx context.Context, kind, owner, id string, value []byte, limit int) error {
	if err := f.write(ctx, "CreateOwnedRecord "+kind); err != nil {
		return err
	}
	return f.Store.CreateOwnedRecord(ctx, kind, owner, id, value, limit)
}

func (f *faultStore) PutOwnedRecord(ctx context.Context, kind, owner, id string, value []byte) error {
	if err := f.write(ctx, "PutOwnedRecord "+kind); err != nil {
		return err
	}
	return f.Store.PutOwnedRecord(ctx, kind, owner, id, value)
}

func (f *faultStore) SetTenantCutoff(ctx context.Context, tenantID string, at time.Time, ttl time.Duration) error {
	if err := f.write(ctx, "SetTenantCutoff"); err != nil {
		return err
	}
	return f.Store.SetTenantCutoff(ctx, tenantID, at, ttl)
}

// failOn returns a fault that fails the write op with store.ErrUnavailable.
func failOn(op string) func(context.Context, string) error {
	return func(_ context.Context, got string) error {
		if got == op {
			return fmt.Errorf("test: %s: %w", op, store.ErrUnavailable)
		}
		return nil
	}
}

// env is the lifecycle as the app wires it, over a fault store: the real tenant service, key
// manager and token service.
type env struct {
	store   *faultStore
	clock   *storetest.Clock
	kek     []byte
	tenants *tenant.Service
	keys    *keys.Manager
	tokens  *token.Service
	audit   *audittest.Log
	svc     *lifecycle.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := storetest.NewClock(t0)
	e := &env{store: &faultStore{Store: memory.New(clock.Now)}, clock: clock, kek: make([]byte, 32)}
	km, err := keys.NewManager(e.store, e.kek, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	e.keys = km
	e.tenants = tenant.NewService(e.store, "", clock.Now)
	e.tokens = token.New(token.Config{Store: e.store, Keys: km, Now: clock.Now, AccessTTL: 5 * time.Minute, RefreshTTL: time.Hour,
		MaxAccessTTL: time.Hour, MaxRefreshTTL: 24 * time.Hour})
	var w *audit.Writer
	w, e.audit = audittest.New()
	e.svc = lifecycle.New(lifecycle.Config{Tenants: e.tenants, Keys: km, Tokens: e.tokens, Audit: w})
	return e
}

func newTenant() *tenant.Tenant {
	return &tenant.Tenant{ID: "acme", Issuer: "https://acme.example", Algorithm: keys.EdDSA}
}

// auditEvents returns the audit=<name> of each audit line written, in order, each checked to be
// of tenant acme.
func (e *env) auditEvents(t *testing.T) []string {
	t.Helper()
	for _, rec := range e.audit.Records(t) {
		if rec["tenant"] != "acme" || rec["log"] != "audit" {
			t.Errorf("audit line %v: want tenant=acme, log=audit", rec)
		}
	}
	return e.audit.Names(t)
}

// assertNothingOf checks that nothing of tenant acme is in the store: no tenant, no signing keys
// (read by a manager with an empty cache, as another replica would), no API key.
func (e *env) assertNothingOf(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.tenants.Tenant(ctx, "acme"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("the tenant: %v, want tenant.ErrNotFound", err)
	}
	fresh, err := keys.NewManager(e.store.Store, e.kek, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if ks, err := fresh.Keys(ctx, "acme"); !errors.Is(err, keys.ErrNoKeys) {
		t.Errorf("the signing keys: %d, %v; want keys.ErrNoKeys", len(ks), err)
	}
	recs, err := e.store.ListRecords(ctx, store.KindAPIKey, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("%d API keys left, want none", len(recs))
	}
}

// assertWhole checks that tenant acme is complete: stored, with signing keys, and value is an
// API key of it with roles.
func (e *env) assertWhole(t *testing.T, value string, roles []tenant.Role) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.tenants.Tenant(ctx, "acme"); err != nil {
		t.Errorf("the tenant: %v", err)
	}
	if ks, err := e.keys.Keys(ctx, "acme"); err != nil || len(ks) == 0 {
		t.Errorf("the signing keys: %d, %v; want some", len(ks), err)
	}
	c, err := e.tenants.AuthenticateFromStore(ctx, value)
	if err != nil {
		t.Fatalf("the first API key does not authenticate: %v", err)
	}
	if c.Tenant.ID != "acme" || !slices.Equal(c.Roles, roles) {
		t.Errorf("the first API key is of tenant %s with roles %v, want acme with %v", c.Tenant.ID, c.Roles, roles)
	}
}

// TestCreateIsAllOrNothing: when a step of Create fails (the tenant's record, its signing keys,
// its first API key, or the caller goes away meanwhile), Create fails with the step's error, and
// nothing of the tenant is left, so that the same call succeeds when retried.
func TestCreateIsAllOrNothing(t *testing.T) {
	devKey := tenant.NewAPIKeyValue()
	tests := []struct {
		name string
		// fault fails one write; cancel is the cancellation of Create's context, for faults
		// that end it.
		fault func(cancel context.CancelFunc) func(context.Context, string) error
		opts  []lifecycle.CreateOption
		// want is what the error wraps.
		want error
	}{
		{name: "tenant record fails", want: store.ErrUnavailable,
			fault: func(context.CancelFunc) func(context.Context, string) error { return failOn("CreateRecord tenant") }},
		{name: "keyset write fails", want: store.ErrUnavailable,
			fault: func(context.CancelFunc) func(context.Context, string) error { return failOn("CreateRecord keyset") }},
		{name: "first API key write fails", want: store.ErrUnavailable,
			fault: func(context.CancelFunc) func(context.Context, string) error {
				return failOn("CreateOwnedRecord apikey")
			}},
		{name: "registered API key write fails", want: store.ErrUnavailable,
			opts:  []lifecycle.CreateOption{lifecycle.WithAPIKey("development", tenant.AllRoles, devKey)},
			fault: func(context.CancelFunc) func(context.Context, string) error { return failOn("PutOwnedRecord apikey") }},
		{name: "registered API key is malformed", want: tenant.ErrInvalid,
			opts:  []lifecycle.CreateOption{lifecycle.WithAPIKey("development", tenant.AllRoles, "tak_not-a-key")},
			fault: func(context.CancelFunc) func(context.Context, string) error { return nil }},
		{name: "caller goes away during the first API key", want: context.Canceled,
			fault: func(cancel context.CancelFunc) func(context.Context, string) error {
				return func(ctx context.Context, op string) error {
					if op == "CreateOwnedRecord apikey" {
						cancel()
						return ctx.Err()
					}
					return nil
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e.store.setFault(tt.fault(cancel))
			got, value, err := e.svc.Create(ctx, newTenant(), tt.opts...)
			if !errors.Is(err, tt.want) || got != nil || value != "" {
				t.Fatalf("Create = %v, %q, %v; want nothing and an error wrapping %v", got, value, err, tt.want)
			}
			e.assertNothingOf(t)
			if events := e.auditEvents(t); len(events) != 0 {
				t.Errorf("audit events of a failed Create: %v, want none", events)
			}

			e.store.setFault(nil)
			opts, roles := tt.opts, []tenant.Role{tenant.RoleAdmin}
			if errors.Is(tt.want, tenant.ErrInvalid) {
				opts = nil
			} else if len(opts) > 0 {
				roles = tenant.AllRoles
			}
			got, value, err = e.svc.Create(context.Background(), newTenant(), opts...)
			if err != nil {
				t.Fatalf("Create again: %v", err)
			}
			if got.ID != "acme" || got.Incarnation == "" {
				t.Errorf("Create again returned tenant %+v, want acme as stored", got)
			}
			e.assertWhole(t, value, roles)
			if events := e.auditEvents(t); !slices.Equal(events, []string{"tenant_created"}) {
				t.Errorf("audit events: %v, want tenant_created", events)
			}
		})
	}
}

// TestCreateRefusesAnExistingTenant: the normal path never touches a tenant it did not make.
func TestCreateRefusesAnExistingTenant(t *testing.T) {
	e := newEnv(t)
	_, first, err := e.svc.Create(context.Background(), newTenant())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Create(context.Background(), newTenant()); !errors.Is(err, store.ErrExists) {
		t.Fatalf("Create of an existing id = %v, want store.ErrExists", err)
	}
	// The failed call removed nothing of the tenant that was there.
	e.assertWhole(t, first, []tenant.Role{tenant.RoleAdmin})
}

// TestCreateCompleteExisting: the development bootstrap's option completes a tenant that exists
// (with or without its keys) by adding the given key, and leaves it in place when that fails.
func TestCreateCompleteExisting(t *testing.T) {
	tests := []struct {
		name string
		// before makes what exists; fault fails a write of the completion.
		before func(t *testing.T, e *env)
		fault  string
		// wantKeys is whether the tenant has signing keys after a failed completion.
		wantKeys bool
	}{
		{name: "complete tenant", before: func(t *testing.T, e *env) {
			if _, _, err := e.svc.Create(context.Background(), newTenant()); err != nil {
				t.Fatal(err)
			}
		}, fault: "PutOwnedRecord apikey", wantKeys: true},
		{name: "tenant without keys", before: func(t *testing.T, e *env) {
			if err := e.tenants.CreateTenant(context.Background(), newTenant()); err != nil {
				t.Fatal(err)
			}
		}, fault: "CreateRecord keyset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.before(t, e)
			stored, err := e.tenants.Tenant(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			e.audit.Reset()
			dev := tenant.NewAPIKeyValue()
			opts := []lifecycle.CreateOption{lifecycle.CompleteExisting(), lifecycle.WithAPIKey("development", tenant.AllRoles, dev)}

			e.store.setFault(failOn(tt.fault))
			if _, _, err := e.svc.Create(context.Background(), newTenant(), opts...); !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Create with a failing %s = %v, want store.ErrUnavailable", tt.fault, err)
			}
			if _, err := e.tenants.Tenant(context.Background(), "acme"); err != nil {
				t.Fatalf("the existing tenant after a failed completion: %v; want it left in place", err)
			}
			if ks, err := e.keys.Keys(context.Background(), "acme"); (err == nil) != tt.wantKeys {
				t.Errorf("signing keys after a failed completion: %d, %v; want some: %v", len(ks), err, tt.wantKeys)
			}

			e.store.setFault(nil)
			got, value, err := e.svc.Create(context.Background(), newTenant(), opts...)
			if err != nil {
				t.Fatalf("Create again: %v", err)
			}
			if value != dev || got.Incarnation != stored.Incarnation {
				t.Errorf("Create returned another key or tenant (incarnation %s, want the stored %s)", got.Incarnation, stored.Incarnation)
			}
			e.assertWhole(t, dev, tenant.AllRoles)
			if events := e.auditEvents(t); len(events) != 0 {
				t.Errorf("audit events of a completion: %v, want none (no tenant was created)", events)
			}
		})
	}
}

// deleteOps are the writes of Delete's three steps, as the fault store names them.
var deleteOps = []string{"SetTenantCutoff", "DeleteRecord keyset", "DeleteRecord tenant"}

// TestDelete checks Delete's order (cut-off, then the keys, then the tenant) and what a failed
// step leaves: the steps before it, not the ones after, the tenant always, and an error naming
// the step; a retry then finishes the deletion.
func TestDelete(t *testing.T) {
	tests := []struct {
		name string
		// fault fails this write; "" for none.
		fault string
		// wantErr is in the error's message; wantTenant and wantKeys are whether the tenant and
		// its keys are left.
		wantErr              string
		wantTenant, wantKeys bool
	}{
		{name: "all steps succeed"},
		{name: "cut-off fails", fault: "SetTenantCutoff", wantErr: "cut off the sessions", wantTenant: true, wantKeys: true},
		{name: "key deletion fails", fault: "DeleteRecord keyset", wantErr: "delete the signing keys", wantTenant: true, wantKeys: true},
		{name: "tenant deletion fails", fault: "DeleteRecord tenant", wantErr: "delete tenant", wantTenant: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			tn, _, err := e.svc.Create(ctx, newTenant())
			if err != nil {
				t.Fatal(err)
			}
			pair, err := e.tokens.Issue(ctx, token.IssueRequest{Tenant: tn, Subject: "alice"})
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
			e.audit.Reset()
			e.store.forget()
			// When the first thing of the tenant is removed (its keys), its sessions must already
			// be cut off: a token of it verifies as inactive (with the keys, still there, to check
			// its signature).
			var atFirstRemoval *token.Verification
			e.store.setFault(func(ctx context.Context, op string) error {
				if op == "DeleteRecord keyset" && atFirstRemoval == nil {
					v, err := e.tokens.Verify(ctx, token.VerifyRequest{Tenant: tn, Token: pair.AccessToken})
					if err != nil {
						return fmt.Errorf("test: verify: %w", err)
					}
					atFirstRemoval = v
				}
				return failOn(tt.fault)(ctx, op)
			})

			err = e.svc.Delete(ctx, "acme")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Delete = %v, want an error saying %q", err, tt.wantErr)
			}
			if tt.wantErr != "" && !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Delete = %v, want it to wrap the store's error", err)
			}
			if tt.fault != "SetTenantCutoff" && atFirstRemoval == nil {
				t.Error("Delete did not remove the tenant's keys")
			}
			if atFirstRemoval != nil && (atFirstRemoval.Active || atFirstRemoval.Reason != token.ReasonCutOff) {
				t.Errorf("when the tenant's keys were removed, its token verified as %+v; want it cut off", atFirstRemoval)
			}
			if tt.fault == "" {
				if got := e.store.log(deleteOps...); !slices.Equal(got, deleteOps) {
					t.Errorf("Delete wrote %v, want %v in this order", got, deleteOps)
				}
				if events := e.auditEvents(t); !slices.Equal(events, []string{"tenant_deleted"}) {
					t.Errorf("audit events: %v, want tenant_deleted", events)
				}
			} else if events := e.auditEvents(t); len(events) != 0 {
				t.Errorf("audit events of a failed Delete: %v, want none", events)
			}
			_, err = e.tenants.Tenant(ctx, "acme")
			if left := err == nil; left != tt.wantTenant {
				t.Errorf("tenant left = %v (%v), want %v", left, err, tt.wantTenant)
			}
			fresh, err := keys.NewManager(e.store.Store, e.kek, e.clock.Now)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fresh.Keys(ctx, "acme")
			if left := err == nil; left != tt.wantKeys {
				t.Errorf("signing keys left = %v (%v), want %v", left, err, tt.wantKeys)
			}
			if tt.wantErr != "" {
				// A failed Delete leaves the tenant, and a retry finishes the deletion, audited
				// once.
				e.store.setFault(nil)
				if err := e.svc.Delete(ctx, "acme"); err != nil {
					t.Fatalf("Delete again: %v", err)
				}
				e.assertNothingOf(t)
				if events := e.auditEvents(t); !slices.Equal(events, []string{"tenant_deleted"}) {
					t.Errorf("audit events after the retry: %v, want tenant_deleted", events)
				}
			}
		})
	}
}

// TestDeleteUnknownTenant: an unknown id is tenant.ErrNotFound, and nothing is cut off.
func TestDeleteUnknownTenant(t *testing.T) {
	e := newEnv(t)
	if err := e.svc.Delete(context.Background(), "nobody"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("Delete of an unknown tenant = %v, want tenant.ErrNotFound", err)
	}
	if got := e.store.log(deleteOps...); len(got) != 0 {
		t.Errorf("Delete of an unknown tenant wrote %v, want nothing", got)
	}
}

// TestCreateUndoHasItsOwnStoreBudget: when the store budget of the call is spent by the time a
// step fails (the budget, not the store, ended the call), the undo still gets to remove the
// tenant: it runs on a budget of its own, as it runs without the caller's cancellation.
func TestCreateUndoHasItsOwnStoreBudget(t *testing.T) {
	e := newEnv(t)
	// Like the Redis backend, refuse work past the call's budget, from the step after the
	// tenant's record on: that record took the last of it.
	e.store.setFault(func(ctx context.Context, op string) error {
		if end, ok := store.Budget(ctx); ok && op != "CreateRecord tenant" && !time.Now().Before(end) {
			return fmt.Errorf("test: %s: %w: store budget spent", op, store.ErrUnavailable)
		}
		return nil
	})
	ctx := store.WithBudget(context.Background(), time.Now().Add(-time.Millisecond))
	if _, _, err := e.svc.Create(ctx, newTenant()); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Create past its budget = %v, want ErrUnavailable", err)
	}
	e.assertNothingOf(t)
}

// TestCreateReplacesKeysLeftBehind: a key set of the id that no tenant owns (an undo that failed
// half-way left it) is not inherited by a new tenant of that id: the tenant gets keys of its own,
// of the algorithm it asks for.
func TestCreateReplacesKeysLeftBehind(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.keys.Ensure(ctx, "acme", keys.EdDSA); err != nil {
		t.Fatal(err)
	}
	left, err := e.keys.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	tn := newTenant()
	tn.Algorithm = keys.ES256
	if _, _, err := e.svc.Create(ctx, tn); err != nil {
		t.Fatal(err)
	}
	fresh, err := keys.NewManager(e.store.Store, e.kek, e.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fresh.Keys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range got {
		if k.Algorithm != keys.ES256 {
			t.Errorf("key %s of the new tenant is %s, want ES256", k.ID, k.Algorithm)
		}
		for _, l := range left {
			if k.ID == l.ID {
				t.Errorf("the new tenant inherited key %s left behind", k.ID)
			}
		}
	}
}
