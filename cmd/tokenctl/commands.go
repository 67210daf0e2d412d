package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// clients are the stubs a command calls.
type clients struct {
	token tokenauthorityv1.TokenServiceClient
	admin tokenauthorityv1.AdminServiceClient
}

// callFunc makes a command's call and prints its result.
type callFunc func(ctx context.Context, c *clients, p *printer) error

// prepareFunc runs after the command's flags are parsed: it validates them and returns the call
// to make, or a usage error.
type prepareFunc func() (callFunc, error)

// command is one tokenctl command; each maps to one RPC.
type command struct {
	// name is the command as typed: one word, or a group and a verb ("tenant create").
	name string
	// synopsis summarises the flags for the usage line.
	synopsis string
	// summary is the one-line description shown in the command list.
	summary string
	// details, when set, follows the summary in the command's own usage.
	details string
	// bind defines the command's flags on fs and returns the function to call after parsing.
	bind func(fs *flag.FlagSet) prepareFunc
	// stream marks a command that runs until it is interrupted or its own flags end it: the
	// global -timeout does not bound it.
	stream bool
}

// commands lists every command in the order of the usage text.
var commands = []*command{
	{
		name:     "tenant create",
		synopsis: "-id ID -issuer URL [-alg EdDSA|ES256|RS256|HS256] [-max-access-ttl D] [-max-refresh-ttl D] [-audience a,b] [-scopes x,y] [-issue-rate N [-issue-burst N]] [-refresh-rate N [-refresh-burst N]] [-revoke-rate N [-revoke-burst N]] [-exchange-rate N [-exchange-burst N]]",
		summary:  "Create a tenant and print its first admin API key.",
		details:  "The admin API key is printed once: store it at once, it is not shown again.",
		bind:     bindTenantCreate,
	},
	{
		name:     "tenant get",
		synopsis: "-id ID",
		summary:  "Show one tenant.",
		bind:     bindTenantGet,
	},
	{
		name:     "tenant list",
		synopsis: "[-page-size N] [-page-token T]",
		summary:  "List tenants, one page at a time.",
		bind:     bindTenantList,
	},
	{
		name:     "tenant delete",
		synopsis: "-id ID -yes",
		summary:  "Delete a tenant, its API keys and principals, and end all its sessions.",
		bind:     bindTenantDelete,
	},
	{
		name:     "apikey create",
		synopsis: "-name N -roles issue,verify[,revoke,admin,exchange] [-accept-audience A -target-audiences x,y] [-tenant ID]",
		summary:  "Create an API key and print its value once.",
		details: "Roles: " + validRoles() + " (case-insensitive). Role exchange needs an exchange policy:\n" +
			"-accept-audience (the audience of the tokens the key may exchange: its own service) and\n" +
			"-target-audiences (the audiences it may ask for). The key's -name becomes the actor (act.sub)\n" +
			"of the tokens it exchanges, and stays the same when the key is rotated.",
		bind: bindAPIKeyCreate,
	},
	{
		name:     "apikey list",
		synopsis: "[-tenant ID]",
		summary:  "List a tenant's API keys (never their values).",
		bind:     bindAPIKeyList,
	},
	{
		name:     "apikey rotate",
		synopsis: "-id KEYID [-overlap 24h]",
		summary:  "Give an API key a new value; the old one works for the overlap.",
		bind:     bindAPIKeyRotate,
	},
	{
		name:     "apikey delete",
		synopsis: "-id KEYID",
		summary:  "Delete an API key at once.",
		bind:     bindAPIKeyDelete,
	},
	{
		name:     "principal create",
		synopsis: "-id IDENT [-display-name N] [-scopes a,b] [-audience x]",
		summary:  "Create a principal (a user or service account).",
		bind:     bindPrincipalCreate,
	},
	{
		name:     "principal set-secret",
		synopsis: "-id IDENT",
		summary:  "Set or reset a principal's secret and print it once.",
		bind:     bindPrincipalSetSecret,
	},
	{
		name:     "principal delete",
		synopsis: "-id IDENT",
		summary:  "Delete a principal.",
		bind:     bindPrincipalDelete,
	},
	{
		name:     "principal list",
		synopsis: "[-tenant ID] [-page-size N] [-page-token T]",
		summary:  "List a tenant's principals, one page at a time (never their secrets).",
		bind:     bindPrincipalList,
	},
	{
		name:     "signing-key rotate",
		synopsis: "[-tenant ID] [-alg EdDSA|ES256|RS256|HS256]",
		summary:  "Publish a new signing key; it signs after the pre-publish delay.",
		bind:     bindSigningKeyRotate,
	},
	{
		name:     "signing-key withdraw",
		synopsis: "-kid KID [-tenant ID] -yes",
		summary:  "Remove a signing key at once; every token it signed becomes inactive.",
		bind:     bindSigningKeyWithdraw,
	},
	{
		name:     "signing-key list",
		synopsis: "[-tenant ID]",
		summary:  "List a tenant's signing keys: published, active, retiring or withdrawn.",
		details: "published: in the JWKS, signs from ACTIVATES; active: signs; retiring: no longer signs and\n" +
			"verifies what it signed until LEAVES; withdrawn: every token it signed is inactive.",
		bind: bindSigningKeyList,
	},
	{
		name:     "refresh-key rotate",
		synopsis: "[-tenant ID] [-if-current KID] [-emergency -yes]",
		summary:  "Give a tenant a new refresh-token key, which signs every refresh token from now on.",
		details: "Routinely the older keys keep refreshing the tokens they signed until the longest session has\n" +
			"passed. -emergency refuses every refresh token of an older key at once (its users sign in\n" +
			"again when their access token expires). -if-current rotates only if KID is still the current\n" +
			"key: Aborted when another rotation came first.",
		bind: bindRefreshKeyRotate,
	},
	{
		name:     "keys",
		synopsis: "",
		summary:  "Print the tenant's public keys as a JSON Web Key Set.",
		bind:     bindKeys,
	},
	{
		name:     "issue",
		synopsis: "-subject S | -principal ID -secret-file F|- [-audience a,b] [-scopes x,y] [-access-ttl D] [-refresh-ttl D] [-claims JSON] [-device N] [-user-agent UA] [-ip IP]",
		summary:  "Open a session and print its access and refresh tokens.",
		details: "-subject asserts a subject and needs an API key with role issue; -principal presents the\n" +
			"principal's own secret, and any API key of the tenant may carry the call.",
		bind: bindIssue,
	},
	{
		name:     "exchange",
		synopsis: "-subject-token-file F|- | -subject-token T -audience a,b [-scopes x,y] [-access-ttl D]",
		summary:  "Exchange a token meant for the caller for a narrower one for another service (RFC 8693).",
		details: "The API key needs role exchange; its exchange policy says which tokens it may exchange and\n" +
			"for which audiences. The new token keeps the subject and session, carries only the -scopes\n" +
			"asked for (each one the subject token has), never outlives the subject token, and names the\n" +
			"key's name as its actor. No refresh token is issued.",
		bind: bindExchange,
	},
	{
		name:     "refresh",
		synopsis: "-refresh-token-file F|- | -refresh-token T",
		summary:  "Exchange a refresh token for the session's new token pair.",
		details: "The refresh token presented is used up: keep the new one. A retry within the grace window\n" +
			"gets the same pair back; a later one is reuse, and ends the session.",
		bind: bindRefresh,
	},
	{
		name:     "revoke",
		synopsis: "-token T | -jti J | -session S",
		summary:  "Revoke one token (by value or jti) or one session.",
		bind:     bindRevoke,
	},
	{
		name:     "revoke-sessions",
		synopsis: "-subject S | -all-in-tenant -yes",
		summary:  "End every session of a subject, or of the whole tenant.",
		bind:     bindRevokeSessions,
	},
	{
		name:     "sessions",
		synopsis: "-subject S [-page-size N] [-page-token T]",
		summary:  "List a subject's live sessions, newest first.",
		bind:     bindSessions,
	},
	{
		name:     "verify",
		synopsis: "-token T [-audience A] [-scopes a,b]",
		summary:  "Introspect an access token: active, or inactive with a reason.",
		details: "Exit status: 0 when the token is active, 1 when it is inactive (the reason is printed on\n" +
			"stdout) or the call fails (on stderr), 2 on a usage error; so \"verify ... && ...\" goes\n" +
			"ahead only with an active token.",
		bind: bindVerify,
	},
	{
		name:     "watch",
		synopsis: "[-cursor C] [-until-caught-up] [-for D]",
		summary:  "Print revocation events as they happen, one line each, until interrupted.",
		details:  watchDetails,
		bind:     bindWatch,
		stream:   true,
	},
}

