package tenant_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

func (c *countingStore) ListRecordsPage(ctx context.Context, kind, prefix, after string, limit int) ([]store.Record, string, error) {
	recs, next, err := c.Store.ListRecordsPage(ctx, kind, prefix, after, limit)
	c.count(len(recs))
	return recs, next, err
}

func createPrincipals(t *testing.T, svc *tenant.Service, tn *tenant.Tenant, ids ...string) {
	t.Helper()
	for _, id := range ids {
		p := &tenant.Principal{Identifier: id, DisplayName: "P " + id, Scopes: []string{"read"}, Audience: []string{"api"}}
		if err := svc.CreatePrincipal(context.Background(), tn, p); err != nil {
			t.Fatalf("CreatePrincipal(%s, %s): %v", tn.ID, id, err)
		}
	}
}

// TestListPrincipalsPagesTheTenantsOwn pages through one tenant's principals among another
// tenant's (whose id the first one's prefixes) on each backend: every principal once, in
// identifier order, each page reading its own records only, and never another tenant's.
func TestListPrincipalsPagesTheTenantsOwn(t *testing.T) {
	own := []string{"a", "b", "c", "d", "e", "f", "g"}
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			inner, _ := open(t)
			cs := &countingStore{Store: inner}
			svc := tenant.NewService(cs, "", storetest.NewClock(t0).Now)
			acme := &tenant.Tenant{ID: "acme"}
			acme2 := &tenant.Tenant{ID: "acme-2"}
			createPrincipals(t, svc, acme2, "a", "z")
			createPrincipals(t, svc, acme, own...)
			if _, err := svc.SetPrincipalSecret(ctx, "acme", "c"); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				createPrincipals(t, svc, &tenant.Tenant{ID: "globex"}, fmt.Sprintf("p%02d", i))
			}

			var got []string
			token := ""
			for pages := 1; ; pages++ {
				cs.take()
				ps, next, err := svc.ListPrincipals(ctx, "acme", 3, token)
				if err != nil {
					t.Fatalf("ListPrincipals page %d: %v", pages, err)
				}
				if records, _ := cs.take(); records != len(ps) || len(ps) > 3 {
					t.Errorf("page %d: %d principals, %d records read; want at most 3, and no more read", pages, len(ps), records)
				}
				for _, p := range ps {
					if p.Tenant != "acme" {
						t.Errorf("listed a principal of %q", p.Tenant)
					}
					if (p.SecretHash != nil) != (p.Identifier == "c") {
						t.Errorf("principal %s: secret set %v", p.Identifier, p.SecretHash != nil)
					}
					got = append(got, p.Identifier)
				}
				if next == "" {
					break
				}
				token = next
				if pages > len(own) {
					t.Fatal("no last page")
				}
			}
			if strings.Join(got, ",") != strings.Join(own, ",") {
				t.Errorf("pages = %q, want %q", got, own)
			}
		})
	}
}

// TestListPrincipalsRefusesForeignPageTokens: a token of another tenant's list, of another list
// or made up is ErrPageToken, not a position in the caller's list.
func TestListPrincipalsRefusesForeignPageTokens(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	createPrincipals(t, e.svc, &tenant.Tenant{ID: "acme"}, "a", "b")
	createPrincipals(t, e.svc, &tenant.Tenant{ID: "globex"}, "a", "b")
	_, globexNext, err := e.svc.ListPrincipals(ctx, "globex", 1, "")
	if err != nil || globexNext == "" {
		t.Fatalf("ListPrincipals(globex) = next %q, %v", globexNext, err)
	}
	_, acmeNext, err := e.svc.ListPrincipals(ctx, "acme", 1, "")
	if err != nil || acmeNext == "" {
		t.Fatalf("ListPrincipals(acme) = next %q, %v", acmeNext, err)
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, token := range map[string]string{
		"another tenant's":          globexNext,
		"a tenant id (ListTenants)": "acme",
		"not base64":                "!!!",
		"without the prefix":        enc("acme/a"),
		"another version":           enc("principals/v2/acme/a"),
		"an invalid identifier":     enc("principals/v1/acme/a\nb"),
		"an empty identifier":       enc("principals/v1/acme/"),
		"no tenant":                 enc("principals/v1/a"),
		"an identifier too long":    enc("principals/v1/acme/" + strings.Repeat("a", 257)),
		"too long":                  enc("principals/v1/acme/" + strings.Repeat("a", 400)),
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := e.svc.ListPrincipals(ctx, "acme", 10, token); !errors.Is(err, tenant.ErrPageToken) {
				t.Errorf("ListPrincipals with %s page token: %v, want ErrPageToken", name, err)
			}
		})
	}
	ps, next, err := e.svc.ListPrincipals(ctx, "acme", 10, acmeNext)
	if err != nil || len(ps) != 1 || ps[0].Identifier != "b" || next != "" {
		t.Errorf("ListPrincipals(acme) from its own token = %v, %q, %v; want b, the last page", ps, next, err)
	}
	if !bytes.Contains([]byte(tenant.ErrPageToken.Error()), []byte("page_token")) {
		t.Errorf("ErrPageToken %q does not name the field", tenant.ErrPageToken)
	}
}
