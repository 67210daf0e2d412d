package grpcserver

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// waitLimit bounds every wait of these tests for something that must happen; reaching it is a
// failure, never a synchronisation.
const waitLimit = 15 * time.Second

// testWatch reads one WatchRevocations stream in the background.
type testWatch struct {
	msgs chan *tokenauthorityv1.WatchRevocationsResponse
	errs chan error
}

// openWatch opens a stream from now on r with key and waits until it is live.
func openWatch(t *testing.T, r *replica, key testKey) *testWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(key.ctx())
	t.Cleanup(cancel)
	stream, err := tokenauthorityv1.NewTokenServiceClient(r.conn).WatchRevocations(ctx, &tokenauthorityv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	w := &testWatch{msgs: make(chan *tokenauthorityv1.WatchRevocationsResponse, 1024), errs: make(chan error, 1)}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				w.errs <- err
				return
			}
			w.msgs <- m
		}
	}()
	select {
	case m := <-w.msgs:
		if m.GetKind() != tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED {
			t.Fatalf("first message %v, want the live marker", m)
		}
	case err := <-w.errs:
		t.Fatalf("stream ended before it was live: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("stream not live")
	}
	return w
}

// event returns the next event, skipping markers.
func (w *testWatch) event(t *testing.T) *tokenauthorityv1.WatchRevocationsResponse {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-w.msgs:
			if m.GetKind() != tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED {
				return m
			}
		case err := <-w.errs:
			t.Fatalf("stream ended: %v", err)
		case <-deadline:
			t.Fatal("no event")
		}
	}
}

// end waits for the stream's end and returns its error; a message for which forbidden holds fails
// the test at once.
func (w *testWatch) end(t *testing.T, forbidden func(*tokenauthorityv1.WatchRevocationsResponse) bool) error {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		select {
		case m := <-w.msgs:
			if forbidden(m) {
				t.Fatalf("the stream received %v", m)
			}
		case err := <-w.errs:
			return err
		case <-deadline:
			t.Fatal("the stream is still open")
		}
	}
}

// tick has one revocation stream of r re-check its credential.
func (r *replica) tick(t *testing.T) {
	t.Helper()
	select {
	case r.ticks <- time.Time{}:
	case <-time.After(waitLimit):
		t.Fatal("no stream took the tick")
	}
}

// recheckEnv is two replicas over one store, a tenant and a key of it with every role.
type recheckEnv struct {
	b      *backend
	here   *replica // where the test acts
	there  *replica // another replica
	key    testKey
	admin  tokenauthorityv1.AdminServiceClient
	tokens tokenauthorityv1.TokenServiceClient

	mu sync.Mutex
	// foreign is the session id of the tenant created again under the same id, once issued.
	foreign string
}

func (e *recheckEnv) setForeign(sid string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.foreign = sid
}

func (e *recheckEnv) isForeign(m *tokenauthorityv1.WatchRevocationsResponse) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.foreign != "" && m.GetSessionId() == e.foreign
}

// revokeSession opens a session with key and revokes it, through here, and returns its id.
func (e *recheckEnv) revokeSession(t *testing.T, key testKey, before func(sid string)) string {
	t.Helper()
	pair := must(e.tokens.IssueToken(key.ctx(), &tokenauthorityv1.IssueTokenRequest{Subject: "mallory"}))
	before(pair.GetSessionId())
	must(e.tokens.RevokeToken(key.ctx(), &tokenauthorityv1.RevokeTokenRequest{
		Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: pair.GetSessionId()}}))
	return pair.GetSessionId()
}