// lookup finds the command named by the first one or two words of args and returns it with the
// remaining arguments.
func lookup(args []string) (*command, []string, error) {
	if c := findCommand(args[0]); c != nil {
		return c, args[1:], nil
	}
	verbs := verbsOf(args[0])
	if len(verbs) == 0 {
		return nil, nil, usagef("unknown command %q", args[0])
	}
	if len(args) < 2 || strings.HasPrefix(args[1], "-") {
		return nil, nil, usagef("%s: missing subcommand (one of: %s)", args[0], strings.Join(verbs, ", "))
	}
	if c := findCommand(args[0] + " " + args[1]); c != nil {
		return c, args[2:], nil
	}
	return nil, nil, usagef("%s: unknown subcommand %q (one of: %s)", args[0], args[1], strings.Join(verbs, ", "))
}

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// verbsOf returns the subcommands of a command group, or nil when group is not one.
func verbsOf(group string) []string {
	var verbs []string
	for _, c := range commands {
		if g, verb, ok := strings.Cut(c.name, " "); ok && g == group {
			verbs = append(verbs, verb)
		}
	}
	return verbs
}

// newCommandFlagSet returns an empty FlagSet for cmd that reports errors to its caller instead of
// printing them.
func newCommandFlagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet("tokenctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

func bindTenantCreate(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "tenant identifier: lower-case letters, digits and dashes (required)")
	issuer := fs.String("issuer", "", "issuer (iss) of the tenant's tokens, e.g. https://auth.example.com (required)")
	alg := fs.String("alg", "", "algorithm of the tenant's signing keys: EdDSA, ES256, RS256 or HS256 (server default when unset)")
	maxAccess := fs.Duration("max-access-ttl", 0, "longest access-token lifetime callers may request, e.g. 1h (server bound when unset)")
	maxRefresh := fs.Duration("max-refresh-ttl", 0, "longest session lifetime callers may request, e.g. 720h (server bound when unset)")
	audience := listVar(fs, "audience", "comma-separated `list` of audiences callers may request (any when unset)")
	scopes := listVar(fs, "scopes", "comma-separated `list` of scopes callers may request (any when unset)")
	issueRate := fs.Float64("issue-rate", 0, "IssueToken calls per second per API key and replica (server default when unset)")
	issueBurst := fs.Uint("issue-burst", 0, "IssueToken burst per API key and replica (twice the rate when unset)")
	refreshRate := fs.Float64("refresh-rate", 0, "RefreshToken calls per second per API key and replica (server default when unset)")
	refreshBurst := fs.Uint("refresh-burst", 0, "RefreshToken burst per API key and replica (twice the rate when unset)")
	revokeRate := fs.Float64("revoke-rate", 0, "RevokeToken calls per second per API key and replica, and apart RevokeSessions calls (server default when unset)")
	revokeBurst := fs.Uint("revoke-burst", 0, "RevokeToken and RevokeSessions burst per API key and replica (twice the rate when unset)")
	exchangeRate := fs.Float64("exchange-rate", 0, "ExchangeToken calls per second per API key and replica (server default when unset)")
	exchangeBurst := fs.Uint("exchange-burst", 0, "ExchangeToken burst per API key and replica (twice the rate when unset)")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		if err := required("issuer", *issuer); err != nil {
			return nil, err
		}
		a, err := parseAlgorithm(*alg)
		if err != nil {
			return nil, err
		}
		at, err := optionalDuration("max-access-ttl", *maxAccess)
		if err != nil {
			return nil, err
		}
		rt, err := optionalDuration("max-refresh-ttl", *maxRefresh)
		if err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
			TenantId:          *id,
			Issuer:            *issuer,
			Algorithm:         a,
			MaxAccessTtl:      at,
			MaxRefreshTtl:     rt,
			AllowedAudiences:  *audience,
			AllowedScopes:     *scopes,
			IssueRateLimit:    rateLimit(*issueRate, *issueBurst),
			RefreshRateLimit:  rateLimit(*refreshRate, *refreshBurst),
			RevokeRateLimit:   rateLimit(*revokeRate, *revokeBurst),
			ExchangeRateLimit: rateLimit(*exchangeRate, *exchangeBurst),
		}}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.CreateTenant(ctx, req)
			if err != nil {
				return err
			}
			return p.secret(resp, warnKey, func(w io.Writer) {
				writeTenant(w, resp.GetTenant())
				fmt.Fprintf(w, "Admin API key:\t%s\n", resp.GetAdminApiKey())
			})
		}, nil
	}
}

