package grpcserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// TestListSigningKeysShowsEveryState drives a tenant's keys through rotation, activation,
// withdrawal and expiry on the fake clock, and checks the state and times ListSigningKeys answers
// at each step.
func TestListSigningKeysShowsEveryState(t *testing.T) {
	const prePublish, retention = 10 * time.Minute, time.Hour
	b := newBackend()
	b.keyOpts = []keys.Option{keys.WithPrePublish(prePublish), keys.WithRetention(retention)}
	r := b.replica(t, nil)
	acme := newTenant(t, r, "acme")
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	list := func() []*tokenauthorityv1.SigningKey {
		t.Helper()
		return must(admin.ListSigningKeys(acme.ctx(), &tokenauthorityv1.ListSigningKeysRequest{})).GetKeys()
	}
	first := list()[0].GetKid()
	rotatedAt := b.clock.Now()
	rotated := must(admin.RotateSigningKey(acme.ctx(), &tokenauthorityv1.RotateSigningKeyRequest{})).GetKey()
	if rotated.GetState() != tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_PUBLISHED || rotated.GetCreateTime() == nil {
		t.Errorf("RotateSigningKey answered state %v, create time %v; want PUBLISHED and a time", rotated.GetState(), rotated.GetCreateTime())
	}
	second := rotated.GetKid()
	activation := rotatedAt.Add(prePublish)

	// want describes one key: its kid, state, and which of the optional times are set to what.
	type want struct {
		kid                         string
		state                       tokenauthorityv1.SigningKeyState
		retired, expires, withdrawn time.Time
	}
	steps := []struct {
		name    string
		advance time.Duration
		do      func()
		want    []want
	}{
		{
			name: "pre-published",
			want: []want{
				{kid: first, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE, retired: activation, expires: activation.Add(retention)},
				{kid: second, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_PUBLISHED},
			},
		},
		{
			name:    "activated",
			advance: prePublish,
			want: []want{
				{kid: first, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_RETIRING, retired: activation, expires: activation.Add(retention)},
				{kid: second, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE},
			},
		},
		{
			name:    "the retiring key withdrawn",
			advance: time.Minute,
			do: func() {
				must(admin.WithdrawSigningKey(acme.ctx(), &tokenauthorityv1.WithdrawSigningKeyRequest{Kid: first}))
			},
			want: []want{
				{kid: second, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE},
				{kid: first, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_WITHDRAWN, withdrawn: activation.Add(time.Minute)},
			},
		},
		{
			name:    "the withdrawal forgotten after the retention",
			advance: retention + time.Second,
			want:    []want{{kid: second, state: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE}},
		},
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	pts := func(p interface{ AsTime() time.Time }, set bool) string {
		if !set {
			return "-"
		}
		return ts(p.AsTime())
	}
	for _, st := range steps {
		b.clock.Advance(st.advance)
		if st.do != nil {
			st.do()
		}
		var got, wanted []string
		for _, k := range list() {
			if k.GetAlgorithm() != tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA || k.GetCreateTime() == nil ||
				k.GetPublishTime() == nil || k.GetActivateTime() == nil {
				t.Errorf("%s: key %s lacks its algorithm or times: %v", st.name, k.GetKid(), k)
			}
			got = append(got, fmt.Sprintf("%s %v retired=%s expires=%s withdrawn=%s", k.GetKid(), k.GetState(),
				pts(k.GetRetireTime(), k.GetRetireTime() != nil), pts(k.GetExpireTime(), k.GetExpireTime() != nil),
				pts(k.GetWithdrawTime(), k.GetWithdrawTime() != nil)))
		}
		for _, w := range st.want {
			wanted = append(wanted, fmt.Sprintf("%s %v retired=%s expires=%s withdrawn=%s", w.kid, w.state,
				ts(w.retired), ts(w.expires), ts(w.withdrawn)))
		}
		if strings.Join(got, "\n") != strings.Join(wanted, "\n") {
			t.Errorf("%s:\n got %s\nwant %s", st.name, strings.Join(got, "\n     "), strings.Join(wanted, "\n     "))
		}
	}
}

// TestAdminListsAreTheCallersTenantsOnly: only a key with role admin lists, its own tenant's
// keys and principals, and the master credential lists neither.
func TestAdminListsAreTheCallersTenantsOnly(t *testing.T) {
	b := newBackend()
	r := b.replica(t, nil)
	acme := newTenant(t, r, "acme")
	newTenant(t, r, "globex")
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	verifier := must(admin.CreateApiKey(acme.ctx(), &tokenauthorityv1.CreateApiKeyRequest{Name: "v",
		Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY, tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_REVOKE}})).GetSecret()
	master := withAPIKey(context.Background(), testMasterKey)
	tests := []struct {
		name string
		ctx  context.Context
		req  string
		want codes.Code
	}{
		{"the tenant's admin", acme.ctx(), "", codes.OK},
		{"the tenant's admin naming it", acme.ctx(), "acme", codes.OK},
		{"another tenant", acme.ctx(), "globex", codes.PermissionDenied},
		{"a key without role admin", withAPIKey(context.Background(), verifier), "", codes.PermissionDenied},
		{"the master credential", master, "acme", codes.PermissionDenied},
		{"no credential", context.Background(), "", codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := admin.ListSigningKeys(tt.ctx, &tokenauthorityv1.ListSigningKeysRequest{TenantId: tt.req})
			if status.Code(err) != tt.want {
				t.Errorf("ListSigningKeys: %v, want %v", err, tt.want)
			}
			_, err = admin.ListPrincipals(tt.ctx, &tokenauthorityv1.ListPrincipalsRequest{TenantId: tt.req})
			if status.Code(err) != tt.want {
				t.Errorf("ListPrincipals: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestListPrincipalsPagesWithoutSecrets pages through a tenant's principals: bounded pages, each
// principal once, has_secret without the secret or its hash, and page tokens that only the
// tenant's own list accepts.
func TestListPrincipalsPagesWithoutSecrets(t *testing.T) {
	b := newBackend()
	r := b.replica(t, nil)
	acme := newTenant(t, r, "acme")
	globex := newTenant(t, r, "globex")
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	const n = maxAdminPageSize + 3
	ctx := context.Background()
	for i := range n {
		p := &tenant.Principal{Identifier: fmt.Sprintf("p%03d", i), DisplayName: "P", Scopes: []string{"read"}}
		if err := r.tenants.CreatePrincipal(ctx, &tenant.Tenant{ID: "acme"}, p); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			if err := r.tenants.CreatePrincipal(ctx, &tenant.Tenant{ID: "globex"}, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	secret := must(admin.SetPrincipalSecret(acme.ctx(), &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: "p001"})).GetSecret()
	hash := sha256.Sum256([]byte(secret))

	// A page size above the bound is bounded; 0 is the default.
	for size, want := range map[int32]int{0: defaultAdminPageSize, 1 << 30: maxAdminPageSize} {
		page := must(admin.ListPrincipals(acme.ctx(), &tokenauthorityv1.ListPrincipalsRequest{PageSize: size}))
		if len(page.GetPrincipals()) != want || page.GetNextPageToken() == "" {
			t.Errorf("page_size %d: %d principals, next %q; want %d and a next page", size, len(page.GetPrincipals()), page.GetNextPageToken(), want)
		}
	}

	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		if pages > n/200+1 {
			t.Fatal("no last page")
		}
		page := must(admin.ListPrincipals(acme.ctx(), &tokenauthorityv1.ListPrincipalsRequest{PageSize: 200, PageToken: token}))
		raw, err := protojson.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{secret, base64.StdEncoding.EncodeToString(hash[:]), fmt.Sprintf("%x", hash)} {
			if strings.Contains(string(raw), leak) {
				t.Fatalf("a page holds the principal's secret or its hash: %s", raw)
			}
		}
		for _, p := range page.GetPrincipals() {
			if seen[p.GetIdentifier()] || p.GetTenantId() != "acme" || p.GetCreateTime() == nil {
				t.Errorf("principal %v: listed twice, of another tenant, or without its creation time", p)
			}
			seen[p.GetIdentifier()] = true
			if p.GetHasSecret() != (p.GetIdentifier() == "p001") {
				t.Errorf("principal %s: has_secret %v", p.GetIdentifier(), p.GetHasSecret())
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(seen) != n {
		t.Errorf("listed %d principals, want %d", len(seen), n)
	}

	globexNext := must(admin.ListPrincipals(globex.ctx(), &tokenauthorityv1.ListPrincipalsRequest{PageSize: 1})).GetNextPageToken()
	for name, req := range map[string]*tokenauthorityv1.ListPrincipalsRequest{
		"another tenant's page token": {PageToken: globexNext},
		"a made-up page token":        {PageToken: "p001"},
		"a negative page size":        {PageSize: -1},
	} {
		_, err := admin.ListPrincipals(acme.ctx(), req)
		if status.Code(err) != codes.InvalidArgument || strings.Contains(status.Convert(err).Message(), "globex") {
			t.Errorf("%s: %v, want InvalidArgument without the other tenant's name", name, err)
		}
	}
}
