package authn_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/authn/authntest"
)

// TestAuthFuncDelegation: a service requires, refuses, or restricts delegated tokens per method.
func TestAuthFuncDelegation(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	p := authn.Policy{
		Scopes: map[string][]string{methodGet: {"items:read"}, methodPut: {"items:read"}, methodList: {}, methodWatch: {}},
		Delegation: map[string]authn.Delegation{
			methodGet: authn.RefuseDelegated,
			methodPut: authn.RequireDelegated,
		},
		Actors: map[string][]string{methodList: {"svc-a"}},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	conn := serveItems(t, v, p)
	direct := iss.Token(authntest.Subject("alice"), authntest.Scopes("items:read"))
	byA := iss.Token(authntest.Subject("alice"), authntest.Scopes("items:read"), authntest.Actors("svc-a"))
	byBForA := iss.Token(authntest.Subject("alice"), authntest.Scopes("items:read"), authntest.Actors("svc-b", "svc-a"))
	cases := []struct {
		name   string
		method string
		stream bool
		token  string
		code   codes.Code
		msg    string
	}{
		{"refusing method, direct token", methodGet, false, direct, codes.OK, ""},
		{"refusing method, delegated token", methodGet, false, byA, codes.PermissionDenied, `does not accept delegated tokens (this one is presented by "svc-a"`},
		{"requiring method, direct token", methodPut, false, direct, codes.PermissionDenied, "only tokens obtained by token exchange"},
		{"requiring method, delegated token", methodPut, false, byA, codes.OK, ""},
		{"requiring method, chain", methodPut, false, byBForA, codes.OK, ""},
		{"actors, the listed actor", methodList, true, byA, codes.OK, ""},
		{"actors, another actor (listed one inside the chain)", methodList, true, byBForA, codes.PermissionDenied, `presented by "svc-b"`},
		{"actors, direct token", methodList, true, direct, codes.PermissionDenied, "only tokens obtained by token exchange"},
		{"no rule, delegated token", methodWatch, true, byBForA, codes.OK, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.stream {
				_, err = callStream(t.Context(), conn, tc.method, tc.token)
			} else {
				_, err = callUnary(t.Context(), conn, tc.method, tc.token)
			}
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
}

// TestLocalActorClaims: the local verifier reads the act chain, outermost first, and refuses a
// malformed one.
func TestLocalActorClaims(t *testing.T) {
	iss := authntest.NewIssuer(authntest.WithAudience("orders"))
	v := iss.Verifier()
	defer v.Close()
	c, err := v.Verify(t.Context(), iss.Token(authntest.Actors("svc-c", "svc-b", "svc-a")))
	if err != nil {
		t.Fatal(err)
	}
	want := []authn.Actor{{Subject: "svc-c"}, {Subject: "svc-b"}, {Subject: "svc-a"}}
	if !reflect.DeepEqual(c.Actor, want) || !c.Delegated() || c.Extra != nil {
		t.Errorf("claims = %+v; want actors %v and no extra claims", c, want)
	}
	if a, ok := c.ActingParty(); !ok || a != "svc-c" {
		t.Errorf("ActingParty = %q, %v", a, ok)
	}
	c, err = v.Verify(t.Context(), iss.Token())
	if err != nil || c.Delegated() || c.Actor != nil {
		t.Errorf("a direct token: %+v, %v", c, err)
	}
	if _, err := v.Verify(t.Context(), iss.Token(authntest.Actors("e", "d", "c", "b", "a"))); !errors.Is(err, authn.ErrMalformed) {
		t.Errorf("a chain of five: %v; want ErrMalformed", err)
	}
}

func TestPolicyValidateDelegation(t *testing.T) {
	p := authn.Policy{
		Public:     []string{methodPing},
		Scopes:     map[string][]string{methodGet: nil},
		Delegation: map[string]authn.Delegation{methodPing: authn.RequireDelegated, methodGet: authn.RefuseDelegated, "bad": authn.AcceptDelegated, methodPut: 7},
		Actors:     map[string][]string{methodGet: {"svc-a"}, methodList: {}, methodWatch: {""}},
	}
	err := p.Validate()
	for _, want := range []string{
		"both public and given a delegation rule", "refuses delegated tokens and lists actors",
		`"bad" is not a full method name`, "unknown Delegation value 7", "empty actor list", `actor "" is not`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want it to contain %q", err, want)
		}
	}
}
