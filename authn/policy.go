package authn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Unlisted says what the AuthFunc does with a method that a Policy neither makes public nor gives
// scopes to.
type Unlisted int

const (
	// DenyUnlisted refuses unlisted methods with PermissionDenied, whatever the token. It is the
	// zero value: a method added to a service without a policy entry is closed until classified.
	DenyUnlisted Unlisted = iota
	// AuthenticateUnlisted lets any valid token of the service's audience call unlisted methods.
	AuthenticateUnlisted
)

// Policy says, per full method name ("/package.Service/Method"), who may call a method.
//
// A method that is both public and given scopes is treated as needing the scopes: the stricter
// entry wins. Validate reports such mistakes, and Covers checks a server's methods against the
// policy, which a service's tests should call.
type Policy struct {
	// Public lists the methods that need no token at all (health checks, reflection). The
	// AuthFunc does not even look for a token on them.
	Public []string
	// Scopes maps a method to the scopes a token must all carry to call it. An empty list means
	// any valid token of the service's audience.
	Scopes map[string][]string
	// Unlisted decides the methods in neither Public nor Scopes; DenyUnlisted by default.
	Unlisted Unlisted
}

// rule is what the AuthFunc does with one method.
type rule struct {
	public bool
	deny   bool
	scopes []string
}

// compiledPolicy is a Policy copied into maps, so that later changes to the caller's Policy
// cannot change a running interceptor.
type compiledPolicy struct {
	public   map[string]bool
	scopes   map[string][]string
	unlisted Unlisted
}

func (p Policy) compile() *compiledPolicy {
	cp := &compiledPolicy{public: map[string]bool{}, scopes: map[string][]string{}, unlisted: p.Unlisted}
	for _, m := range p.Public {
		cp.public[m] = true
	}
	for m, s := range p.Scopes {
		cp.scopes[m] = slices.Clone(s)
		delete(cp.public, m)
	}
	return cp
}

func (cp *compiledPolicy) rule(method string) rule {
	if cp.public[method] {
		return rule{public: true}
	}
	if s, ok := cp.scopes[method]; ok {
		return rule{scopes: s}
	}
	return rule{deny: cp.unlisted != AuthenticateUnlisted}
}

// Validate reports every mistake in p at once: method names that are not full method names,
// empty scopes, methods both public and scoped, and an unknown Unlisted value.
func (p Policy) Validate() error {
	var errs []error
	public := map[string]bool{}
	for _, m := range p.Public {
		if !validMethodName(m) {
			errs = append(errs, fmt.Errorf("public method %q is not a full method name (/package.Service/Method)", m))
		}
		public[m] = true
	}
	for _, m := range sortedKeys(p.Scopes) {
		if !validMethodName(m) {
			errs = append(errs, fmt.Errorf("scoped method %q is not a full method name (/package.Service/Method)", m))
		}
		if public[m] {
			errs = append(errs, fmt.Errorf("method %q is both public and scoped", m))
		}
		for _, s := range p.Scopes[m] {
			if !accesstoken.ValidScope(s) {
				errs = append(errs, fmt.Errorf("method %q: scope %q is not a scope token: %s", m, s, accesstoken.ScopeRule))
			}
		}
	}
	if p.Unlisted != DenyUnlisted && p.Unlisted != AuthenticateUnlisted {
		errs = append(errs, fmt.Errorf("unknown Unlisted value %d", int(p.Unlisted)))
	}
	return errors.Join(errs...)
}

// Covers reports, in one error, the methods of services (as grpc.Server.GetServiceInfo returns
// them) that p does not classify, and the entries of p that name no method of services. With
// DenyUnlisted an unclassified method is refused at run time; this check lets a test catch it
// before.
func (p Policy) Covers(services map[string]grpc.ServiceInfo) error {
	known := map[string]bool{}
	for svc, info := range services {
		for _, m := range info.Methods {
			known["/"+svc+"/"+m.Name] = true
		}
	}
	listed := map[string]bool{}
	for _, m := range p.Public {
		listed[m] = true
	}
	for m := range p.Scopes {
		listed[m] = true
	}
	var errs []error
	for _, m := range sortedKeys(known) {
		if !listed[m] {
			errs = append(errs, fmt.Errorf("method %s is not in the policy", m))
		}
	}
	for _, m := range sortedKeys(listed) {
		if !known[m] {
			errs = append(errs, fmt.Errorf("policy names %s, which the server does not serve", m))
		}
	}
	return errors.Join(errs...)
}

// Matcher returns the selector.Matcher that selects every method except the public ones, for
// wrapping an auth interceptor:
//
//	selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authn.AuthFunc(v, p)), p.Matcher())
func (p Policy) Matcher() selector.Matcher {
	cp := p.compile()
	public := make(map[serviceMethod]bool, len(cp.public))
	for m := range cp.public {
		svc, method, _ := strings.Cut(strings.TrimPrefix(m, "/"), "/")
		public[serviceMethod{svc, method}] = true
	}
	// CallMeta.FullMethod formats a string; looking up the parts allocates nothing.
	return selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !public[serviceMethod{c.Service, c.Method}]
	})
}

type serviceMethod struct{ service, method string }

// validMethodName reports whether m looks like "/package.Service/Method".
func validMethodName(m string) bool {
	svc, method, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	return strings.HasPrefix(m, "/") && ok && svc != "" && method != "" && !strings.Contains(method, "/")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
