package tenant_test

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// countingEnv is env over a store that counts the service's reads.
func countingEnv(t *testing.T) (*env, *countingStore) {
	t.Helper()
	clock := storetest.NewClock(t0)
	mem := memory.New(clock.Now)
	cs := &countingStore{Store: mem}
	e := &env{ctx: t.Context(), clock: clock, store: mem, svc: tenant.NewService(cs, "", clock.Now)}
	if err := e.svc.CreateTenant(e.ctx, validTenant()); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return e, cs
}

// TestAuthenticateRemembersUnknownKeyIDs: an id that did not authenticate is answered from
// memory for UnknownKeyCacheTTL, as a known key is for DefaultCacheTTL, so that unknown ids cost
// no more store reads than wrong secrets (issue 20, item 8). A store failure is not remembered.
func TestAuthenticateRemembersUnknownKeyIDs(t *testing.T) {
	e, cs := countingEnv(t)
	_, orphanValue := e.createKey(t, tenant.RoleIssue)
	// A key whose tenant is gone does not authenticate either.
	if _, err := e.store.DeleteRecord(e.ctx, store.KindTenant, tenantID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		value string
		reads int // on the first attempt
	}{
		{"UnknownID", tenant.NewAPIKeyValue(), 1},
		{"KeyOfDeletedTenant", orphanValue, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs.take()
			steps := []struct {
				advance time.Duration
				reads   int
			}{
				{0, tt.reads},
				{0, 0},
				{tenant.UnknownKeyCacheTTL - time.Nanosecond, 0},
				{time.Nanosecond, tt.reads}, // the answer has expired: asked again
				{0, 0},
			}
			for i, st := range steps {
				e.clock.Advance(st.advance)
				if _, err := e.svc.Authenticate(e.ctx, tt.value); !errors.Is(err, tenant.ErrUnauthenticated) {
					t.Fatalf("step %d: Authenticate = %v, want ErrUnauthenticated", i, err)
				}
				if _, reads := cs.take(); reads != st.reads {
					t.Errorf("step %d: %d store reads, want %d", i, reads, st.reads)
				}
			}
		})
	}
}

// TestAuthenticateAnswersUnknownIDsAndWrongSecretsAlikeFromMemory: once seen, neither an unknown
// id nor a wrong secret for a known id costs a store read, however often presented.
func TestAuthenticateAnswersUnknownIDsAndWrongSecretsAlikeFromMemory(t *testing.T) {
	e, cs := countingEnv(t)
	_, value := e.createKey(t, tenant.RoleIssue)
	credentials := map[string]string{
		"UnknownID":   tenant.NewAPIKeyValue(),
		"WrongSecret": value[:secretStart] + tenant.NewAPIKeyValue()[secretStart:],
	}
	for _, c := range credentials {
		_, _ = e.svc.Authenticate(e.ctx, c)
	}
	for name, c := range credentials {
		cs.take()
		for range 100 {
			if _, err := e.svc.Authenticate(e.ctx, c); !errors.Is(err, tenant.ErrUnauthenticated) {
				t.Fatalf("%s: Authenticate = %v, want ErrUnauthenticated", name, err)
			}
		}
		if _, reads := cs.take(); reads != 0 {
			t.Errorf("%s: 100 attempts cost %d store reads, want 0", name, reads)
		}
	}
}

// TestAuthenticateOfKeyCreatedUnderARefusedID: a key registered under an id that this replica has
// just refused works here at once; another replica that refused it accepts it once its answer
// expires, within UnknownKeyCacheTTL.
func TestAuthenticateOfKeyCreatedUnderARefusedID(t *testing.T) {
	e := newEnv(t, "")
	other := tenant.NewService(e.store, "", e.clock.Now)
	value := tenant.NewAPIKeyValue()
	for _, svc := range []*tenant.Service{e.svc, other} {
		if _, err := svc.Authenticate(e.ctx, value); !errors.Is(err, tenant.ErrUnauthenticated) {
			t.Fatalf("Authenticate before the key exists = %v, want ErrUnauthenticated", err)
		}
	}
	if _, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "dev", tenant.AllRoles, value); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(e.ctx, value); err != nil {
		t.Errorf("Authenticate on the replica that created the key: %v, want success at once", err)
	}
	if _, err := other.Authenticate(e.ctx, value); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Errorf("Authenticate on another replica within the TTL = %v, want its remembered refusal", err)
	}
	e.clock.Advance(tenant.UnknownKeyCacheTTL)
	if _, err := other.Authenticate(e.ctx, value); err != nil {
		t.Errorf("Authenticate on another replica after UnknownKeyCacheTTL: %v, want success", err)
	}
}