func bindTenantGet(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "tenant identifier (required)")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.GetTenantRequest{TenantId: *id}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.GetTenant(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeTenant(w, resp.GetTenant()) })
		}, nil
	}
}

func bindTenantList(fs *flag.FlagSet) prepareFunc {
	size := fs.Int("page-size", 0, "maximum number of tenants to return (server default when 0)")
	token := fs.String("page-token", "", "next-page token of a previous list")
	return func() (callFunc, error) {
		n, err := pageSize(*size)
		if err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.ListTenantsRequest{PageSize: n, PageToken: *token}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.ListTenants(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeTenantList(w, resp) })
		}, nil
	}
}

func bindTenantDelete(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "tenant identifier (required)")
	yes := fs.Bool("yes", false, "confirm the deletion (required)")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		if !*yes {
			return nil, usagef("refusing to delete tenant %q without -yes: "+
				"it deletes the tenant's API keys and principals and ends all its sessions", *id)
		}
		req := &tokenauthorityv1.DeleteTenantRequest{TenantId: *id}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.DeleteTenant(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { fmt.Fprintf(w, "deleted tenant %s\n", req.GetTenantId()) })
		}, nil
	}
}

func bindAPIKeyCreate(fs *flag.FlagSet) prepareFunc {
	name := fs.String("name", "", "human-readable name of the key (required)")
	roles := listVar(fs, "roles", "comma-separated `list` of roles: "+validRoles()+" (required)")
	tenant := fs.String("tenant", "", "tenant of the key (the caller's when unset)")
	accept := fs.String("accept-audience", "", "with role exchange: the audience a token must contain for the key to exchange it")
	targets := listVar(fs, "target-audiences", "with role exchange: comma-separated `list` of the audiences the key may exchange tokens for")
	return func() (callFunc, error) {
		if err := required("name", *name); err != nil {
			return nil, err
		}
		if len(*roles) == 0 {
			return nil, usagef("-roles is required (valid: %s)", validRoles())
		}
		rs, err := parseRoles(*roles)
		if err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.CreateApiKeyRequest{TenantId: *tenant, Name: *name, Roles: rs}
		if *accept != "" || len(*targets) > 0 {
			req.ExchangePolicy = &tokenauthorityv1.ExchangePolicy{AcceptAudience: *accept, TargetAudiences: *targets}
		}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.CreateApiKey(ctx, req)
			if err != nil {
				return err
			}
			return p.secret(resp, warnKey, func(w io.Writer) {
				writeAPIKey(w, resp.GetApiKey())
				fmt.Fprintf(w, "API key:\t%s\n", resp.GetSecret())
			})
		}, nil
	}
}

