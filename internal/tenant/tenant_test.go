package tenant_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	masterKey = "master-0123456789abcdefghijklmnopqrstuvwxyz"
	tenantID  = "acme"
	// valueLen is the length of an API key value: prefix, 16-character id, dot, 43-character secret.
	valueLen = 64
	// secretStart is where the secret half of an API key value starts.
	secretStart = len(tenant.APIKeyPrefix) + 16 + 1
)

// env is a tenant service over a fresh memory store, reading the time from an injected clock, with
// one tenant.
type env struct {
	ctx   context.Context
	clock *storetest.Clock
	store *memory.Store
	svc   *tenant.Service
}

func newEnv(t testing.TB, master string) *env {
	t.Helper()
	clock := storetest.NewClock(t0)
	s := memory.New(clock.Now)
	e := &env{ctx: context.Background(), clock: clock, store: s, svc: tenant.NewService(s, master, clock.Now)}
	if err := e.svc.CreateTenant(e.ctx, validTenant()); err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	return e
}

func validTenant() *tenant.Tenant {
	return &tenant.Tenant{ID: tenantID, Issuer: "https://acme.example", Algorithm: "EdDSA"}
}

func (e *env) createKey(t testing.TB, roles ...tenant.Role) (*tenant.APIKey, string) {
	t.Helper()
	k, value, err := e.svc.CreateAPIKey(e.ctx, tenantID, "ci", roles)
	if err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	return k, value
}

// replaceLast returns s with its last character replaced by another base64url character.
func replaceLast(s string) string {
	c := byte('A')
	if s[len(s)-1] == c {
		c = 'B'
	}
	return s[:len(s)-1] + string(c)
}

func TestTenantValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(tt *tenant.Tenant)
		wantErr bool
	}{
		{"Valid", func(*tenant.Tenant) {}, false},
		{"OneCharacterID", func(tt *tenant.Tenant) { tt.ID = "a" }, false},
		{"DigitsAndDashes", func(tt *tenant.Tenant) { tt.ID = "0-a-9" }, false},
		{"ID63Long", func(tt *tenant.Tenant) { tt.ID = strings.Repeat("a", 63) }, false},
		{"Issuer256Long", func(tt *tenant.Tenant) { tt.Issuer = strings.Repeat("i", 256) }, false},
		{"ZeroTTLs", func(tt *tenant.Tenant) { tt.MaxAccessTTL, tt.MaxRefreshTTL = 0, 0 }, false},
		{"PositiveTTLs", func(tt *tenant.Tenant) { tt.MaxAccessTTL, tt.MaxRefreshTTL = time.Minute, time.Hour }, false},
		{"EmptyID", func(tt *tenant.Tenant) { tt.ID = "" }, true},
		{"UpperCaseID", func(tt *tenant.Tenant) { tt.ID = "Acme" }, true},
		{"ID64Long", func(tt *tenant.Tenant) { tt.ID = strings.Repeat("a", 64) }, true},
		{"LeadingDash", func(tt *tenant.Tenant) { tt.ID = "-acme" }, true},
		{"TrailingDash", func(tt *tenant.Tenant) { tt.ID = "acme-" }, true},
		{"Underscore", func(tt *tenant.Tenant) { tt.ID = "ac_me" }, true},
		{"PathInID", func(tt *tenant.Tenant) { tt.ID = "../x" }, true},
		{"TrailingNewline", func(tt *tenant.Tenant) { tt.ID = "acme\n" }, true},
		{"EmptyIssuer", func(tt *tenant.Tenant) { tt.Issuer = "" }, true},
		{"Issuer257Long", func(tt *tenant.Tenant) { tt.Issuer = strings.Repeat("i", 257) }, true},
		{"NegativeAccessTTL", func(tt *tenant.Tenant) { tt.MaxAccessTTL = -time.Second }, true},
		{"NegativeRefreshTTL", func(tt *tenant.Tenant) { tt.MaxRefreshTTL = -time.Second }, true},
		{"IssuerWithNUL", func(tt *tenant.Tenant) { tt.Issuer = "https://acme.example\x00" }, true},
		{"IssuerWithCRLF", func(tt *tenant.Tenant) { tt.Issuer = "https://acme.example\r\nX-Evil: 1" }, true},
		{"IssuerWithLineSeparator", func(tt *tenant.Tenant) { tt.Issuer = "https://acme.example\u2028" }, true},
		{"IssuerNotUTF8", func(tt *tenant.Tenant) { tt.Issuer = "https://acme.example/\xff" }, true},
		{"IssuerUnicode", func(tt *tenant.Tenant) { tt.Issuer = "https://acmé.example" }, false},
		{"AllowedScopes", func(tt *tenant.Tenant) { tt.AllowedScopes = []string{"orders.read", "orders:write"} }, false},
		{"AllowedScopeWithNBSP", func(tt *tenant.Tenant) { tt.AllowedScopes = []string{"orders.read\u00a0orders.write"} }, true},
		{"AllowedScopeWithSpace", func(tt *tenant.Tenant) { tt.AllowedScopes = []string{"a b"} }, true},
		{"AllowedScopeEmpty", func(tt *tenant.Tenant) { tt.AllowedScopes = []string{""} }, true},
		{"AllowedAudienceWithNewline", func(tt *tenant.Tenant) { tt.AllowedAudiences = []string{"orders\n"} }, true},
		{"AllowedAudienceEmpty", func(tt *tenant.Tenant) { tt.AllowedAudiences = []string{""} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn := validTenant()
			tt.edit(tn)
			err := tn.Validate()
			if tt.wantErr && !errors.Is(err, tenant.ErrInvalid) {
				t.Errorf("Validate(%+v) = %v, want ErrInvalid", tn, err)
			}
			if !tt.wantErr && err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tn, err)
			}
		})
	}
}

