package tenant_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// issuerEnv is a tenant service over one backend, with the store underneath for the records
// that the tests write or read directly.
type issuerEnv struct {
	ctx context.Context
	st  tenant.Store
	svc *tenant.Service
}

func (e *issuerEnv) create(id, issuer string) error {
	return e.svc.CreateTenant(e.ctx, &tenant.Tenant{ID: id, Issuer: issuer})
}

func (e *issuerEnv) mustCreate(t *testing.T, id, issuer string) {
	t.Helper()
	if err := e.create(id, issuer); err != nil {
		t.Fatalf("CreateTenant(%s, %s): %v", id, issuer, err)
	}
}

// refused checks that err refuses a tenant under the issuer of holder, naming holder, as the
// scan-based check did.
func refused(t *testing.T, err error, holder string) {
	t.Helper()
	if !errors.Is(err, tenant.ErrInvalid) || !strings.Contains(err.Error(), fmt.Sprintf("tenant %q", holder)) {
		t.Fatalf("CreateTenant under %s's issuer: %v, want ErrInvalid naming %s", holder, err, holder)
	}
}

// holder returns the tenant that issuer's claim names, and "" when there is no claim.
func (e *issuerEnv) holder(t *testing.T, issuer string) string {
	t.Helper()
	id, _, found, err := tenant.ClaimHolder(e.ctx, e.st, issuer)
	if err != nil {
		t.Fatalf("read the claim of %s: %v", issuer, err)
	}
	if !found {
		return ""
	}
	return id
}

// holds checks that issuer's claim names tenant id in the incarnation that is stored.
func (e *issuerEnv) holds(t *testing.T, issuer, id string) {
	t.Helper()
	got, inc, found, err := tenant.ClaimHolder(e.ctx, e.st, issuer)
	if err != nil || !found {
		t.Fatalf("claim of %s: found %v, %v; want one naming %s", issuer, found, err, id)
	}
	tn, err := e.svc.Tenant(e.ctx, id)
	if err != nil {
		t.Fatalf("Tenant(%s): %v", id, err)
	}
	if got != id || inc != tn.Incarnation {
		t.Fatalf("claim of %s names %s (incarnation %q), want %s (incarnation %q)", issuer, got, inc, id, tn.Incarnation)
	}
}

// gone checks that tenant id is not stored.
func (e *issuerEnv) gone(t *testing.T, id string) {
	t.Helper()
	if _, err := e.svc.Tenant(e.ctx, id); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("Tenant(%s) = %v, want ErrNotFound", id, err)
	}
}

// leaveClaim creates tenant id under issuer and removes its record alone, as a deletion that
// failed before it released the claim leaves them.
func (e *issuerEnv) leaveClaim(t *testing.T, id, issuer string) {
	t.Helper()
	e.mustCreate(t, id, issuer)
	if _, err := e.st.DeleteRecord(e.ctx, store.KindTenant, id); err != nil {
		t.Fatal(err)
	}
}

// writeLegacy stores tenant id as the code before issuer claims did: its record alone.
func (e *issuerEnv) writeLegacy(t *testing.T, id, issuer string) {
	t.Helper()
	raw, err := json.Marshal(&tenant.Tenant{ID: id, Issuer: issuer, Algorithm: "EdDSA", CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateRecord(e.ctx, store.KindTenant, id, raw); err != nil {
		t.Fatal(err)
	}
}

// hookedStore runs a hook before a tenant record is created and before an issuer claim is
// deleted, to place concurrent work exactly where a race would hurt.
type hookedStore struct {
	tenant.Store
	// beforeCreateTenant, when set, runs before each creation of a tenant record.
	beforeCreateTenant func()
	// beforeDeleteClaim, when set, runs once before the next deletion of an issuer claim.
	beforeDeleteClaim func()
	// createClaim, when set, answers each creation of an issuer claim instead of the store.
	createClaim func() error
}

func (h *hookedStore) CreateRecord(ctx context.Context, kind, id string, value []byte) error {
	if kind == store.KindTenant && h.beforeCreateTenant != nil {
		h.beforeCreateTenant()
	}
	if kind == store.KindIssuer && h.createClaim != nil {
		return h.createClaim()
	}
	return h.Store.CreateRecord(ctx, kind, id, value)
}

func (h *hookedStore) claimDeleted() {
	if f := h.beforeDeleteClaim; f != nil {
		h.beforeDeleteClaim = nil
		f()
	}
}

func (h *hookedStore) DeleteRecord(ctx context.Context, kind, id string) (bool, error) {
	if kind == store.KindIssuer {
		h.claimDeleted()
	}
	return h.Store.DeleteRecord(ctx, kind, id)
}

func (h *hookedStore) DeleteRecordIf(ctx context.Context, kind, id string, value []byte) (bool, error) {
	if kind == store.KindIssuer {
		h.claimDeleted()
	}
	// As a store across a network does (the in-memory one never looks).
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return h.Store.DeleteRecordIf(ctx, kind, id, value)
}

// eachBackend runs test on a fresh issuerEnv of each backend, whose service goes through a
// hookedStore.
func eachBackend(t *testing.T, test func(t *testing.T, e *issuerEnv, hs *hookedStore)) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			inner, _ := open(t)
			hs := &hookedStore{Store: inner}
			e := &issuerEnv{ctx: context.Background(), st: inner, svc: tenant.NewService(hs, "", storetest.NewClock(t0).Now)}
			test(t, e, hs)
		})
	}
}