func bindAPIKeyList(fs *flag.FlagSet) prepareFunc {
	tenant := fs.String("tenant", "", "tenant whose keys to list (the caller's when unset)")
	return func() (callFunc, error) {
		req := &tokenauthorityv1.ListApiKeysRequest{TenantId: *tenant}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.ListApiKeys(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeAPIKeyList(w, resp) })
		}, nil
	}
}

func bindAPIKeyRotate(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "identifier of the key to rotate (required)")
	overlap := fs.Duration("overlap", 24*time.Hour, "how long the old value keeps working; 0 stops it at once")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		if *overlap < 0 {
			return nil, usagef("-overlap must not be negative, got %s", *overlap)
		}
		req := &tokenauthorityv1.RotateApiKeyRequest{KeyId: *id, Overlap: durationpb.New(*overlap)}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.RotateApiKey(ctx, req)
			if err != nil {
				return err
			}
			return p.secret(resp, warnKey, func(w io.Writer) {
				writeAPIKey(w, resp.GetApiKey())
				fmt.Fprintf(w, "API key:\t%s\n", resp.GetSecret())
			})
		}, nil
	}
}

func bindAPIKeyDelete(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "identifier of the key to delete (required)")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.DeleteApiKeyRequest{KeyId: *id}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.DeleteApiKey(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { fmt.Fprintf(w, "deleted API key %s\n", req.GetKeyId()) })
		}, nil
	}
}

