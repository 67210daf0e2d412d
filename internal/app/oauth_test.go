package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// oauthFixture is a running authority with a tenant whose revocations are limited to a burst of 2,
// and keys of it.
type oauthFixture struct {
	r        *running
	base     string // the HTTP server's URL
	verify   *tokenauthorityv1.CreateApiKeyResponse
	revoke   *tokenauthorityv1.CreateApiKeyResponse
	issuer   context.Context
	tokens   tokenauthorityv1.TokenServiceClient
	verifyGC context.Context // the verify key, for gRPC calls
}

func newOAuthFixture(t *testing.T) *oauthFixture {
	t.Helper()
	cfg := testConfig(t, "")
	r, httpAddr := startWith(t, cfg, nil, func(log *slog.Logger) (*App, error) { return New(cfg, log) })
	admin := tokenauthorityv1.NewAdminServiceClient(r.conn)
	created := must(admin.CreateTenant(withKey(r.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "gateway", Issuer: "https://gateway.example", RevokeRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 0.01, Burst: 2}}}))
	ta := withKey(created.GetAdminApiKey())
	newKey := func(roles ...tokenauthorityv1.Role) *tokenauthorityv1.CreateApiKeyResponse {
		return must(admin.CreateApiKey(ta, &tokenauthorityv1.CreateApiKeyRequest{Name: "k", Roles: roles}))
	}
	f := &oauthFixture{r: r, base: "http://" + httpAddr, tokens: tokenauthorityv1.NewTokenServiceClient(r.conn),
		verify: newKey(tokenauthorityv1.Role_ROLE_VERIFY), revoke: newKey(tokenauthorityv1.Role_ROLE_REVOKE)}
	f.issuer = withKey(newKey(tokenauthorityv1.Role_ROLE_ISSUE).GetSecret())
	f.verifyGC = withKey(f.verify.GetSecret())
	return f
}

func (f *oauthFixture) issue(t *testing.T) *tokenauthorityv1.IssueTokenResponse {
	t.Helper()
	return must(f.tokens.IssueToken(f.issuer, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Audience: []string{"orders"}, Scopes: []string{"orders.read", "orders.write"}}))
}

// post sends a form with the credential set by auth, and returns the status and the JSON body.
func (f *oauthFixture) post(t *testing.T, path string, form url.Values, auth func(*http.Request)) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %d, not JSON: %q", path, resp.StatusCode, b)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", path, cc)
	}
	return resp.StatusCode, out
}

func apiKeyAuth(key string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("X-Api-Key", key) }
}