// TestCreateTenantConcurrentlyUnderOneIssuer: of creations of different tenants under one issuer
// at once, exactly one succeeds and the others are refused naming it, whether the issuer was
// free or held by a claim left behind by a failed deletion, which they all race to take over.
// Every creation is held until all have got as far as creating their tenant record, so that they
// overlap as much as they can: a check that reads the tenants before creating lets them all
// through.
func TestCreateTenantConcurrentlyUnderOneIssuer(t *testing.T) {
	const n, rounds = 8, 6
	eachBackend(t, func(t *testing.T, e *issuerEnv, hs *hookedStore) {
		for round := range rounds {
			issuer := fmt.Sprintf("https://round-%d.example", round)
			if round%2 == 1 {
				e.leaveClaim(t, fmt.Sprintf("gone-%d", round), issuer)
			}
			var arrived sync.WaitGroup
			arrived.Add(n)
			hs.beforeCreateTenant = func() {
				arrived.Done()
				arrived.Wait()
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = e.create(fmt.Sprintf("r%d-t%d", round, i), issuer)
				}()
			}
			wg.Wait()
			hs.beforeCreateTenant = nil

			var won []string
			for i, err := range errs {
				if err == nil {
					won = append(won, fmt.Sprintf("r%d-t%d", round, i))
				}
			}
			if len(won) != 1 {
				t.Fatalf("round %d: %d of %d creations under one issuer succeeded (%v), want exactly 1; errors: %v", round, len(won), n, won, errs)
			}
			for _, err := range errs {
				if err != nil {
					refused(t, err, won[0])
				}
			}
			all, _, err := e.svc.ListTenants(e.ctx, 1000, "")
			if err != nil {
				t.Fatal(err)
			}
			var under []string
			for _, tn := range all {
				if tn.Issuer == issuer {
					under = append(under, tn.ID)
				}
			}
			if !reflect.DeepEqual(under, won) {
				t.Fatalf("round %d: tenants stored under the issuer = %v, want %v", round, under, won)
			}
			e.holds(t, issuer, won[0])
		}
	})
}

