package extauthz

import (
	"context"
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
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

const testPolicy = `{
  "headers": {"subject": "X-Sub"},
  "routes": [
    {"host": "orders.example.com", "path_prefix": "/api/", "audience": "orders", "scopes": ["orders.read"]},
    {"host": "orders.example.com", "path_prefix": "/api/admin/", "audience": "orders", "scopes": ["orders.admin"]},
    {"path_prefix": "/public-ish/", "audience": "orders"},
    {"grpc_method": "/demo.orders.v1.OrderService/GetOrder", "audience": "orders", "scopes": ["orders.read"]}
  ]
}`

// verifierFunc adapts a function to authn.Verifier.
type verifierFunc func(ctx context.Context, token string) (*authn.Claims, error)

func (f verifierFunc) Verify(ctx context.Context, token string) (*authn.Claims, error) {
	return f(ctx, token)
}

// refusing answers every token with err, as a verifier that saw a revocation or lost its stream.
func refusing(err error) authn.Verifier {
	return verifierFunc(func(context.Context, string) (*authn.Claims, error) { return nil, err })
}

func newServer(t *testing.T, v authn.Verifier, policy string) *Server {
	t.Helper()
	p, err := ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Verifier: v, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func request(host, path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: host, Path: path, Headers: headers},
	}}}
}

func bearerOf(tok string) map[string]string {
	return map[string]string{"authorization": "Bearer " + tok}
}

// answer is what a test expects of a CheckResponse.
type answer struct {
	code      codes.Code
	http      int    // the denied HTTP status; 0 when allowed
	challenge string // part of WWW-Authenticate; "" for none
	body      string // part of the denial body
}

func checkAnswer(t *testing.T, got *authv3.CheckResponse, want answer) {
	t.Helper()
	if c := codes.Code(got.GetStatus().GetCode()); c != want.code {
		t.Fatalf("status %v (%q), want %v", c, got.GetStatus().GetMessage(), want.code)
	}
	if want.code == codes.OK {
		if got.GetOkResponse() == nil {
			t.Fatalf("OK without an OkResponse: %v", got)
		}
		return
	}
	d := got.GetDeniedResponse()
	if d == nil {
		t.Fatalf("denial without a DeniedResponse: %v", got)
	}
	if int(d.GetStatus().GetCode()) != want.http {
		t.Errorf("HTTP status %d, want %d", d.GetStatus().GetCode(), want.http)
	}
	challenge := headerOf(d.GetHeaders(), "www-authenticate")
	switch {
	case want.challenge == "" && challenge != "":
		t.Errorf("WWW-Authenticate %q, want none", challenge)
	case !strings.Contains(challenge, want.challenge):
		t.Errorf("WWW-Authenticate %q, want it to hold %q", challenge, want.challenge)
	}
	if !strings.Contains(d.GetBody(), want.body) {
		t.Errorf("body %q, want it to hold %q", d.GetBody(), want.body)
	}
}

