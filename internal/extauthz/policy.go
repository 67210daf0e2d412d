package extauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// The default names of the headers the upstream receives.
const (
	DefaultSubjectHeader = "x-token-subject"
	DefaultScopesHeader  = "x-token-scopes"
	DefaultSessionHeader = "x-token-session"
	DefaultActorsHeader  = "x-token-actors"
)

// maxPolicySize bounds a policy file: thousands of routes fit far below it.
const maxPolicySize = 1 << 20

// Policy says, per route, which tokens may pass and what the upstream learns about them.
type Policy struct {
	// Headers names the headers set for the upstream on an allowed request.
	Headers Headers `json:"headers"`
	// Routes map requests to the audience and scopes a token needs.
	Routes []Route `json:"routes"`

	methods  map[string]*Route // by gRPC method
	prefixes []*Route          // path routes, longest prefix first
}

// Headers names the headers of an allowed request. Empty names take the defaults.
type Headers struct {
	Subject string `json:"subject"`
	Scopes  string `json:"scopes"`
	Session string `json:"session"`
	Actors  string `json:"actors"`
	// KeepAuthorization passes the original authorization header on to the upstream; by default
	// it is removed, so that the bearer token goes no further than the proxy.
	KeepAuthorization bool `json:"keep_authorization"`
}

// Route is one entry of the policy: a host and path prefix, or a gRPC method, and what a token
// needs there.
type Route struct {
	// Host, when set, limits a path route to requests for that host (the :authority, compared
	// without its port and case-insensitively).
	Host string `json:"host,omitempty"`
	// PathPrefix matches a request whose path (without its query) starts with it, as Envoy's
	// prefix match does; the longest matching prefix wins.
	PathPrefix string `json:"path_prefix,omitempty"`
	// GRPCMethod matches a gRPC call by its full method name, "/package.Service/Method".
	GRPCMethod string `json:"grpc_method,omitempty"`
	// Audience must be in the token's aud.
	Audience string `json:"audience"`
	// Scopes must all be in the token's scope.
	Scopes []string `json:"scopes,omitempty"`
}

// LoadPolicy reads and validates the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	f, err := os.Open(path) //nolint:gosec // G304: reading the policy file the operator named is the point
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	if len(b) > maxPolicySize {
		return nil, fmt.Errorf("policy %s: larger than %d bytes", path, maxPolicySize)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy decodes a policy from JSON, refusing unknown fields, and validates it, reporting
// every problem at once.
func ParsePolicy(b []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode: trailing data after the policy object")
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return &p, nil
}

// compile fills the defaults, validates, and indexes the routes.
func (p *Policy) compile() error {
	var errs []error
	h := &p.Headers
	names := map[string]string{}
	for _, f := range []struct {
		field string
		v     *string
		def   string
	}{
		{"headers.subject", &h.Subject, DefaultSubjectHeader},
		{"headers.scopes", &h.Scopes, DefaultScopesHeader},
		{"headers.session", &h.Session, DefaultSessionHeader},
		{"headers.actors", &h.Actors, DefaultActorsHeader},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
		*f.v = strings.ToLower(*f.v)
		if err := validHeaderName(*f.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.field, err))
		}
		if other, dup := names[*f.v]; dup {
			errs = append(errs, fmt.Errorf("%s: %q is also %s", f.field, *f.v, other))
		}
		names[*f.v] = f.field
	}
	if len(p.Routes) == 0 {
		errs = append(errs, errors.New("routes: none; a request no route covers is refused, so the policy would refuse everything"))
	}
	p.methods = map[string]*Route{}
	p.prefixes = nil
	seen := map[[2]string]int{}
	for i := range p.Routes {
		r := &p.Routes[i]
		at := fmt.Sprintf("routes[%d]", i)
		r.Host = strings.ToLower(r.Host)
		switch {
		case r.GRPCMethod != "" && (r.PathPrefix != "" || r.Host != ""):
			errs = append(errs, fmt.Errorf("%s: grpc_method excludes path_prefix and host (a gRPC method names its service already)", at))
		case r.GRPCMethod != "":
			if !validMethod(r.GRPCMethod) {
				errs = append(errs, fmt.Errorf("%s: grpc_method %q is not \"/package.Service/Method\"", at, r.GRPCMethod))
			}
			if j, dup := p.methods[r.GRPCMethod]; dup {
				errs = append(errs, fmt.Errorf("%s: grpc_method %q is also routes[%d]", at, r.GRPCMethod, j.index(p)))
			}
			p.methods[r.GRPCMethod] = r
		case r.PathPrefix == "":
			errs = append(errs, fmt.Errorf("%s: needs path_prefix or grpc_method", at))
		default:
			if !strings.HasPrefix(r.PathPrefix, "/") || strings.ContainsAny(r.PathPrefix, "?#") {
				errs = append(errs, fmt.Errorf("%s: path_prefix %q must start with / and hold no query or fragment", at, r.PathPrefix))
			}
			if r.Host != "" && !validHost(r.Host) {
				errs = append(errs, fmt.Errorf("%s: host %q is not a host name (no port, no scheme)", at, r.Host))
			}
			k := [2]string{r.Host, r.PathPrefix}
			if j, dup := seen[k]; dup {
				errs = append(errs, fmt.Errorf("%s: host %q and path_prefix %q are also routes[%d]", at, r.Host, r.PathPrefix, j))
			}
			seen[k] = i
			p.prefixes = append(p.prefixes, r)
		}
		if r.Audience == "" {
			errs = append(errs, fmt.Errorf("%s: needs an audience", at))
		} else if strings.ContainsAny(r.Audience, " \t\r\n") {
			errs = append(errs, fmt.Errorf("%s: audience %q holds white space", at, r.Audience))
		}
		for j, s := range r.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
				errs = append(errs, fmt.Errorf("%s.scopes[%d]: %q is not a scope token", at, j, s))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Longest prefix first, and a route for a host before the same prefix for any host.
	sortRoutes(p.prefixes)
	return nil
}

