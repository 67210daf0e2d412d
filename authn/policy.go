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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// Delegation says, per method, whether tokens obtained by token exchange (Claims.Delegated)
	// may call it; a method it does not name accepts both kinds (AcceptDelegated).
	Delegation map[string]Delegation
	// Actors restricts, per method, which services may present a delegated token: the token's
	// acting party (Claims.ActingParty) must be one of the names listed. A method named here needs
	// a delegated token, as with RequireDelegated.
	Actors map[string][]string
}

// Delegation says whether a method accepts tokens that a service obtained by token exchange to
// act on a user's behalf.
type Delegation int

const (
	// AcceptDelegated lets both tokens issued to their subject and delegated tokens call the
	// method. It is the zero value.
	AcceptDelegated Delegation = iota
	// RequireDelegated accepts delegated tokens only: a method that services call on a user's
	// behalf, never the user directly.
	RequireDelegated
	// RefuseDelegated accepts tokens issued to their subject only: a method that no service may
	// call on a user's behalf.
	RefuseDelegated
)

// rule is what the AuthFunc does with one method.
type rule struct {
	public     bool
	deny       bool
	scopes     []string
	delegation Delegation
	actors     []string // nil: any actor
}

// compiledPolicy is a Policy copied into maps, so that later changes to the caller's Policy
// cannot change a running interceptor.
type compiledPolicy struct {
	// public lists the methods that need no token (Matcher and Covers read it).
	public map[string]bool
	// rules holds the rule of every listed method, so that a call looks its method up once;
	// unlisted is the rule of the others.
	rules    map[string]rule
	unlisted rule
}

func (p Policy) compile() *compiledPolicy {
	public := map[string]bool{}
	for _, m := range p.Public {
		public[m] = true
	}
	deny := p.Unlisted != AuthenticateUnlisted
	rules := map[string]rule{}
	entry := func(m string) rule {
		r, ok := rules[m]
		if !ok {
			r.deny = deny // a method without scopes keeps the unlisted answer
		}
		delete(public, m) // a token rule wins over Public: the stricter entry
		return r
	}
	for m, sc := range p.Scopes {
		r := entry(m)
		r.scopes, r.deny = slices.Clone(sc), false
		rules[m] = r
	}
	for m, d := range p.Delegation {
		r := entry(m)
		r.delegation = d
		rules[m] = r
	}
	for m, a := range p.Actors {
		r := entry(m)
		// An empty list admits no actor at all, not any actor.
		r.actors = append([]string{}, a...)
		rules[m] = r
	}
	for m := range public {
		rules[m] = rule{public: true}
	}
	return &compiledPolicy{public: public, rules: rules, unlisted: rule{deny: deny}}
}

func (cp *compiledPolicy) rule(method string) rule {
	if r, ok := cp.rules[method]; ok {
		return r
	}
	return cp.unlisted
}

// checkDelegation applies the rule's delegation entries to a verified token, and returns a
// PermissionDenied status for a token the method does not accept.
func (r rule) checkDelegation(method string, c *Claims) error {
	actor, delegated := c.ActingParty()
	switch {
	case r.delegation == RefuseDelegated && delegated:
		return status.Errorf(codes.PermissionDenied, "%s does not accept delegated tokens (this one is presented by %q on behalf of its subject)", method, actor)
	case (r.delegation == RequireDelegated || r.actors != nil) && !delegated:
		return status.Errorf(codes.PermissionDenied, "%s accepts only tokens obtained by token exchange on a user's behalf", method)
	case r.actors != nil && !slices.Contains(r.actors, actor):
		return status.Errorf(codes.PermissionDenied, "%s does not accept delegated tokens presented by %q", method, actor)
	}
	return nil
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
	for _, m := range sortedKeys(p.Delegation) {
		d := p.Delegation[m]
		switch {
		case !validMethodName(m):
			errs = append(errs, fmt.Errorf("delegation rule's method %q is not a full method name (/package.Service/Method)", m))
		case public[m]:
			errs = append(errs, fmt.Errorf("method %q is both public and given a delegation rule", m))
		}
		if d != AcceptDelegated && d != RequireDelegated && d != RefuseDelegated {
			errs = append(errs, fmt.Errorf("method %q: unknown Delegation value %d", m, int(d)))
		}
		if _, ok := p.Actors[m]; ok && d == RefuseDelegated {
			errs = append(errs, fmt.Errorf("method %q refuses delegated tokens and lists actors for them", m))
		}
	}
	for _, m := range sortedKeys(p.Actors) {
		switch {
		case !validMethodName(m):
			errs = append(errs, fmt.Errorf("actors' method %q is not a full method name (/package.Service/Method)", m))
		case public[m]:
			errs = append(errs, fmt.Errorf("method %q is both public and given actors", m))
		}
		if len(p.Actors[m]) == 0 {
			errs = append(errs, fmt.Errorf("method %q: an empty actor list admits no token; list the actors, or remove the entry", m))
		}
		for _, a := range p.Actors[m] {
			if !accesstoken.ValidActor(a) {
				errs = append(errs, fmt.Errorf("method %q: actor %q is not 1-256 bytes of UTF-8", m, a))
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
	for m := range p.Delegation {
		listed[m] = true
	}
	for m := range p.Actors {
		listed[m] = true
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
