package main

import (
	"flag"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// listFlag is a flag.Value holding a comma-separated list; repeating the flag appends to it.
// Blank items are dropped.
type listFlag []string

func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set appends the comma-separated items of s.
func (l *listFlag) Set(s string) error {
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// listVar defines a listFlag on fs.
func listVar(fs *flag.FlagSet, name, usage string) *listFlag {
	l := new(listFlag)
	fs.Var(l, name, usage)
	return l
}

// roleNames maps the lower-case role names accepted on the command line to roles, in the order
// usage messages list them.
var roleNames = []struct {
	name string
	role tokenauthorityv1.Role
}{
	{"issue", tokenauthorityv1.Role_ROLE_ISSUE},
	{"verify", tokenauthorityv1.Role_ROLE_VERIFY},
	{"revoke", tokenauthorityv1.Role_ROLE_REVOKE},
	{"admin", tokenauthorityv1.Role_ROLE_ADMIN},
	{"exchange", tokenauthorityv1.Role_ROLE_EXCHANGE},
}

// validRoles lists the accepted role names for messages.
func validRoles() string {
	names := make([]string, 0, len(roleNames))
	for _, r := range roleNames {
		names = append(names, r.name)
	}
	return strings.Join(names, ", ")
}

// parseRoles maps role names (case-insensitive, with or without the ROLE_ prefix) to roles,
// dropping duplicates.
func parseRoles(names []string) ([]tokenauthorityv1.Role, error) {
	var roles []tokenauthorityv1.Role
	for _, n := range names {
		r, ok := lookupRole(n)
		if !ok {
			return nil, usagef("unknown role %q (valid: %s)", n, validRoles())
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

func lookupRole(name string) (tokenauthorityv1.Role, bool) {
	name = strings.TrimPrefix(strings.ToLower(name), "role_")
	for _, r := range roleNames {
		if r.name == name {
			return r.role, true
		}
	}
	return tokenauthorityv1.Role_ROLE_UNSPECIFIED, false
}

// roleName returns the command-line name of r.
func roleName(r tokenauthorityv1.Role) string {
	for _, rn := range roleNames {
		if rn.role == r {
			return rn.name
		}
	}
	return r.String()
}

// algorithmNames maps the JWS names of the signing algorithms (accesstoken.Algorithms) to their
// enum values.
var algorithmNames = []struct {
	name string
	alg  tokenauthorityv1.SigningAlgorithm
}{
	{string(accesstoken.EdDSA), tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_EDDSA},
	{string(accesstoken.ES256), tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_ES256},
	{string(accesstoken.RS256), tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_RS256},
	{string(accesstoken.HS256), tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_HS256},
}

// parseAlgorithm maps a JWS algorithm name (case-insensitive) to its enum value; the empty name
// is unspecified, which lets the server choose.
func parseAlgorithm(name string) (tokenauthorityv1.SigningAlgorithm, error) {
	if name == "" {
		return tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED, nil
	}
	names := make([]string, 0, len(algorithmNames))
	for _, a := range algorithmNames {
		if strings.EqualFold(a.name, name) {
			return a.alg, nil
		}
		names = append(names, a.name)
	}
	return 0, usagef("unknown algorithm %q (valid: %s)", name, strings.Join(names, ", "))
}

// algorithmName returns the JWS name of alg.
func algorithmName(alg tokenauthorityv1.SigningAlgorithm) string {
	for _, a := range algorithmNames {
		if a.alg == alg {
			return a.name
		}
	}
	if alg == tokenauthorityv1.SigningAlgorithm_SIGNING_ALGORITHM_UNSPECIFIED {
		return "unspecified"
	}
	return alg.String()
}

// required returns a usage error when the flag name has an empty value.
func required(name, value string) error {
	if value == "" {
		return usagef("-%s is required", name)
	}
	return nil
}

// pageSize checks a -page-size flag value; zero lets the server choose.
func pageSize(n int) (int32, error) {
	if n < 0 || n > math.MaxInt32 {
		return 0, usagef("-page-size must be between 0 and %d, got %d", math.MaxInt32, n)
	}
	return int32(n), nil
}

// optionalDuration converts a duration flag value; zero means unset.
func optionalDuration(name string, d time.Duration) (*durationpb.Duration, error) {
	switch {
	case d < 0:
		return nil, usagef("-%s must not be negative, got %s", name, d)
	case d == 0:
		return nil, nil
	}
	return durationpb.New(d), nil
}
