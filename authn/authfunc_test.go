package authn_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

var itemsPolicy = authn.Policy{
	Public: []string{methodPing},
	Scopes: map[string][]string{
		methodGet:   {"items:read"},
		methodPut:   {"items:read", "items:write"},
		methodList:  {"items:read"},
		methodWatch: {},
	},
}

func TestAuthFunc(t *testing.T) {
	clock := newFakeClock()
	iss := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	conn := serveItems(t, v, itemsPolicy)
	other := authntest.NewIssuer(authntest.WithClock(clock.Now), authntest.WithKeyID(authntest.DefaultKeyID))

	read := iss.Token(authntest.Subject("alice"), authntest.Scopes("items:read"))
	cases := []struct {
		name    string
		method  string
		stream  bool
		token   string
		code    codes.Code
		msgPart string
	}{
		{"scope present", methodGet, false, read, codes.OK, ""},
		{"scope missing", methodPut, false, read, codes.PermissionDenied, `lacks scope "items:write"`},
		{"all scopes present", methodPut, false, iss.Token(authntest.Subject("alice"), authntest.Scopes("items:write", "items:read")), codes.OK, ""},
		{"no scopes", methodGet, false, iss.Token(), codes.PermissionDenied, "items:read"},
		// Only U+0020 separates scopes: one scope joined by another white space grants neither part.
		{"scopes joined by NBSP", methodGet, false, iss.Token(authntest.Scopes("items:write\u00a0items:read")), codes.PermissionDenied, "items:read"},
		{"scopes joined by a tab", methodGet, false, iss.Token(authntest.Scopes("items:write\titems:read")), codes.PermissionDenied, "items:read"},
		{"authenticate only", methodWatch, true, iss.Token(authntest.Subject("alice")), codes.OK, ""},
		{"public without token", methodPing, false, "", codes.OK, ""},
		{"public with garbage token", methodPing, false, "garbage", codes.OK, ""},
		{"unlisted is denied", methodSecret, false, read, codes.PermissionDenied, "not open to any token"},
		{"missing token", methodGet, false, "", codes.Unauthenticated, "missing bearer token"},
		{"garbage token", methodGet, false, "garbage", codes.Unauthenticated, "malformed"},
		{"wrong audience", methodGet, false, iss.Token(authntest.Subject("alice"), authntest.Scopes("items:read"), authntest.Audience("billing")), codes.PermissionDenied, "audience"},
		{"no audience", methodGet, false, iss.Token(authntest.Scopes("items:read"), authntest.Audience()), codes.PermissionDenied, "audience"},
		{"one of several audiences", methodGet, false, iss.Token(authntest.Subject("alice"), authntest.Scopes("items:read"), authntest.Audience("billing", "orders")), codes.OK, ""},
		{"expired", methodGet, false, iss.Token(authntest.Scopes("items:read"), authntest.Expired()), codes.Unauthenticated, "expired"},
		{"not yet valid", methodGet, false, iss.Token(authntest.Scopes("items:read"), authntest.NotYetValid()), codes.Unauthenticated, "not yet valid"},
		{"refresh token as access token", methodGet, false, iss.Token(authntest.Scopes("items:read"), authntest.Type(authntest.TypeRefresh)), codes.Unauthenticated, "not an access token"},
		{"wrong issuer", methodGet, false, iss.Token(authntest.Scopes("items:read"), authntest.IssuerName("https://evil.test")), codes.Unauthenticated, "issuer"},
		{"signed by another key with the same kid", methodGet, false, other.Token(authntest.Scopes("items:read"), authntest.Audience("orders")), codes.Unauthenticated, "signature"},
		{"unknown kid", methodGet, false, iss.Token(authntest.Scopes("items:read"), authntest.KeyID("nope")), codes.Unauthenticated, "unknown signing key"},
		{"stream with scope", methodList, true, read, codes.OK, ""},
		{"stream without scope", methodList, true, iss.Token(), codes.PermissionDenied, "items:read"},
		{"stream without token", methodList, true, "", codes.Unauthenticated, "missing bearer token"},
		{"stream expired", methodList, true, iss.Token(authntest.Scopes("items:read"), authntest.Expired()), codes.Unauthenticated, "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			var who string
			if tc.stream {
				var got []string
				got, err = callStream(t.Context(), conn, tc.method, tc.token)
				if err == nil {
					if len(got) != 3 {
						t.Fatalf("got %d messages, want 3", len(got))
					}
					who = got[0]
				}
			} else {
				who, err = callUnary(t.Context(), conn, tc.method, tc.token)
			}
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msgPart) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msgPart)
			}
			if tc.token != "" && tc.token != "garbage" && strings.Contains(st.Message(), tc.token) {
				t.Fatal("the message echoes the token")
			}
			switch {
			case tc.code != codes.OK:
			case tc.method == methodPing && who != "anonymous":
				t.Fatalf("public method saw claims of %q", who)
			case tc.method != methodPing && who == "anonymous":
				t.Fatal("no claims in the handler's context")
			}
		})
	}
}

