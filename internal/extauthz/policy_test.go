package extauthz

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

func TestParsePolicyRefuses(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		want   []string // each must appear in the error
	}{
		{"not JSON", `routes:`, []string{"decode"}},
		{"unknown field", `{"routes":[{"path_prefix":"/","audience":"a","scope":["x"]}]}`, []string{`unknown field "scope"`}},
		{"trailing data", `{"routes":[{"path_prefix":"/","audience":"a"}]} {}`, []string{"trailing"}},
		{"no routes", `{}`, []string{"routes: none"}},
		{"every problem at once", `{"headers":{"subject":"x sub","scopes":"Authorization","session":"x-a","actors":"X-A"},"routes":[
			{"audience":"a"},
			{"path_prefix":"api","audience":""},
			{"grpc_method":"pkg.Svc/M","audience":"a","scopes":["a b",""]},
			{"grpc_method":"/pkg.Svc/M","host":"h","audience":"a"},
			{"path_prefix":"/x","host":"h:80","audience":"a b"},
			{"path_prefix":"/y","audience":"a"},
			{"path_prefix":"/y","audience":"b"}
		]}`, []string{
			`headers.subject: "x sub" is not a header name`,
			`headers.scopes: "authorization" is reserved`,
			`headers.actors: "x-a" is also headers.session`,
			"routes[0]: needs path_prefix or grpc_method",
			`routes[1]: path_prefix "api" must start with /`,
			"routes[1]: needs an audience",
			`routes[2]: grpc_method "pkg.Svc/M" is not`,
			`routes[2].scopes[0]: "a b" is not a scope token`,
			`routes[2].scopes[1]`,
			"routes[3]: grpc_method excludes path_prefix and host",
			`routes[4]: host "h:80" is not a host name`,
			`routes[4]: audience "a b" holds white space`,
			`routes[6]: host "" and path_prefix "/y" are also routes[5]`,
		}},
		{"duplicate method", `{"routes":[{"grpc_method":"/p.S/M","audience":"a"},{"grpc_method":"/p.S/M","audience":"b"}]}`,
			[]string{`routes[1]: grpc_method "/p.S/M" is also routes[0]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tt.policy))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestPolicyMatch(t *testing.T) {
	p, err := ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, path string
		want       string // the matched route's first scope, or its prefix; "" for none
	}{
		{"orders.example.com", "/api/x", "orders.read"},
		{"orders.example.com", "/api/admin/x", "orders.admin"},
		{"ORDERS.example.com.:443", "/api/admin?q", "orders.read"},
		{"other", "/api/x", ""},
		{"other", "/public-ish/", "/public-ish/"},
		{"other", "/demo.orders.v1.OrderService/GetOrder", "orders.read"},
		{"other", "/demo.orders.v1.OrderService/GetOrderX", ""},
	}
	for _, tt := range tests {
		r := p.match(tt.host, requestPath(tt.path))
		got := ""
		if r != nil {
			got = r.PathPrefix
			if len(r.Scopes) > 0 {
				got = r.Scopes[0]
			}
		}
		if got != tt.want {
			t.Errorf("match(%q, %q) = %q, want %q", tt.host, tt.path, got, tt.want)
		}
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.json")
	if err := os.WriteFile(ok, []byte(testPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(ok); err != nil {
		t.Errorf("LoadPolicy: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, []byte(strings.Repeat(" ", maxPolicySize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPolicy(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("LoadPolicy of a huge file: %v", err)
	}
	if _, err := LoadPolicy(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("LoadPolicy of a missing file succeeded")
	}
}

func TestPeerThumbprint(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	pemCert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	withCert := func(c string) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Certificate: c}}}
	}
	for _, tt := range []struct {
		name, cert, want string
	}{
		{"URL-encoded PEM, as Envoy sends it", url.QueryEscape(pemCert), want},
		{"none", "", ""},
		{"not PEM", url.QueryEscape("hello"), ""},
		{"bad escape", "%zz", ""},
		{"a key, not a certificate", url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))), ""},
	} {
		if got := peerThumbprint(withCert(tt.cert)); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestDeployPolicy: the sidecar policy that deploy/envoy ships parses.
func TestDeployPolicy(t *testing.T) {
	if _, err := LoadPolicy(filepath.Join("..", "..", "deploy", "envoy", "extauthz-policy.json")); err != nil {
		t.Error(err)
	}
}