func bindPrincipalCreate(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "principal identifier; it becomes the tokens' subject (required)")
	displayName := fs.String("display-name", "", "human-readable name")
	scopes := listVar(fs, "scopes", "comma-separated `list` of scopes granted to the principal's tokens")
	audience := listVar(fs, "audience", "comma-separated `list` of audiences of the principal's tokens")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.CreatePrincipalRequest{Principal: &tokenauthorityv1.Principal{
			Identifier:  *id,
			DisplayName: *displayName,
			Scopes:      *scopes,
			Audience:    *audience,
		}}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.CreatePrincipal(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writePrincipal(w, resp.GetPrincipal()) })
		}, nil
	}
}

func bindPrincipalSetSecret(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "principal identifier (required)")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.SetPrincipalSecretRequest{Identifier: *id}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.SetPrincipalSecret(ctx, req)
			if err != nil {
				return err
			}
			return p.secret(resp, warnSecret, func(w io.Writer) {
				fmt.Fprintf(w, "Principal:\t%s\n", req.GetIdentifier())
				fmt.Fprintf(w, "Secret:\t%s\n", resp.GetSecret())
			})
		}, nil
	}
}

func bindPrincipalDelete(fs *flag.FlagSet) prepareFunc {
	id := fs.String("id", "", "principal identifier (required)")
	return func() (callFunc, error) {
		if err := required("id", *id); err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.DeletePrincipalRequest{Identifier: *id}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.DeletePrincipal(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { fmt.Fprintf(w, "deleted principal %s\n", req.GetIdentifier()) })
		}, nil
	}
}

func bindSigningKeyRotate(fs *flag.FlagSet) prepareFunc {
	tenant := fs.String("tenant", "", "tenant (the caller's when unset)")
	alg := fs.String("alg", "", "algorithm of the new key: EdDSA, ES256, RS256 or HS256 (the tenant's when unset)")
	return func() (callFunc, error) {
		a, err := parseAlgorithm(*alg)
		if err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.RotateSigningKeyRequest{TenantId: *tenant, Algorithm: a}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.RotateSigningKey(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeSigningKey(w, resp.GetKey()) })
		}, nil
	}
}