// TestIssuerClaims checks what a claim does in each state it can be found in, and what deletion
// and creation leave behind.
func TestIssuerClaims(t *testing.T) {
	const x, y = "https://x.example", "https://y.example"
	tests := []struct {
		name string
		run  func(t *testing.T, e *issuerEnv)
	}{
		{"LiveTenantHoldsItsIssuer", func(t *testing.T, e *issuerEnv) {
			e.mustCreate(t, "a", x)
			refused(t, e.create("b", x), "a")
			e.gone(t, "b")
			e.holds(t, x, "a")
		}},
		{"ClaimOfADeletedTenantIsFree", func(t *testing.T, e *issuerEnv) {
			e.leaveClaim(t, "a", x)
			e.mustCreate(t, "b", x)
			e.holds(t, x, "b")
			refused(t, e.create("c", x), "b")
		}},
		{"ClaimOfAnEarlierIncarnationIsFree", func(t *testing.T, e *issuerEnv) {
			// a's claim on x is left behind, and a is created again under y.
			e.leaveClaim(t, "a", x)
			e.mustCreate(t, "a", y)
			e.mustCreate(t, "b", x)
			e.holds(t, x, "b")
			e.holds(t, y, "a")
		}},
		{"IDTakenUnderAnotherIssuer", func(t *testing.T, e *issuerEnv) {
			e.mustCreate(t, "a", x)
			if err := e.create("a", y); !errors.Is(err, store.ErrExists) {
				t.Fatalf("CreateTenant of a taken id: %v, want store.ErrExists", err)
			}
			if h := e.holder(t, y); h != "" {
				t.Fatalf("the refused creation left a claim of %s by %s", y, h)
			}
			e.holds(t, x, "a")
			e.mustCreate(t, "b", y)
		}},
		{"RetryOfACreation", func(t *testing.T, e *issuerEnv) {
			e.mustCreate(t, "a", x)
			if err := e.create("a", x); !errors.Is(err, store.ErrExists) {
				t.Fatalf("CreateTenant again: %v, want store.ErrExists", err)
			}
			e.holds(t, x, "a")
		}},
		{"RetryAfterACreationStoppedBeforeItsClaim", func(t *testing.T, e *issuerEnv) {
			// The record was stored, then the process ended: the retry claims for it.
			e.writeLegacy(t, "a", x)
			if err := e.create("a", x); !errors.Is(err, store.ErrExists) {
				t.Fatalf("CreateTenant again: %v, want store.ErrExists", err)
			}
			e.holds(t, x, "a")
			refused(t, e.create("b", x), "a")
		}},
		{"DeleteThenCreateTheSameTenantAgain", func(t *testing.T, e *issuerEnv) {
			e.mustCreate(t, "a", x)
			if err := e.svc.DeleteTenant(e.ctx, "a"); err != nil {
				t.Fatal(err)
			}
			if h := e.holder(t, x); h != "" {
				t.Fatalf("claim of %s after its tenant's deletion names %s, want none", x, h)
			}
			e.mustCreate(t, "a", x)
			e.holds(t, x, "a")
		}},
		{"DeleteThenCreateAnotherTenant", func(t *testing.T, e *issuerEnv) {
			e.mustCreate(t, "a", x)
			if err := e.svc.DeleteTenant(e.ctx, "a"); err != nil {
				t.Fatal(err)
			}
			e.mustCreate(t, "b", x)
			e.holds(t, x, "b")
			refused(t, e.create("a", x), "b")
			e.gone(t, "a")
		}},
		{"DeleteOfATenantWhoseClaimWasTakenOver", func(t *testing.T, e *issuerEnv) {
			// A tenant's claim is taken over only once it is gone; a record of that id written
			// again without a claim (a legacy one) must not release the new holder's claim.
			e.leaveClaim(t, "a", x)
			e.mustCreate(t, "b", x)
			e.writeLegacy(t, "a", x)
			if err := e.svc.DeleteTenant(e.ctx, "a"); err != nil {
				t.Fatal(err)
			}
			e.holds(t, x, "b")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, e *issuerEnv, _ *hookedStore) { tt.run(t, e) })
		})
	}
}

// TestCreateTenantRemovesItsRecordWhenTheClaimFails: a creation whose claim fails, even because
// its caller went away, leaves no tenant record behind, which would hold the issuer unclaimed.
func TestCreateTenantRemovesItsRecordWhenTheClaimFails(t *testing.T) {
	const x = "https://x.example"
	tests := []struct {
		name string
		// fail makes the claim fail, given the cancellation of the creation's context.
		fail func(cancel context.CancelFunc) error
		want error
	}{
		{"StoreUnavailable", func(context.CancelFunc) error { return store.ErrUnavailable }, store.ErrUnavailable},
		{"CallerGone", func(cancel context.CancelFunc) error { cancel(); return context.Canceled }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, e *issuerEnv, hs *hookedStore) {
				ctx, cancel := context.WithCancel(e.ctx)
				defer cancel()
				hs.createClaim = func() error { return tt.fail(cancel) }
				err := e.svc.CreateTenant(ctx, &tenant.Tenant{ID: "a", Issuer: x})
				hs.createClaim = nil
				if !errors.Is(err, tt.want) || errors.Is(err, tenant.ErrInvalid) {
					t.Fatalf("CreateTenant with a failing claim: %v, want %v", err, tt.want)
				}
				e.gone(t, "a")
				if h := e.holder(t, x); h != "" {
					t.Fatalf("claim of %s by %s after a failed claim", x, h)
				}
				e.mustCreate(t, "a", x)
				e.holds(t, x, "a")
			})
		})
	}
}