func headerOf(hs []*corev3.HeaderValueOption, name string) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == name {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				return "(appended: " + h.GetHeader().GetValue() + ")"
			}
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func TestCheckAnswers(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	iss := authntest.NewIssuer(authntest.WithAudience("orders"), authntest.WithClock(func() time.Time { return now }))
	good := iss.Token(authntest.Scopes("orders.read"))
	static := iss.Verifier(authn.WithAnyAudience())
	t.Cleanup(static.Close)

	invalid := answer{code: codes.Unauthenticated, http: 401, challenge: `Bearer error="invalid_token"`}
	tests := []struct {
		name     string
		verifier authn.Verifier // the static verifier when nil
		req      *authv3.CheckRequest
		want     answer
	}{
		{name: "valid", req: request("orders.example.com", "/api/orders/1", bearerOf(good)), want: answer{code: codes.OK}},
		{name: "valid, host with port and capitals", req: request("Orders.Example.com:8443", "/api/orders/1?x=1", bearerOf(good)), want: answer{code: codes.OK}},
		{name: "valid gRPC method", req: request("anything:50051", "/demo.orders.v1.OrderService/GetOrder", bearerOf(good)), want: answer{code: codes.OK}},
		{name: "route without scopes", req: request("elsewhere", "/public-ish/x", bearerOf(iss.Token())), want: answer{code: codes.OK}},
		{name: "lowercase scheme", req: request("orders.example.com", "/api/x", map[string]string{"authorization": "bearer " + good}), want: answer{code: codes.OK}},
		{name: "missing", req: request("orders.example.com", "/api/x", nil),
			want: answer{code: codes.Unauthenticated, http: 401, challenge: "Bearer", body: "bearer token is required"}},
		{name: "basic credentials", req: request("orders.example.com", "/api/x", map[string]string{"authorization": "Basic dXNlcjpwYXNz"}),
			want: answer{code: codes.Unauthenticated, http: 401, challenge: "Bearer", body: "bearer token is required"}},
		{name: "empty bearer", req: request("orders.example.com", "/api/x", map[string]string{"authorization": "Bearer "}), want: withBody(invalid, "malformed")},
		{name: "two bearer tokens", req: request("orders.example.com", "/api/x", map[string]string{"authorization": "Bearer " + good + ",Bearer " + good}), want: withBody(invalid, "malformed")},
		{name: "malformed", req: request("orders.example.com", "/api/x", bearerOf("not.a.jwt")), want: withBody(invalid, "malformed")},
		{name: "too long", req: request("orders.example.com", "/api/x", bearerOf(strings.Repeat("a", 9000))), want: withBody(invalid, "malformed")},
		{name: "expired", req: request("orders.example.com", "/api/x", bearerOf(iss.Token(authntest.Scopes("orders.read"), authntest.Expired()))), want: withBody(invalid, "expired")},
		{name: "refresh token", req: request("orders.example.com", "/api/x", bearerOf(iss.Token(authntest.Type(authntest.TypeRefresh)))), want: withBody(invalid, "not an access token")},
		{name: "wrong issuer", req: request("orders.example.com", "/api/x", bearerOf(iss.Token(authntest.IssuerName("https://other")))), want: withBody(invalid, "issuer")},
		{name: "revoked", verifier: refusing(authn.ErrRevoked), req: request("orders.example.com", "/api/x", bearerOf(good)), want: withBody(invalid, "revoked")},
		{name: "cut off", verifier: refusing(authn.ErrCutOff), req: request("orders.example.com", "/api/x", bearerOf(good)), want: withBody(invalid, "cut off")},
		{name: "wrong audience", req: request("orders.example.com", "/api/x", bearerOf(iss.Token(authntest.Scopes("orders.read"), authntest.Audience("billing")))),
			want: withBody(invalid, "audience")},
		{name: "wrong audience from the verifier", verifier: refusing(authn.ErrWrongAudience), req: request("orders.example.com", "/api/x", bearerOf(good)),
			want: withBody(invalid, "audience")},
		{name: "insufficient scope", req: request("orders.example.com", "/api/admin/x", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, challenge: `Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="orders.admin"`, body: "scope"}},
		{name: "no scope at all", req: request("orders.example.com", "/api/x", bearerOf(iss.Token())),
			want: answer{code: codes.PermissionDenied, http: 403, challenge: `error="insufficient_scope"`, body: "scope"}},
		{name: "no route: other host", req: request("billing.example.com", "/api/x", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "no route"}},
		{name: "no route: unknown gRPC method", req: request("orders", "/demo.orders.v1.OrderService/DeleteOrder", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "no route"}},
		{name: "dot segments", req: request("elsewhere", "/public-ish/../api/admin/x", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "not normalised"}},
		{name: "encoded dot segments", req: request("elsewhere", "/public-ish/%2E%2e/api/admin/x", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "not normalised"}},
		{name: "encoded slash", req: request("elsewhere", "/public-ish/..%2fapi/admin/x", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "not normalised"}},
		{name: "encoded backslash", req: request("elsewhere", "/public-ish/%5C..%5Capi/admin/x", bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "not normalised"}},
		{name: "backslash", req: request("elsewhere", `/public-ish\..\api/admin/x`, bearerOf(good)),
			want: answer{code: codes.PermissionDenied, http: 403, body: "not normalised"}},
		// The query and the fragment are not the path: dots and slashes there do not make it
		// unnormalised, and a gRPC method's exact route is found without them.
		{name: "dot segments in the query", req: request("orders.example.com", "/api/orders/1?next=/../admin/%2f", bearerOf(good)),
			want: answer{code: codes.OK}},
		{name: "gRPC method route with a query", req: request("anything:50051", "/demo.orders.v1.OrderService/GetOrder?x=1", bearerOf(good)),
			want: answer{code: codes.OK}},
		{name: "gRPC method route with a fragment", req: request("anything:50051", "/demo.orders.v1.OrderService/GetOrder#x", bearerOf(good)),
			want: answer{code: codes.OK}},
		{name: "no HTTP attributes", req: &authv3.CheckRequest{}, want: answer{code: codes.InvalidArgument, http: 403, body: "no HTTP"}},
		{name: "stale revocations", verifier: refusing(authn.ErrStale), req: request("orders.example.com", "/api/x", bearerOf(good)),
			want: answer{code: codes.Unavailable, http: 503, body: "revocation stream is not live"}},
		{name: "authority unreachable", verifier: refusing(authn.ErrUnavailable), req: request("orders.example.com", "/api/x", bearerOf(good)),
			want: answer{code: codes.Unavailable, http: 503, body: "unavailable"}},
		{name: "unexpected verifier error", verifier: refusing(context.DeadlineExceeded), req: request("orders.example.com", "/api/x", bearerOf(good)),
			want: answer{code: codes.Unavailable, http: 503, body: "unavailable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.verifier
			if v == nil {
				v = static
			}
			got, err := newServer(t, v, testPolicy).Check(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			checkAnswer(t, got, tt.want)
			if d := got.GetDeniedResponse(); d != nil && strings.Contains(d.GetBody()+got.GetStatus().GetMessage(), good[:20]) {
				t.Error("the denial echoes the token")
			}
		})
	}
}

func withBody(a answer, body string) answer { a.body = body; return a }

// TestCheckBinding: a token bound to a client certificate (RFC 8705) passes only with the
// certificate Envoy forwards for the request, whatever Envoy's own connection to the server is.
func TestCheckBinding(t *testing.T) {
	certPEM, tp := testCertificate(t)
	otherPEM, _ := testCertificate(t)
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	static := iss.Verifier(authn.WithAnyAudience())
	t.Cleanup(static.Close)
	tok := iss.Token(authntest.Subject("alice"), authntest.BoundTo(tp))
	s := newServer(t, static, `{"routes":[{"path_prefix":"/","audience":"orders"}]}`)
	for _, tt := range []struct {
		name, cert string
		allowed    bool
	}{
		{"bound token with its certificate", certPEM, true},
		{"bound token without a certificate", "", false},
		{"bound token with another certificate", otherPEM, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := request("h", "/x", bearerOf(tok))
			req.Attributes.Source = &authv3.AttributeContext_Peer{Certificate: url.QueryEscape(tt.cert)}
			got, err := s.Check(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if allowed := got.GetOkResponse() != nil; allowed != tt.allowed {
				t.Fatalf("allowed %v, want %v: %v", allowed, tt.allowed, got)
			}
			if !tt.allowed && got.GetDeniedResponse().GetStatus().GetCode() != 401 {
				t.Errorf("denied with %v, want 401", got.GetDeniedResponse().GetStatus())
			}
		})
	}
}

// testCertificate returns a self-signed certificate as PEM and its x5t#S256 thumbprint.
func testCertificate(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "client"}, NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestCheckDelegated: a delegated token (RFC 8693 act) passes with its actor chain in the actors
// header, outermost first, and a client cannot set that header itself.
func TestCheckDelegated(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	static := iss.Verifier(authn.WithAnyAudience())
	t.Cleanup(static.Close)
	tok := iss.Token(authntest.Subject("alice"), authntest.Actors("svc-b", "svc-a"))
	headers := bearerOf(tok)
	headers["x-token-actors"] = "svc-evil"
	got, err := newServer(t, static, `{"routes":[{"path_prefix":"/","audience":"orders"}]}`).Check(t.Context(), request("h", "/x", headers))
	if err != nil {
		t.Fatal(err)
	}
	ok := got.GetOkResponse()
	if ok == nil {
		t.Fatalf("delegated token denied: %v", got)
	}
	var actors string
	for _, h := range ok.GetHeaders() {
		if h.GetHeader().GetKey() == "x-token-actors" {
			actors = h.GetHeader().GetValue()
		}
	}
	if actors != "svc-b,svc-a" {
		t.Fatalf("actors header %q, want the chain svc-b,svc-a", actors)
	}
}

func TestCheckHeaders(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	static := iss.Verifier(authn.WithAnyAudience())
	t.Cleanup(static.Close)
	tok := iss.Token(authntest.Subject("alice"), authntest.Scopes("orders.read", "orders.write"), authntest.SessionID("sess-1"))
	// A client that sends the headers the upstream trusts must not get them through.
	spoofed := map[string]string{"authorization": "Bearer " + tok, "x-sub": "mallory", "x-token-actors": "svc-evil"}

	tests := []struct {
		name        string
		policy      string
		wantSet     map[string]string
		wantRemoved []string
	}{
		{
			name:        "default names, authorization removed",
			policy:      `{"routes":[{"path_prefix":"/","audience":"orders"}]}`,
			wantSet:     map[string]string{"x-token-subject": "alice", "x-token-scopes": "orders.read orders.write", "x-token-session": "sess-1"},
			wantRemoved: []string{"x-token-actors", "authorization"},
		},
		{
			name:        "configured names, authorization kept",
			policy:      `{"headers":{"subject":"X-Sub","scopes":"x-scope","session":"x-sid","actors":"x-act","keep_authorization":true},"routes":[{"path_prefix":"/","audience":"orders"}]}`,
			wantSet:     map[string]string{"x-sub": "alice", "x-scope": "orders.read orders.write", "x-sid": "sess-1"},
			wantRemoved: []string{"x-act"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newServer(t, static, tt.policy).Check(t.Context(), request("h", "/x", spoofed))
			if err != nil {
				t.Fatal(err)
			}
			ok := got.GetOkResponse()
			if ok == nil {
				t.Fatalf("not allowed: %v", got)
			}
			for name, want := range tt.wantSet {
				if v := headerOf(ok.GetHeaders(), name); v != want {
					t.Errorf("%s = %q, want %q (overwriting)", name, v, want)
				}
			}
			if len(ok.GetHeaders()) != len(tt.wantSet) {
				t.Errorf("headers %v, want only %v", ok.GetHeaders(), tt.wantSet)
			}
			removed := slices.Clone(ok.GetHeadersToRemove())
			slices.Sort(removed)
			want := slices.Clone(tt.wantRemoved)
			slices.Sort(want)
			if !slices.Equal(removed, want) {
				t.Errorf("headers_to_remove %v, want %v", removed, want)
			}
		})
	}
}

func TestHeaderFromRawHeaderMap(t *testing.T) {
	h := &authv3.AttributeContext_HttpRequest{HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Authorization", RawValue: []byte("Bearer abc")},
		{Key: "x-other", Value: "1"},
	}}}
	if got := header(h, "authorization"); got != "Bearer abc" {
		t.Errorf("header = %q", got)
	}
}