func bindSigningKeyWithdraw(fs *flag.FlagSet) prepareFunc {
	kid := fs.String("kid", "", "identifier of the key to withdraw (required)")
	tenant := fs.String("tenant", "", "tenant (the caller's when unset)")
	yes := fs.Bool("yes", false, "confirm the withdrawal (required)")
	return func() (callFunc, error) {
		if err := required("kid", *kid); err != nil {
			return nil, err
		}
		if !*yes {
			return nil, usagef("refusing to withdraw signing key %q without -yes: every token it signed becomes inactive", *kid)
		}
		req := &tokenauthorityv1.WithdrawSigningKeyRequest{TenantId: *tenant, Kid: *kid}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.WithdrawSigningKey(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { fmt.Fprintf(w, "withdrew signing key %s\n", req.GetKid()) })
		}, nil
	}
}

func bindPrincipalList(fs *flag.FlagSet) prepareFunc {
	tenant := fs.String("tenant", "", "tenant whose principals to list (the caller's when unset)")
	size := fs.Int("page-size", 0, "maximum number of principals to return (server default when 0)")
	token := fs.String("page-token", "", "next-page token of a previous list")
	return func() (callFunc, error) {
		n, err := pageSize(*size)
		if err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.ListPrincipalsRequest{TenantId: *tenant, PageSize: n, PageToken: *token}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.ListPrincipals(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writePrincipalList(w, resp) })
		}, nil
	}
}

func bindSigningKeyList(fs *flag.FlagSet) prepareFunc {
	tenant := fs.String("tenant", "", "tenant (the caller's when unset)")
	return func() (callFunc, error) {
		req := &tokenauthorityv1.ListSigningKeysRequest{TenantId: *tenant}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.ListSigningKeys(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeSigningKeyList(w, resp) })
		}, nil
	}
}

func bindRefreshKeyRotate(fs *flag.FlagSet) prepareFunc {
	tenant := fs.String("tenant", "", "tenant (the caller's when unset)")
	ifCurrent := fs.String("if-current", "", "rotate only if `KID` is still the current refresh-token key")
	emergency := fs.Bool("emergency", false, "refuse every refresh token of an older key at once (needs -yes)")
	yes := fs.Bool("yes", false, "confirm -emergency")
	return func() (callFunc, error) {
		if *emergency && !*yes {
			return nil, usagef("refusing an emergency rotation without -yes: every refresh token signed by an older key " +
				"is refused at once, and its user signs in again when the access token expires")
		}
		req := &tokenauthorityv1.RotateRefreshKeyRequest{TenantId: *tenant, Emergency: *emergency, IfCurrentKid: *ifCurrent}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.admin.RotateRefreshKey(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeRefreshRotation(w, resp) })
		}, nil
	}
}

func bindKeys(*flag.FlagSet) prepareFunc {
	return func() (callFunc, error) {
		req := &tokenauthorityv1.ListPublicKeysRequest{}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.token.ListPublicKeys(ctx, req)
			if err != nil {
				return err
			}
			return p.json(resp)
		}, nil
	}
}

func bindRevoke(fs *flag.FlagSet) prepareFunc {
	token := fs.String("token", "", "an access token (revokes it) or a refresh token (revokes its session)")
	jti := fs.String("jti", "", "an access token's jti")
	session := fs.String("session", "", "a session identifier")
	return func() (callFunc, error) {
		req := &tokenauthorityv1.RevokeTokenRequest{}
		var what string
		n := 0
		if *token != "" {
			n++
			req.Target, what = &tokenauthorityv1.RevokeTokenRequest_Token{Token: *token}, "revoked the token"
		}
		if *jti != "" {
			n++
			req.Target, what = &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: *jti}, "revoked token jti "+*jti
		}
		if *session != "" {
			n++
			req.Target, what = &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: *session}, "revoked session "+*session
		}
		if n != 1 {
			return nil, usagef("exactly one of -token, -jti or -session is required, got %d", n)
		}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.token.RevokeToken(ctx, req)
			if err != nil {
				// -token may be a refresh token, a credential that errors must not echo.
				return redactErr(err, *token)
			}
			// The token itself is a credential: the text names it without echoing it.
			return p.print(resp, func(w io.Writer) { fmt.Fprintln(w, what) })
		}, nil
	}
}