func TestCreateTenantRejectsInvalidAndDuplicate(t *testing.T) {
	e := newEnv(t, "")
	bad := validTenant()
	bad.ID = "Bad"
	if err := e.svc.CreateTenant(e.ctx, bad); !errors.Is(err, tenant.ErrInvalid) {
		t.Errorf("CreateTenant of an invalid tenant: %v, want ErrInvalid", err)
	}
	if err := e.svc.CreateTenant(e.ctx, validTenant()); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateTenant of an existing id: %v, want store.ErrExists", err)
	}
	got, err := e.svc.Tenant(e.ctx, tenantID)
	if err != nil {
		t.Fatalf("Tenant: %v", err)
	}
	if got.Issuer != validTenant().Issuer || !got.CreatedAt.Equal(t0) {
		t.Errorf("Tenant = %+v, want issuer %q created at %v", got, validTenant().Issuer, t0)
	}
	if _, err := e.svc.Tenant(e.ctx, "nope"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("Tenant of an unknown id: %v, want ErrNotFound", err)
	}
}

func TestNewAPIKeyValueIsPrefixedFixedLengthAndRandom(t *testing.T) {
	a, b := tenant.NewAPIKeyValue(), tenant.NewAPIKeyValue()
	for _, v := range []string{a, b} {
		if !strings.HasPrefix(v, "tak_") || len(v) != valueLen {
			t.Errorf("NewAPIKeyValue() = %q, want %d characters starting with tak_", v, valueLen)
		}
	}
	if a == b {
		t.Errorf("two calls of NewAPIKeyValue both returned %q", a)
	}
}

func TestAuthenticateReturnsCallerOfAPIKey(t *testing.T) {
	e := newEnv(t, masterKey)
	roles := []tenant.Role{tenant.RoleIssue, tenant.RoleVerify}
	k, value := e.createKey(t, roles...)

	c, err := e.svc.Authenticate(e.ctx, value)
	if err != nil {
		t.Fatalf("Authenticate with the created value: %v", err)
	}
	if c.Master || c.KeyID != k.ID || c.Tenant == nil || c.Tenant.ID != tenantID || !slices.Equal(c.Roles, roles) {
		t.Errorf("Authenticate = %+v, want key %q of tenant %q with roles %v", c, k.ID, tenantID, roles)
	}
	for _, r := range tenant.AllRoles {
		if want := slices.Contains(roles, r); c.Has(r) != want {
			t.Errorf("Caller.Has(%s) = %v, want %v", r, c.Has(r), want)
		}
	}
}

