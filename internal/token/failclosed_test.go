package token_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// downStore is a store that stops answering when down is set, as a Redis that is unreachable.
type downStore struct {
	token.Store
	down atomic.Bool
}

func (s *downStore) CheckAccess(ctx context.Context, tenant, sessionID, jti string) (store.AccessState, error) {
	if s.down.Load() {
		return store.AccessState{}, fmt.Errorf("%w: connection refused", store.ErrUnavailable)
	}
	return s.Store.CheckAccess(ctx, tenant, sessionID, jti)
}

// TestVerifyFailsClosedWhenTheStoreCannotAnswer: a token that was active a moment ago, whose
// signature check is cached, is not reported active while the store cannot say whether it was
// revoked; the call fails (Unavailable at the API) instead of answering.
func TestVerifyFailsClosedWhenTheStoreCannotAnswer(t *testing.T) {
	var st *downStore
	f := newFixtureWith(t, func(c *token.Config) {
		st = &downStore{Store: c.Store}
		c.Store = st
	})
	tok := f.issue(t, nil).AccessToken
	if v := f.verify(t, tok, nil); !v.Active {
		t.Fatalf("fresh token inactive: %v", v.Reason)
	}
	st.down.Store(true)
	for _, aud := range []string{"", "orders"} {
		v, err := f.svc.Verify(context.Background(), token.VerifyRequest{Tenant: f.tenant, Token: tok, Audience: aud})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("Verify (audience %q) with the store down: err = %v, want ErrUnavailable", aud, err)
		}
		if v != nil {
			t.Errorf("Verify (audience %q) with the store down answered %+v; want no answer", aud, v)
		}
	}
	st.down.Store(false)
	if v := f.verify(t, tok, nil); !v.Active {
		t.Errorf("token inactive after the store came back: %v", v.Reason)
	}
}

// TestCachedVerificationStaysWithItsTenant: a token verified (and its signature check cached)
// under its own tenant is judged from scratch under another tenant, which does not hold its key,
// even when both tenants share an issuer: the cache is no path between tenants.
func TestCachedVerificationStaysWithItsTenant(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, nil).AccessToken
	for range 2 { // the second time from the cache
		if v := f.verify(t, tok, nil); !v.Active {
			t.Fatalf("own tenant: inactive (%v)", v.Reason)
		}
		v, err := f.svc.Verify(context.Background(), token.VerifyRequest{Tenant: f.other, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if v.Active || v.Reason != token.ReasonUnknownKey {
			t.Errorf("another tenant: active %v, reason %v; want inactive, %v", v.Active, v.Reason, token.ReasonUnknownKey)
		}
	}
}
