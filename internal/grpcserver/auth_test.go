package grpcserver

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// fakeAuthn knows the credentials in callers; anything else is refused.
type fakeAuthn map[string]*tenant.Caller

func (f fakeAuthn) Authenticate(_ context.Context, credential string) (*tenant.Caller, error) {
	if c, ok := f[credential]; ok {
		return c, nil
	}
	return nil, tenant.ErrUnauthenticated
}

// methodStream gives a context the full method name that grpc.Method reads.
type methodStream struct{ method string }

func (s methodStream) Method() string             { return s.method }
func (methodStream) SetHeader(metadata.MD) error  { return nil }
func (methodStream) SendHeader(metadata.MD) error { return nil }
func (methodStream) SetTrailer(metadata.MD) error { return nil }
func callCtx(method string, credential ...string) context.Context {
	ctx := grpc.NewContextWithServerTransportStream(context.Background(), methodStream{method})
	if len(credential) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(APIKeyHeader, credential[0]))
	}
	return ctx
}

// countingHandler counts the log records by message and keeps their attributes.
type countingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.records = append(h.records, r.Clone())
	h.mu.Unlock()
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// take returns the records with message msg logged since the last call.
func (h *countingHandler) take(msg string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		if r.Message == msg {
			out = append(out, r)
		}
	}
	h.records = nil
	return out
}

func suppressedOf(r slog.Record) int64 {
	var n int64
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			n = a.Value.Int64()
		}
		return true
	})
	return n
}

// TestAuthFailureLogIsThrottled: however many calls fail authentication, the log gets bursts of
// authFailureLogBurst lines and then authFailureLogRate a second, and the next line written says
// how many were held back (issue 20, item 8). Every call is still refused.
func TestAuthFailureLogIsThrottled(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := &countingHandler{}
	af := authFunc(fakeAuthn{}, slog.New(h), newAuthGuards(func() time.Time { return now }), policyLookup(false))
	method := tokenauthorityv1.TokenService_VerifyToken_FullMethodName
	const calls = 1000
	for i := range calls {
		ctx := callCtx(method, tenant.NewAPIKeyValue())
		if i%2 == 1 {
			ctx = callCtx(method) // no credential at all
		}
		if _, err := af(ctx); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("call %d: %v, want Unauthenticated", i, err)
		}
	}
	lines := h.take("authentication failed")
	if len(lines) != authFailureLogBurst {
		t.Fatalf("%d failed calls logged %d lines, want the burst of %d", calls, len(lines), authFailureLogBurst)
	}
	for _, r := range lines {
		if suppressedOf(r) != 0 {
			t.Errorf("a line of the first burst says %d were suppressed", suppressedOf(r))
		}
	}

	now = now.Add(time.Second)
	for range 10 {
		_, _ = af(callCtx(method, tenant.NewAPIKeyValue()))
	}
	lines = h.take("authentication failed")
	if len(lines) != 1 {
		t.Fatalf("10 failed calls a second later logged %d lines, want 1", len(lines))
	}
	if got, want := suppressedOf(lines[0]), int64(calls-authFailureLogBurst); got != want {
		t.Errorf("the next line says %d were suppressed, want %d", got, want)
	}
}

// TestAdminWritesAreRateLimitedPerKey: the admin writes of one key share a bucket of
// adminWriteLimit; beyond it they get ResourceExhausted with the time to retry, while another
// key, the master credential and the key's reads are not held back.
func TestAdminWritesAreRateLimitedPerKey(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	acme := &tenant.Tenant{ID: "acme"}
	authn := fakeAuthn{
		"k1":     {KeyID: "k1", Tenant: acme, Roles: []tenant.Role{tenant.RoleAdmin}},
		"k2":     {KeyID: "k2", Tenant: acme, Roles: []tenant.Role{tenant.RoleAdmin}},
		"master": {Master: true},
	}
	af := authFunc(authn, discardLogger(), newAuthGuards(func() time.Time { return now }), policyLookup(false))
	var keyWrites []string
	for m := range adminWrites {
		if policies[m].roles != nil {
			keyWrites = append(keyWrites, m)
		}
	}
	call := func(method, key string) error {
		_, err := af(callCtx(method, key))
		return err
	}
	for i := range adminWriteLimit.Burst {
		if err := call(keyWrites[i%len(keyWrites)], "k1"); err != nil {
			t.Fatalf("write %d of k1 within the burst: %v", i+1, err)
		}
	}
	for _, m := range keyWrites {
		err := call(m, "k1")
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "retry in") {
			t.Errorf("%s by k1 beyond the burst: %v, want ResourceExhausted with a retry hint", m, err)
		}
	}
	if err := call(tokenauthorityv1.AdminService_ListApiKeys_FullMethodName, "k1"); err != nil {
		t.Errorf("a read by k1 beyond its write limit: %v", err)
	}
	if err := call(tokenauthorityv1.AdminService_CreateApiKey_FullMethodName, "k2"); err != nil {
		t.Errorf("a write by another key: %v", err)
	}
	// The master credential has a bucket of its own, with the same limit.
	for i := range adminWriteLimit.Burst + 1 {
		err := call(tokenauthorityv1.AdminService_DeleteTenant_FullMethodName, "master")
		if want := i < adminWriteLimit.Burst; want != (err == nil) {
			t.Fatalf("write %d of the master credential: %v", i+1, err)
		}
	}
	now = now.Add(time.Duration(float64(time.Second) / adminWriteLimit.PerSecond))
	if err := call(tokenauthorityv1.AdminService_RotateSigningKey_FullMethodName, "k1"); err != nil {
		t.Errorf("a write by k1 once a token has refilled: %v", err)
	}
	if err := call(tokenauthorityv1.AdminService_RotateSigningKey_FullMethodName, "k1"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a second write by k1: %v, want ResourceExhausted", err)
	}
}

// TestAdminWritesListsEveryWrite: every AdminService method that creates, rotates, sets, deletes
// or withdraws is rate-limited, and no other method is.
func TestAdminWritesListsEveryWrite(t *testing.T) {
	sd := tokenauthorityv1.AdminService_ServiceDesc
	writes := 0
	for _, m := range sd.Methods {
		full := "/" + sd.ServiceName + "/" + m.MethodName
		write := false
		for _, verb := range []string{"Create", "Rotate", "Set", "Delete", "Withdraw"} {
			write = write || strings.HasPrefix(m.MethodName, verb)
		}
		if write {
			writes++
		}
		if adminWrites[full] != write {
			t.Errorf("%s: rate-limited as a write = %v, want %v", full, adminWrites[full], write)
		}
	}
	if writes != len(adminWrites) {
		t.Errorf("adminWrites lists %d methods, the service has %d writes", len(adminWrites), writes)
	}
}