// TestWatchEndsWhenItsCredentialDoes checks that a WatchRevocations stream ends with
// Unauthenticated once its API key no longer admits it: at once when this replica deletes or
// rotates the key or deletes the tenant, at the next re-check when another replica does, and
// before any event of a tenant created again under the same id.
func TestWatchEndsWhenItsCredentialDoes(t *testing.T) {
	tests := []struct {
		name string
		// onThere runs the stream on the other replica.
		onThere bool
		// act ends (or, with an overlap, will end) the stream's credential.
		act func(t *testing.T, e *recheckEnv)
		// until, when not nil, is what must happen after act before the stream ends (re-checks,
		// time); nil means at once.
		until func(t *testing.T, e *recheckEnv, w *testWatch)
	}{
		{name: "key deleted here", act: func(_ *testing.T, e *recheckEnv) {
			must(e.admin.DeleteApiKey(e.key.ctx(), &tokenauthorityv1.DeleteApiKeyRequest{KeyId: e.key.id}))
		}},
		{name: "key rotated without overlap here", act: func(_ *testing.T, e *recheckEnv) {
			must(e.admin.RotateApiKey(e.key.ctx(), &tokenauthorityv1.RotateApiKeyRequest{KeyId: e.key.id, Overlap: durationpb.New(0)}))
		}},
		{name: "tenant deleted here", act: func(_ *testing.T, e *recheckEnv) {
			must(e.admin.DeleteTenant(withAPIKey(context.Background(), testMasterKey), &tokenauthorityv1.DeleteTenantRequest{TenantId: "acme"}))
		}},
		{name: "key rotated with an overlap that runs out", act: func(_ *testing.T, e *recheckEnv) {
			must(e.admin.RotateApiKey(e.key.ctx(), &tokenauthorityv1.RotateApiKeyRequest{KeyId: e.key.id, Overlap: durationpb.New(time.Hour)}))
		}, until: func(t *testing.T, e *recheckEnv, w *testWatch) {
			// Within the overlap the old value still admits the stream: two ticks make sure that
			// a re-check ran after the rotation, and the stream still delivers.
			e.here.tick(t)
			e.here.tick(t)
			sid := e.revokeSession(t, e.key, func(string) {})
			if m := w.event(t); m.GetSessionId() != sid {
				t.Fatalf("event %v, want the session %s revoked", m, sid)
			}
			e.b.clock.Advance(time.Hour + time.Second)
			e.here.tick(t)
		}},
		{name: "key deleted on another replica", onThere: true, act: func(_ *testing.T, e *recheckEnv) {
			must(e.admin.DeleteApiKey(e.key.ctx(), &tokenauthorityv1.DeleteApiKeyRequest{KeyId: e.key.id}))
		}, until: func(t *testing.T, e *recheckEnv, _ *testWatch) {
			// The other replica trusts its cached key record for its life, then reads the store.
			e.b.clock.Advance(tenant.DefaultCacheTTL + time.Second)
			e.there.tick(t)
		}},
		{name: "tenant deleted and created again on another replica", onThere: true, act: func(t *testing.T, e *recheckEnv) {
			must(e.admin.DeleteTenant(withAPIKey(context.Background(), testMasterKey), &tokenauthorityv1.DeleteTenantRequest{TenantId: "acme"}))
			next := newTenant(t, e.here, "acme")
			e.revokeSession(t, next, e.setForeign)
		}},
		{name: "tenant created again under the same key, its deletion unannounced", onThere: true, act: func(t *testing.T, e *recheckEnv) {
			// As a development bootstrap does: the same key value registered again for a new
			// tenant of the same id. Going around the admin service, the deletion leaves no event
			// in the log: only the incarnation tells the tenants apart.
			ctx := context.Background()
			if err := e.here.tenants.DeleteTenant(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
			if err := e.here.tenants.CreateTenant(ctx, &tenant.Tenant{ID: "acme", Issuer: "urn:test:acme"}); err != nil {
				t.Fatal(err)
			}
			must(e.here.tenants.RegisterAPIKey(ctx, "acme", "same value", tenant.AllRoles, e.key.value))
		}, until: func(t *testing.T, e *recheckEnv, _ *testWatch) {
			e.b.clock.Advance(tenant.DefaultCacheTTL + time.Second)
			e.there.tick(t)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend()
			e := &recheckEnv{b: b, here: b.replica(t, nil), there: b.replica(t, nil)}
			e.admin = tokenauthorityv1.NewAdminServiceClient(e.here.conn)
			e.tokens = tokenauthorityv1.NewTokenServiceClient(e.here.conn)
			e.key = newTenant(t, e.here, "acme")
			on := e.here
			if tt.onThere {
				on = e.there
			}
			w := openWatch(t, on, e.key)
			tt.act(t, e)
			if tt.until != nil {
				tt.until(t, e, w)
			}
			err := w.end(t, e.isForeign)
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("stream ended with %v, want Unauthenticated", err)
			}
		})
	}
}

// TestWatchStartsFromTheStore checks that a stream does not start on this replica's cached key
// record: once another replica has deleted the key, no new stream starts here, even while unary
// calls still pass on the cached record.
func TestWatchStartsFromTheStore(t *testing.T) {
	b := newBackend()
	here, there := b.replica(t, nil), b.replica(t, nil)
	key := newTenant(t, here, "acme")
	keysThere := func() error {
		_, err := tokenauthorityv1.NewTokenServiceClient(there.conn).ListPublicKeys(key.ctx(), &tokenauthorityv1.ListPublicKeysRequest{})
		return err
	}
	if err := keysThere(); err != nil { // caches the key there
		t.Fatal(err)
	}
	must(tokenauthorityv1.NewAdminServiceClient(here.conn).DeleteApiKey(key.ctx(), &tokenauthorityv1.DeleteApiKeyRequest{KeyId: key.id}))
	if err := keysThere(); err != nil {
		t.Fatalf("a unary call on the other replica within its cache's life: %v; the test needs the cached key", err)
	}
	stream, err := tokenauthorityv1.NewTokenServiceClient(there.conn).WatchRevocations(key.ctx(), &tokenauthorityv1.WatchRevocationsRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a stream opened on the other replica after the key's deletion: %v, want Unauthenticated", err)
	}
}