func TestAuthFuncHeaders(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	conn := serveItems(t, v, itemsPolicy)
	tok := iss.Token(authntest.Scopes("items:read"))
	cases := []struct {
		name   string
		values []string
		code   codes.Code
	}{
		{"bearer", []string{"Bearer " + tok}, codes.OK},
		{"scheme in lower case", []string{"bearer " + tok}, codes.OK},
		{"scheme in upper case", []string{"BEARER " + tok}, codes.OK},
		{"basic", []string{"Basic " + tok}, codes.Unauthenticated},
		{"no scheme", []string{tok}, codes.Unauthenticated},
		{"empty token", []string{"Bearer "}, codes.Unauthenticated},
		{"two spaces", []string{"Bearer  " + tok}, codes.Unauthenticated},
		{"trailing garbage", []string{"Bearer " + tok + " x"}, codes.Unauthenticated},
		{"two headers", []string{"Bearer " + tok, "Bearer " + tok}, codes.Unauthenticated},
		{"too long", []string{"Bearer " + strings.Repeat("a", 9000)}, codes.Unauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			for _, v := range tc.values {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", v)
			}
			err := conn.Invoke(ctx, methodGet, wrapperspb.String("in"), new(wrapperspb.StringValue))
			if got := status.Code(err); got != tc.code {
				t.Fatalf("got %v (%v), want %v", got, err, tc.code)
			}
		})
	}
}

func TestAuthenticateUnlisted(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	p := itemsPolicy
	p.Unlisted = authn.AuthenticateUnlisted
	conn := serveItems(t, v, p)
	if who, err := callUnary(t.Context(), conn, methodSecret, iss.Token(authntest.Subject("bob"))); err != nil || who != "bob" {
		t.Fatalf("got %q, %v; want bob", who, err)
	}
	if _, err := callUnary(t.Context(), conn, methodSecret, ""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without token: %v, want Unauthenticated", err)
	}
}

// TestAuthFuncWithoutSelector checks that the AuthFunc honours public methods by itself, so that
// wiring it without the selector does not lock them.
func TestAuthFuncWithoutSelector(t *testing.T) {
	iss := authntest.NewIssuer()
	v := iss.Verifier()
	defer v.Close()
	af := authn.AuthFunc(v, itemsPolicy)
	ctx := grpc.NewContextWithServerTransportStream(context.Background(), fakeTransportStream(methodPing))
	if _, err := af(ctx); err != nil {
		t.Fatalf("public method: %v", err)
	}
	ctx = grpc.NewContextWithServerTransportStream(context.Background(), fakeTransportStream(methodGet))
	if _, err := af(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("protected method without token: %v", err)
	}
	if _, err := af(context.Background()); status.Code(err) != codes.Internal {
		t.Fatalf("outside a server: %v", err)
	}
}

type fakeTransportStream string

func (s fakeTransportStream) Method() string             { return string(s) }
func (fakeTransportStream) SetHeader(metadata.MD) error  { return nil }
func (fakeTransportStream) SendHeader(metadata.MD) error { return nil }
func (fakeTransportStream) SetTrailer(metadata.MD) error { return nil }

func TestPolicyValidate(t *testing.T) {
	if err := itemsPolicy.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := authn.Policy{
		Public:   []string{"Ping", methodGet},
		Scopes:   map[string][]string{methodGet: {"a b"}, "/svc/": {"x"}},
		Unlisted: 7,
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"Ping" is not a full method name`, "both public and scoped", `scope "a b"`, `"/svc/" is not a full method name`, "unknown Unlisted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestPolicyScopesWin checks that a method listed as both public and scoped needs its scopes.
func TestPolicyScopesWin(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	conn := serveItems(t, v, authn.Policy{Public: []string{methodGet}, Scopes: map[string][]string{methodGet: {"items:read"}}})
	if _, err := callUnary(t.Context(), conn, methodGet, ""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want Unauthenticated", err)
	}
}

func TestPolicyCovers(t *testing.T) {
	srv := grpc.NewServer()
	srv.RegisterService(&itemsDesc, struct{}{})
	p := itemsPolicy
	p.Scopes = map[string][]string{methodGet: nil, "/other.Svc/Gone": nil}
	err := p.Covers(srv.GetServiceInfo())
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{methodSecret + " is not in the policy", methodList + " is not in the policy", "/other.Svc/Gone, which the server does not serve"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	full := itemsPolicy
	full.Scopes = map[string][]string{methodGet: nil, methodPut: nil, methodList: nil, methodWatch: nil, methodSecret: nil}
	if err := full.Covers(srv.GetServiceInfo()); err != nil {
		t.Fatal(err)
	}
}

func TestClaimsHelpers(t *testing.T) {
	c := &authn.Claims{Audience: []string{"a", "b"}, Scopes: []string{"x", "y"}}
	if !c.HasScope("x") || c.HasScope("z") || !c.HasAllScopes("x", "y") || c.HasAllScopes("x", "z") || !c.HasAllScopes() {
		t.Fatal("scopes")
	}
	if !c.HasAudience("b") || c.HasAudience("c") {
		t.Fatal("audience")
	}
	if _, ok := authn.ClaimsFromContext(context.Background()); ok {
		t.Fatal("claims in an empty context")
	}
	got, ok := authn.ClaimsFromContext(authn.ContextWithClaims(context.Background(), c))
	if !ok || got != c {
		t.Fatal("claims lost")
	}
}