// TestDeleteTenantKeepsAClaimTakenMeanwhile: between a deletion's removal of the tenant record
// and its release of the claim, the claim is free, and a creation may take it; the release must
// then leave it to that creation, whether it is of another tenant or of the same id again.
func TestDeleteTenantKeepsAClaimTakenMeanwhile(t *testing.T) {
	const x = "https://x.example"
	for _, again := range []string{"b", "a"} {
		t.Run("CreatedMeanwhile-"+again, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, e *issuerEnv, hs *hookedStore) {
				e.mustCreate(t, "a", x)
				other := tenant.NewService(e.st, "", storetest.NewClock(t0).Now)
				hs.beforeDeleteClaim = func() {
					if err := other.CreateTenant(e.ctx, &tenant.Tenant{ID: again, Issuer: x}); err != nil {
						t.Errorf("CreateTenant(%s) during the deletion of a: %v", again, err)
					}
				}
				if err := e.svc.DeleteTenant(e.ctx, "a"); err != nil {
					t.Fatal(err)
				}
				if hs.beforeDeleteClaim != nil {
					t.Fatal("the deletion did not release the claim")
				}
				e.holds(t, x, again)
				refused(t, e.create("c", x), again)
			})
		})
	}
}

// TestClaimIssuers: tenants stored before issuers were claimed get their claims at once, the
// first of two sharing an issuer keeps it and the other is reported, claims left by failed
// deletions go, and a second run changes nothing.
func TestClaimIssuers(t *testing.T) {
	const x, y, z = "https://x.example", "https://y.example", "https://z.example"
	eachBackend(t, func(t *testing.T, e *issuerEnv, _ *hookedStore) {
		e.writeLegacy(t, "beta", x)
		e.writeLegacy(t, "alpha", x)
		e.writeLegacy(t, "gamma", y)
		e.mustCreate(t, "delta", "https://delta.example")
		e.leaveClaim(t, "gone", z)

		claimed, released, conflicts, err := e.svc.ClaimIssuers(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		wantConflicts := []tenant.IssuerConflict{{Issuer: x, Holder: "alpha", Tenant: "beta"}}
		if claimed != 2 || released != 1 || !reflect.DeepEqual(conflicts, wantConflicts) {
			t.Fatalf("ClaimIssuers = %d claimed, %d released, conflicts %+v; want 2, 1, %+v", claimed, released, conflicts, wantConflicts)
		}
		e.holds(t, x, "alpha")
		e.holds(t, y, "gamma")
		e.holds(t, "https://delta.example", "delta")
		if h := e.holder(t, z); h != "" {
			t.Fatalf("the claim of the deleted tenant %s is still there", h)
		}

		before, err := e.st.ListRecords(e.ctx, store.KindIssuer, "")
		if err != nil {
			t.Fatal(err)
		}
		claimed, released, conflicts, err = e.svc.ClaimIssuers(e.ctx)
		if err != nil || claimed != 0 || released != 0 || !reflect.DeepEqual(conflicts, wantConflicts) {
			t.Fatalf("ClaimIssuers again = %d claimed, %d released, conflicts %+v, %v; want 0, 0, %+v", claimed, released, conflicts, err, wantConflicts)
		}
		after, err := e.st.ListRecords(e.ctx, store.KindIssuer, "")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("ClaimIssuers again changed the claims: %q, then %q", before, after)
		}

		refused(t, e.create("new", x), "alpha")
		refused(t, e.create("new", y), "gamma")
		e.mustCreate(t, "new", z)
	})
}

// TestIssuerClaimIDs: every valid issuer has a claim id that both stores accept as a record id
// (printable ASCII), distinct issuers distinct ids.
func TestIssuerClaimIDs(t *testing.T) {
	issuers := []string{"https://acme.example", "https://acmé.example", strings.Repeat("i", 256), "a b/c?d=e#f", "https://acme.example/"}
	seen := map[string]string{}
	for _, iss := range issuers {
		id := tenant.IssuerClaimID(iss)
		if len(id) == 0 || len(id) > 200 {
			t.Errorf("claim id of %q is %d bytes long", iss, len(id))
		}
		for _, c := range id {
			if c <= ' ' || c > '~' {
				t.Errorf("claim id %q of %q holds %q", id, iss, c)
			}
		}
		if other, ok := seen[id]; ok {
			t.Errorf("issuers %q and %q share the claim id %q", iss, other, id)
		}
		seen[id] = iss
	}
}