// TestAuthenticateOfDeletedKeyIsRefusedAtOnceHere: the replica that deletes a key refuses it at
// once, and keeps refusing it.
func TestAuthenticateOfDeletedKeyIsRefusedAtOnceHere(t *testing.T) {
	e := newEnv(t, "")
	k, value := e.createKey(t, tenant.RoleIssue)
	if _, err := e.svc.Authenticate(e.ctx, value); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteAPIKey(e.ctx, tenantID, k.ID); err != nil {
		t.Fatal(err)
	}
	for _, advance := range []time.Duration{0, 0, tenant.UnknownKeyCacheTTL, tenant.DefaultCacheTTL} {
		e.clock.Advance(advance)
		if _, err := e.svc.Authenticate(e.ctx, value); !errors.Is(err, tenant.ErrUnauthenticated) {
			t.Errorf("Authenticate of a deleted key = %v, want ErrUnauthenticated", err)
		}
	}
}

// TestAuthenticateCachesNothingReadBeforeAChange: a lookup that read the store before a key was
// registered here, and answers after, does not make this replica remember the old answer.
func TestAuthenticateCachesNothingReadBeforeAChange(t *testing.T) {
	e, cs := countingEnv(t)
	value := tenant.NewAPIKeyValue()
	registered := false
	cs.beforeReturn = func(kind, _ string) {
		if kind != store.KindAPIKey || registered {
			return
		}
		registered = true
		// The lookup has read "no such key"; the key appears before it caches that answer.
		if _, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "dev", tenant.AllRoles, value); err != nil {
			t.Errorf("RegisterAPIKey: %v", err)
		}
	}
	if _, err := e.svc.Authenticate(e.ctx, value); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Fatalf("Authenticate that read the store before the key existed = %v, want ErrUnauthenticated", err)
	}
	if _, err := e.svc.Authenticate(e.ctx, value); err != nil {
		t.Errorf("Authenticate after the key was registered here: %v, want success", err)
	}
}

// TestAuthenticateComparesAsOftenForUnknownIDsAsForWrongSecrets: refusing an unknown id costs the
// same hash comparison as refusing a wrong secret, so that the two take as long.
func TestAuthenticateComparesAsOftenForUnknownIDsAsForWrongSecrets(t *testing.T) {
	e := newEnv(t, "")
	_, value := e.createKey(t, tenant.RoleIssue)
	compares := 0
	t.Cleanup(tenant.SetCompareHash(func(x, y []byte) int {
		compares++
		return subtle.ConstantTimeCompare(x, y)
	}))
	credentials := map[string]string{
		"UnknownID":   tenant.NewAPIKeyValue(),
		"WrongSecret": value[:secretStart] + tenant.NewAPIKeyValue()[secretStart:],
	}
	for name, c := range credentials {
		for round := range 2 { // from the store, then from memory
			compares = 0
			if _, err := e.svc.Authenticate(e.ctx, c); !errors.Is(err, tenant.ErrUnauthenticated) {
				t.Fatalf("%s: Authenticate = %v", name, err)
			}
			if compares != 1 {
				t.Errorf("%s, round %d: %d hash comparisons, want 1", name, round, compares)
			}
		}
	}
}

// TestUnknownKeyCacheIsBounded: a flood of distinct unknown ids never grows the memory of them
// beyond its bound.
func TestUnknownKeyCacheIsBounded(t *testing.T) {
	e := newEnv(t, "")
	for range tenant.MaxUnknownKeys + 100 {
		_, _ = e.svc.Authenticate(e.ctx, tenant.NewAPIKeyValue())
		if n := e.svc.UnknownKeys(); n > tenant.MaxUnknownKeys {
			t.Fatalf("%d unknown ids remembered, want at most %d", n, tenant.MaxUnknownKeys)
		}
	}
	if e.svc.UnknownKeys() == 0 {
		t.Error("no unknown id remembered")
	}
}

// TestAuthenticateRemembersNoStoreFailure: a lookup the store could not answer is an error, not a
// refusal, and the next attempt asks the store again.
func TestAuthenticateRemembersNoStoreFailure(t *testing.T) {
	e, cs := countingEnv(t)
	value := tenant.NewAPIKeyValue()
	cs.fail = fmt.Errorf("test: %w", store.ErrUnavailable)
	if _, err := e.svc.Authenticate(e.ctx, value); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Authenticate while the store fails = %v, want store.ErrUnavailable", err)
	}
	cs.fail = nil
	cs.take()
	if _, err := e.svc.Authenticate(e.ctx, value); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Fatalf("Authenticate once the store answers = %v, want ErrUnauthenticated", err)
	}
	if _, reads := cs.take(); reads != 1 {
		t.Errorf("Authenticate after a store failure made %d store reads, want 1", reads)
	}
}