func TestAuthenticateRejectsWrongCredentials(t *testing.T) {
	e := newEnv(t, masterKey)
	_, value := e.createKey(t, tenant.RoleIssue)
	tests := []struct {
		name       string
		credential string
	}{
		{"LastCharacterAltered", replaceLast(value)},
		{"SameIDOtherSecret", value[:secretStart] + tenant.NewAPIKeyValue()[secretStart:]},
		{"WellFormedUnknown", tenant.NewAPIKeyValue()},
		{"Empty", ""},
		{"Garbage", "not an API key"},
		{"PrefixOnly", tenant.APIKeyPrefix},
		{"NoPrefix", "xyz_" + value[len(tenant.APIKeyPrefix):]},
		{"NoSeparator", value[:secretStart-1] + "_" + value[secretStart:]},
		{"NotBase64", value[:secretStart] + strings.Repeat("!", valueLen-secretStart)},
		{"TrailingNewline", value + "\n"},
		{"Truncated", value[:valueLen-1]},
		{"MasterNearMiss", masterKey[:len(masterKey)-1]},
		{"MasterWithNewline", masterKey + "\n"},
		{"MasterUpperCase", strings.ToUpper(masterKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.svc.Authenticate(e.ctx, tt.credential)
			if !errors.Is(err, tenant.ErrUnauthenticated) || c != nil {
				t.Errorf("Authenticate(%q) = %+v, %v; want ErrUnauthenticated", tt.credential, c, err)
			}
		})
	}
}

func TestAuthenticateMasterKey(t *testing.T) {
	tests := []struct {
		name       string
		master     string
		credential string
		wantMaster bool
	}{
		{"MasterKey", masterKey, masterKey, true},
		{"NearMiss", masterKey, masterKey + "x", false},
		{"EmptyWhenMasterSet", masterKey, "", false},
		{"NoMasterEmptyCredential", "", "", false},
		{"NoMasterOtherCredential", "", masterKey, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.master)
			c, err := e.svc.Authenticate(e.ctx, tt.credential)
			if tt.wantMaster {
				if err != nil || c == nil || !c.Master || c.Tenant != nil || len(c.Roles) != 0 {
					t.Errorf("Authenticate(master) = %+v, %v; want Caller{Master: true}", c, err)
				}
				return
			}
			if !errors.Is(err, tenant.ErrUnauthenticated) || c != nil {
				t.Errorf("Authenticate(%q) with master %q = %+v, %v; want ErrUnauthenticated", tt.credential, tt.master, c, err)
			}
		})
	}
}

func TestStoredAPIKeyHoldsNeitherValueNorSecret(t *testing.T) {
	e := newEnv(t, "")
	k, value := e.createKey(t, tenant.RoleAdmin)
	raw, err := e.store.GetRecord(e.ctx, store.KindAPIKey, k.ID)
	if err != nil {
		t.Fatalf("GetRecord(apikey, %q): %v", k.ID, err)
	}
	secret := value[secretStart:]
	decoded, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil {
		t.Fatalf("decode secret: %v", err)
	}
	forms := map[string][]byte{
		"value":                 []byte(value),
		"secret":                []byte(secret),
		"secret bytes":          decoded,
		"secret bytes (base64)": []byte(base64.StdEncoding.EncodeToString(decoded)),
	}
	for what, b := range forms {
		if bytes.Contains(raw, b) {
			t.Errorf("the stored API key record contains the %s", what)
		}
	}
	if !bytes.Contains(raw, []byte(k.ID)) {
		t.Errorf("the stored record %s does not name its id %q", raw, k.ID)
	}
}

func TestRegisterAPIKeyRejectsInvalid(t *testing.T) {
	e := newEnv(t, "")
	tests := []struct {
		name  string
		roles []tenant.Role
		value string
	}{
		{"NilRoles", nil, tenant.NewAPIKeyValue()},
		{"EmptyRoles", []tenant.Role{}, tenant.NewAPIKeyValue()},
		{"UnknownRole", []tenant.Role{"superuser"}, tenant.NewAPIKeyValue()},
		{"UnknownAmongKnown", []tenant.Role{tenant.RoleIssue, "Issue"}, tenant.NewAPIKeyValue()},
		{"MalformedValue", []tenant.Role{tenant.RoleIssue}, "tak_short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "k", tt.roles, tt.value)
			if !errors.Is(err, tenant.ErrInvalid) {
				t.Fatalf("RegisterAPIKey(roles %q) = %+v, %v; want ErrInvalid", tt.roles, k, err)
			}
			if c, err := e.svc.Authenticate(e.ctx, tt.value); !errors.Is(err, tenant.ErrUnauthenticated) {
				t.Errorf("Authenticate with a refused key = %+v, %v; want ErrUnauthenticated", c, err)
			}
		})
	}
}