func bindRevokeSessions(fs *flag.FlagSet) prepareFunc {
	subject := fs.String("subject", "", "end every session of this subject")
	all := fs.Bool("all-in-tenant", false, "end every session of the caller's tenant (needs -yes)")
	yes := fs.Bool("yes", false, "confirm -all-in-tenant")
	return func() (callFunc, error) {
		req := &tokenauthorityv1.RevokeSessionsRequest{}
		switch {
		case *subject != "" && *all:
			return nil, usagef("-subject and -all-in-tenant are mutually exclusive")
		case *subject != "":
			req.Scope = &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: *subject}
		case *all && !*yes:
			return nil, usagef("refusing to end every session of the tenant without -yes")
		case *all:
			req.Scope = &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}
		default:
			return nil, usagef("one of -subject or -all-in-tenant is required")
		}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.token.RevokeSessions(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) {
				whose := "every session of the tenant"
				if s := req.GetSubject(); s != "" {
					whose = "every session of subject " + s
				}
				fmt.Fprintf(w, "revoked %s issued before %s\n", whose, formatTime(resp.GetCutoffTime()))
			})
		}, nil
	}
}

func bindSessions(fs *flag.FlagSet) prepareFunc {
	subject := fs.String("subject", "", "subject whose sessions to list (required)")
	size := fs.Int("page-size", 0, "maximum number of sessions to return (server default when 0)")
	token := fs.String("page-token", "", "next-page token of a previous list")
	return func() (callFunc, error) {
		if err := required("subject", *subject); err != nil {
			return nil, err
		}
		n, err := pageSize(*size)
		if err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.ListSessionsRequest{Subject: *subject, PageSize: n, PageToken: *token}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.token.ListSessions(ctx, req)
			if err != nil {
				return err
			}
			return p.print(resp, func(w io.Writer) { writeSessionList(w, resp) })
		}, nil
	}
}

func bindVerify(fs *flag.FlagSet) prepareFunc {
	token := fs.String("token", "", "the access token (required)")
	audience := fs.String("audience", "", "audience the token must contain")
	scopes := listVar(fs, "scopes", "comma-separated `list` of scopes the token must all carry")
	thumbprint := fs.String("cert-thumbprint", "", "x5t#S256 `thumbprint` of the client certificate the token was presented with (a bound token needs it)")
	return func() (callFunc, error) {
		if err := required("token", *token); err != nil {
			return nil, err
		}
		req := &tokenauthorityv1.VerifyTokenRequest{Token: *token, Audience: *audience, RequiredScopes: *scopes,
			CertificateThumbprint: *thumbprint}
		return func(ctx context.Context, c *clients, p *printer) error {
			resp, err := c.token.VerifyToken(ctx, req)
			if err != nil {
				// A server may echo what it was sent: never the token.
				return redactErr(err, *token)
			}
			if err := p.print(resp, func(w io.Writer) { writeVerify(w, resp) }); err != nil {
				return err
			}
			if !resp.GetActive() {
				return errInactive
			}
			return nil
		}, nil
	}
}

// errInactive is what verify returns, once it has printed the answer, for a token that is not
// active; run turns it into exitInactive.
var errInactive = errors.New("the token is not active")

// rateLimit is the limit of the flags: none when the rate is unset (the server validates the rest);
// the burst defaults to twice the rate.
func rateLimit(perSecond float64, burst uint) *tokenauthorityv1.RateLimit {
	if perSecond == 0 && burst == 0 {
		return nil
	}
	if burst == 0 {
		burst = uint(max(1, 2*perSecond))
	}
	return &tokenauthorityv1.RateLimit{PerSecond: perSecond, Burst: uint32(min(burst, 1<<31))}
}