// basicAuth sends an API key as RFC 6749 client_secret_basic: its id as user, its secret as password.
func basicAuth(key string) func(*http.Request) {
	id, secret, _ := strings.Cut(strings.TrimPrefix(key, tenant.APIKeyPrefix), ".")
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

// TestOAuthEndpoints: RFC 7662 and RFC 7009 over HTTP answer as VerifyToken and RevokeToken do,
// with their authentication, roles and rate limits.
func TestOAuthEndpoints(t *testing.T) {
	f := newOAuthFixture(t)
	p := f.issue(t)
	tok := url.Values{"token": {p.GetAccessToken()}}

	tests := []struct {
		name       string
		path       string
		form       url.Values
		auth       func(*http.Request)
		wantStatus int
		wantError  string // the OAuth error code; "" for a success
		wantActive any    // for an introspection answer
	}{
		{"introspect with X-Api-Key", "/oauth2/introspect", tok, apiKeyAuth(f.verify.GetSecret()), 200, "", true},
		{"introspect with HTTP Basic", "/oauth2/introspect", tok, basicAuth(f.verify.GetSecret()), 200, "", true},
		{"introspect with HTTP Basic, prefixed id", "/oauth2/introspect", tok, func(r *http.Request) {
			id, secret, _ := strings.Cut(f.verify.GetSecret(), ".")
			r.SetBasicAuth(id, secret)
		}, 200, "", true},
		{"garbage token is inactive", "/oauth2/introspect", url.Values{"token": {"a.b.c"}}, apiKeyAuth(f.verify.GetSecret()), 200, "", false},
		{"no credential", "/oauth2/introspect", tok, nil, 401, "invalid_client", nil},
		{"wrong secret", "/oauth2/introspect", tok, basicAuth(f.verify.GetSecret()[:len(f.verify.GetSecret())-2] + "AA"), 401, "invalid_client", nil},
		{"two credentials", "/oauth2/introspect", tok, func(r *http.Request) {
			basicAuth(f.verify.GetSecret())(r)
			apiKeyAuth(f.verify.GetSecret())(r)
		}, 401, "invalid_client", nil},
		{"key without role verify", "/oauth2/introspect", tok, apiKeyAuth(f.revoke.GetSecret()), 403, "unauthorized_client", nil},
		{"no token", "/oauth2/introspect", url.Values{}, apiKeyAuth(f.verify.GetSecret()), 400, "invalid_request", nil},
		{"token too large", "/oauth2/introspect", url.Values{"token": {strings.Repeat("a", 9000)}}, apiKeyAuth(f.verify.GetSecret()), 400, "invalid_request", nil},
		{"revoke needs role revoke", "/oauth2/revoke", tok, apiKeyAuth(f.verify.GetSecret()), 403, "unauthorized_client", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.post(t, tt.path, tt.form, tt.auth)
			if code != tt.wantStatus {
				t.Fatalf("status %d (%v), want %d", code, body, tt.wantStatus)
			}
			if tt.wantError != "" {
				if body["error"] != tt.wantError {
					t.Errorf("error %v, want %q", body["error"], tt.wantError)
				}
				return
			}
			if body["active"] != tt.wantActive {
				t.Errorf("active %v, want %v", body["active"], tt.wantActive)
			}
			if tt.wantActive == false && len(body) != 1 {
				t.Errorf("an inactive answer says more than active: %v", body)
			}
			if tt.wantActive == true && (body["sub"] != "alice" || body["scope"] != "orders.read orders.write" || body["sid"] != p.GetSessionId()) {
				t.Errorf("active answer %v", body)
			}
		})
	}

	t.Run("the same answer as VerifyToken", func(t *testing.T) {
		v := must(f.tokens.VerifyToken(f.verifyGC, &tokenauthorityv1.VerifyTokenRequest{Token: p.GetAccessToken()}))
		_, body := f.post(t, "/oauth2/introspect", tok, apiKeyAuth(f.verify.GetSecret()))
		c := v.GetClaims()
		if body["jti"] != c.GetJti() || body["iss"] != c.GetIssuer() || body["exp"] != float64(c.GetExpireTime().GetSeconds()) {
			t.Errorf("introspection %v, VerifyToken %v", body, c)
		}
	})

	t.Run("revocation, and the rate limit shared with gRPC", func(t *testing.T) {
		// The tenant allows a burst of 2 revocations per key: one over gRPC, one over HTTP, and the
		// third, over HTTP, is refused.
		other := f.issue(t)
		must(f.tokens.RevokeToken(withKey(f.revoke.GetSecret()), &tokenauthorityv1.RevokeTokenRequest{
			Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: other.GetAccessToken()}}))
		if code, body := f.post(t, "/oauth2/revoke", tok, basicAuth(f.revoke.GetSecret())); code != 200 {
			t.Fatalf("revoke: %d %v", code, body)
		}
		if _, body := f.post(t, "/oauth2/introspect", tok, apiKeyAuth(f.verify.GetSecret())); body["active"] != false {
			t.Errorf("after revocation: %v", body)
		}
		code, body := f.post(t, "/oauth2/revoke", url.Values{"token": {"unknown"}}, apiKeyAuth(f.revoke.GetSecret()))
		if code != http.StatusTooManyRequests || body["error"] != "slow_down" {
			t.Errorf("third revocation of the key: %d %v, want 429 slow_down", code, body)
		}
		_, err := f.tokens.RevokeToken(withKey(f.revoke.GetSecret()), &tokenauthorityv1.RevokeTokenRequest{
			Target: &tokenauthorityv1.RevokeTokenRequest_Token{Token: other.GetAccessToken()}})
		wantCode(t, "gRPC after the HTTP revocations", err, codes.ResourceExhausted)
	})
}

// TestOAuthEndpointsWithOpenIDClient runs openid-client (npm), a client this project did not
// write, against the endpoints: introspection and revocation with client_secret_basic.
func TestOAuthEndpointsWithOpenIDClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: this test runs openid-client (npm) against the OAuth endpoints")
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "oauthclient"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client")); err != nil {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatal("node is installed but npm is not: install npm, or run `npm ci` in internal/app/testdata/oauthclient")
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}
	f := newOAuthFixture(t)
	p := f.issue(t)
	run := func(action, key, tok string) map[string]any {
		t.Helper()
		id, secret, _ := strings.Cut(strings.TrimPrefix(key, tenant.APIKeyPrefix), ".")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, "client.mjs")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "ISSUER_URL="+f.base, "CLIENT_ID="+id, "CLIENT_SECRET="+secret, "ACTION="+action, "TOKEN="+tok)
		out, _ := cmd.Output()
		var res map[string]any
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("openid-client %s: %q: %v", action, out, err)
		}
		return res
	}

	got := run("introspect", f.verify.GetSecret(), p.GetAccessToken())
	if got["active"] != true || got["sub"] != "alice" || got["scope"] != "orders.read orders.write" {
		t.Fatalf("introspection through openid-client: %v", got)
	}
	if got := run("introspect", f.revoke.GetSecret(), p.GetAccessToken()); got["status"] != float64(403) {
		t.Errorf("introspection with a key without role verify: %v, want a 403 failure", got)
	}
	if got := run("revoke", f.revoke.GetSecret(), p.GetAccessToken()); got["revoked"] != true {
		t.Fatalf("revocation through openid-client: %v", got)
	}
	if got := run("introspect", f.verify.GetSecret(), p.GetAccessToken()); got["active"] != false {
		t.Errorf("introspection after revocation: %v, want inactive", got)
	}
}