func TestRegisterAPIKeyAuthenticatesItsValue(t *testing.T) {
	e := newEnv(t, "")
	value := tenant.NewAPIKeyValue()
	k, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "dev", tenant.AllRoles, value)
	if err != nil {
		t.Fatalf("RegisterAPIKey: %v", err)
	}
	if c, err := e.svc.Authenticate(e.ctx, value); err != nil || c.KeyID != k.ID {
		t.Errorf("Authenticate with the registered value = %+v, %v; want key %q", c, err, k.ID)
	}
}

func TestAuthenticateOfKeyOfDeletedTenantIsUnauthenticated(t *testing.T) {
	e := newEnv(t, "")
	_, value := e.createKey(t, tenant.RoleIssue)
	if _, err := e.store.DeleteRecord(e.ctx, store.KindTenant, tenantID); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	if c, err := e.svc.Authenticate(e.ctx, value); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Errorf("Authenticate with a key of a deleted tenant = %+v, %v; want ErrUnauthenticated", c, err)
	}
}

// TestAuthenticateTrustsDeletedKeyForAtMostCacheTTL documents the propagation bound: a replica that
// has read a key keeps accepting it for DefaultCacheTTL after the record is deleted, and no longer.
func TestAuthenticateTrustsDeletedKeyForAtMostCacheTTL(t *testing.T) {
	e := newEnv(t, "")
	k, value := e.createKey(t, tenant.RoleIssue)
	if _, err := e.svc.Authenticate(e.ctx, value); err != nil {
		t.Fatalf("Authenticate before the deletion: %v", err)
	}
	if deleted, err := e.store.DeleteRecord(e.ctx, store.KindAPIKey, k.ID); err != nil || !deleted {
		t.Fatalf("DeleteRecord = %v, %v; want true, nil", deleted, err)
	}

	steps := []struct {
		advance time.Duration
		wantOK  bool
	}{
		{0, true},
		{tenant.DefaultCacheTTL - time.Nanosecond, true},
		{time.Nanosecond, false},
		{time.Hour, false},
	}
	for _, step := range steps {
		e.clock.Advance(step.advance)
		elapsed := e.clock.Now().Sub(t0)
		_, err := e.svc.Authenticate(e.ctx, value)
		switch {
		case step.wantOK && err != nil:
			t.Errorf("%v after the deletion: Authenticate = %v, want the cached key", elapsed, err)
		case !step.wantOK && !errors.Is(err, tenant.ErrUnauthenticated):
			t.Errorf("%v after the deletion: Authenticate = %v, want ErrUnauthenticated", elapsed, err)
		}
	}
}

func TestRegisterAPIKeyReplacesCachedKeyAtOnce(t *testing.T) {
	e := newEnv(t, "")
	_, value := e.createKey(t, tenant.RoleIssue)
	if _, err := e.svc.Authenticate(e.ctx, value); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if _, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "ci", []tenant.Role{tenant.RoleAdmin}, value); err != nil {
		t.Fatalf("RegisterAPIKey: %v", err)
	}
	c, err := e.svc.Authenticate(e.ctx, value)
	if err != nil || !slices.Equal(c.Roles, []tenant.Role{tenant.RoleAdmin}) {
		t.Errorf("Authenticate after re-registering = %+v, %v; want roles [admin]", c, err)
	}
}

func TestAuthenticateConcurrently(t *testing.T) {
	e := newEnv(t, masterKey)
	_, value := e.createKey(t, tenant.RoleIssue)
	credentials := []string{value, masterKey, replaceLast(value), tenant.NewAPIKeyValue(), ""}
	const rounds = 50
	errs := make(chan error, len(credentials)*rounds)
	for range rounds {
		for i, cred := range credentials {
			go func() {
				_, err := e.svc.Authenticate(e.ctx, cred)
				if wantOK := i < 2; wantOK != (err == nil) {
					errs <- fmt.Errorf("Authenticate(credential %d) = %w, want success %v", i, err, wantOK)
					return
				}
				errs <- nil
			}()
		}
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestAllows(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		v       string
		want    bool
	}{
		{"NilListAllowsAnything", nil, "anything", true},
		{"EmptyListAllowsEmpty", []string{}, "", true},
		{"ExactMatch", []string{"read", "write"}, "write", true},
		{"NotListed", []string{"read", "write"}, "admin", false},
		{"PrefixIsNoMatch", []string{"read"}, "rea", false},
		{"ExtensionIsNoMatch", []string{"read"}, "read:all", false},
		{"CaseMatters", []string{"read"}, "READ", false},
		{"EmptyValueNotListed", []string{"read"}, "", false},
		{"ListedEmptyValue", []string{""}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tenant.Allows(tt.allowed, tt.v); got != tt.want {
				t.Errorf("Allows(%q, %q) = %v, want %v", tt.allowed, tt.v, got, tt.want)
			}
		})
	}
}