func (r *Route) index(p *Policy) int {
	for i := range p.Routes {
		if &p.Routes[i] == r {
			return i
		}
	}
	return -1
}

func sortRoutes(rs []*Route) {
	less := func(a, b *Route) bool {
		if len(a.PathPrefix) != len(b.PathPrefix) {
			return len(a.PathPrefix) > len(b.PathPrefix)
		}
		return a.Host != "" && b.Host == ""
	}
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && less(rs[j], rs[j-1]); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// requestPath returns a request's :path without its query or fragment: what routes match and
// what must be normalised.
func requestPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// match returns the route of a request whose path (requestPath: no query) is path, or nil. A
// gRPC method route matches the path exactly; a path route matches its host (any host when it
// names none) and its prefix.
func (p *Policy) match(host, path string) *Route {
	if r, ok := p.methods[path]; ok {
		return r
	}
	host = hostOnly(host)
	for _, r := range p.prefixes {
		if (r.Host == "" || r.Host == host) && strings.HasPrefix(path, r.PathPrefix) {
			return r
		}
	}
	return nil
}

// hostOnly lowercases an :authority and drops its port.
func hostOnly(authority string) string {
	if h, _, err := net.SplitHostPort(authority); err == nil {
		authority = h
	}
	return strings.ToLower(strings.TrimSuffix(authority, "."))
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.'; !ok {
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	svc, method, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	return strings.HasPrefix(m, "/") && ok && svc != "" && method != "" && !strings.ContainsAny(method, "/?#") &&
		!strings.ContainsAny(svc, "?# ")
}

// validHeaderName accepts a lowercase HTTP field name (RFC 9110 token) that Envoy lets an
// authorization server set: not a pseudo-header, not authorization, not a hop-by-hop header.
func validHeaderName(n string) error {
	if n == "" {
		return errors.New("empty header name")
	}
	for _, c := range n {
		if ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c); !ok {
			return fmt.Errorf("%q is not a header name", n)
		}
	}
	switch n {
	case "authorization", "host", "connection", "te", "transfer-encoding", "upgrade", "content-length", "cookie":
		return fmt.Errorf("%q is reserved", n)
	}
	return nil
}