// fuzzKeyValue is a fixed, well-formed API key value, so that every fuzz worker knows the same key
// and the fuzzer can mutate towards it.
const fuzzKeyValue = "tak_AAAAAAAAAAAAAAAA.0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"

// FuzzAuthenticate checks that no string but the registered key value and the master key
// authenticates, and that none makes Authenticate panic.
func FuzzAuthenticate(f *testing.F) {
	e := newEnv(f, masterKey)
	k, err := e.svc.RegisterAPIKey(e.ctx, tenantID, "fuzz", []tenant.Role{tenant.RoleVerify}, fuzzKeyValue)
	if err != nil {
		f.Fatalf("RegisterAPIKey: %v", err)
	}
	for _, s := range []string{
		fuzzKeyValue, masterKey, "", tenant.APIKeyPrefix, replaceLast(fuzzKeyValue),
		fuzzKeyValue[:valueLen-1], fuzzKeyValue + "=", masterKey[1:], tenant.NewAPIKeyValue(),
		strings.Repeat("\x00", valueLen), "tak_" + strings.Repeat(".", valueLen-4),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, credential string) {
		c, err := e.svc.Authenticate(e.ctx, credential)
		switch credential {
		case fuzzKeyValue:
			if err != nil || c.Master || c.KeyID != k.ID {
				t.Fatalf("Authenticate(key value) = %+v, %v; want key %q", c, err, k.ID)
			}
		case masterKey:
			if err != nil || !c.Master {
				t.Fatalf("Authenticate(master key) = %+v, %v; want master", c, err)
			}
		default:
			if !errors.Is(err, tenant.ErrUnauthenticated) || c != nil {
				t.Fatalf("Authenticate(%q) = %+v, %v; want ErrUnauthenticated", credential, c, err)
			}
		}
	})
}

func TestCreatePrincipalValidatesIdentifier(t *testing.T) {
	e := newEnv(t, "")
	tn, err := e.svc.Tenant(e.ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, name string
		ok       bool
	}{
		{"svc-billing", "Billing", true},
		{"alice@example.com", "", true},
		{"zoë", "Zoë", true},
		{"", "", false},
		{"a/b", "", false},
		{"svc\x00", "", false},
		{"svc\r\nforged: line", "", false},
		{"svc\x1b[31m", "", false}, // a terminal escape in an operator's listing
		{"svc\u2028", "", false},
		{"svc\xff", "", false},
		{"svc-ok", "name\nwith newline", false},
		{strings.Repeat("p", 257), "", false},
	}
	for _, c := range cases {
		err := e.svc.CreatePrincipal(e.ctx, tn, &tenant.Principal{Identifier: c.id, DisplayName: c.name})
		if c.ok && err != nil {
			t.Errorf("CreatePrincipal(%q, %q) = %v, want nil", c.id, c.name, err)
		}
		if !c.ok && !errors.Is(err, tenant.ErrInvalid) {
			t.Errorf("CreatePrincipal(%q, %q) = %v, want ErrInvalid", c.id, c.name, err)
		}
	}
}

func TestCreateTenantRefusesAnIssuerInUse(t *testing.T) {
	e := newEnv(t, "")
	same := &tenant.Tenant{ID: "globex", Issuer: validTenant().Issuer, Algorithm: "EdDSA"}
	if err := e.svc.CreateTenant(e.ctx, same); !errors.Is(err, tenant.ErrInvalid) || !strings.Contains(err.Error(), tenantID) {
		t.Fatalf("CreateTenant with tenant %q's issuer: %v, want ErrInvalid naming it", tenantID, err)
	}
	other := &tenant.Tenant{ID: "globex", Issuer: "https://globex.example", Algorithm: "EdDSA"}
	if err := e.svc.CreateTenant(e.ctx, other); err != nil {
		t.Fatalf("CreateTenant with its own issuer: %v", err)
	}
}

func TestDeleteAPIKeyKeepsTheLastAdminKey(t *testing.T) {
	e := newEnv(t, "")
	admin, _ := e.createKey(t, tenant.RoleAdmin)
	issuer, _ := e.createKey(t, tenant.RoleIssue)
	if err := e.svc.DeleteAPIKey(e.ctx, tenantID, admin.ID); !errors.Is(err, tenant.ErrLastAdminKey) {
		t.Fatalf("deleting the only admin key: %v, want ErrLastAdminKey", err)
	}
	if err := e.svc.DeleteAPIKey(e.ctx, tenantID, issuer.ID); err != nil {
		t.Fatalf("deleting a key without role admin: %v", err)
	}
	second, _ := e.createKey(t, tenant.RoleAdmin, tenant.RoleVerify)
	if err := e.svc.DeleteAPIKey(e.ctx, tenantID, admin.ID); err != nil {
		t.Fatalf("deleting an admin key while another exists: %v", err)
	}
	if err := e.svc.DeleteAPIKey(e.ctx, tenantID, second.ID); !errors.Is(err, tenant.ErrLastAdminKey) {
		t.Fatalf("deleting the admin key left: %v, want ErrLastAdminKey", err)
	}
}

// TestIncarnations checks that each creation of a tenant is a new incarnation, even under the
// same id, and that a record written before incarnations existed still authenticates, as the
// incarnation "".
func TestIncarnations(t *testing.T) {
	e := newEnv(t, "")
	first, err := e.svc.Tenant(e.ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	if first.Incarnation == "" {
		t.Fatal("a created tenant has no incarnation")
	}
	if err := e.svc.DeleteTenant(e.ctx, tenantID); err != nil {
		t.Fatal(err)
	}
	again := validTenant()
	again.Incarnation = first.Incarnation // a caller cannot choose it
	if err := e.svc.CreateTenant(e.ctx, again); err != nil {
		t.Fatal(err)
	}
	second, err := e.svc.Tenant(e.ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	if second.Incarnation == "" || second.Incarnation == first.Incarnation {
		t.Fatalf("incarnation of the tenant created again = %q, first was %q", second.Incarnation, first.Incarnation)
	}

	old := `{"id":"legacy","iss":"https://legacy.example","alg":"EdDSA","created":"2025-01-01T00:00:00Z"}`
	if err := e.store.CreateRecord(e.ctx, store.KindTenant, "legacy", []byte(old)); err != nil {
		t.Fatal(err)
	}
	_, value, err := e.svc.CreateAPIKey(e.ctx, "legacy", "ci", []tenant.Role{tenant.RoleVerify})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.Authenticate(e.ctx, value)
	if err != nil {
		t.Fatalf("a key of a tenant recorded without an incarnation: %v", err)
	}
	if c.Tenant.ID != "legacy" || c.Tenant.Incarnation != "" {
		t.Fatalf("caller's tenant = %+v, want legacy with no incarnation", c.Tenant)
	}
}

// TestAuthenticatePreviousMasterKey: during a rolling change both master keys are accepted, and
// the caller says which one by its fingerprint; the fingerprint reveals neither key nor the hash
// the service compares.
func TestAuthenticatePreviousMasterKey(t *testing.T) {
	const previous = "previous-0123456789abcdefghijklmnopqrstuvwxyz"
	svc := tenant.NewService(memory.New(nil), masterKey, time.Now, tenant.WithPreviousMasterKey(previous))
	ctx := context.Background()
	for _, c := range []struct {
		credential string
		want       string
	}{
		{masterKey, tenant.MasterFingerprint(masterKey)},
		{previous, tenant.MasterFingerprint(previous)},
	} {
		got, err := svc.Authenticate(ctx, c.credential)
		if err != nil || !got.Master || got.MasterFingerprint != c.want {
			t.Fatalf("Authenticate: %+v, %v; want the master caller with fingerprint %s", got, err, c.want)
		}
	}
	if tenant.MasterFingerprint(masterKey) == tenant.MasterFingerprint(previous) {
		t.Fatal("two keys share a fingerprint")
	}
	fp := tenant.MasterFingerprint(masterKey)
	if strings.Contains(masterKey, fp) || len(fp) != 16 {
		t.Fatalf("fingerprint %q", fp)
	}
	if _, err := svc.Authenticate(ctx, previous+"x"); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Fatalf("near miss of the previous key: %v", err)
	}
	// Without the option, the previous key is an unknown credential.
	only := tenant.NewService(memory.New(nil), masterKey, time.Now)
	if _, err := only.Authenticate(ctx, previous); !errors.Is(err, tenant.ErrUnauthenticated) {
		t.Fatalf("previous key without WithPreviousMasterKey: %v", err)
	}
}
