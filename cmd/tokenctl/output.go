package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// Warnings printed with the secrets that an RPC returns once.
//
//nolint:gosec // G101 matches "secret" in these warnings, which hold none.
const (
	warnKey    = "store this key now: it is not shown again"
	warnSecret = "store this secret now: it is not shown again"
)

// jsonOptions renders results for -o json as grpcurl does: protojson's defaults, so lowerCamelCase
// field names (accessToken, sessionId), which the README's recipes pick out of either tool's output.
var jsonOptions = protojson.MarshalOptions{Multiline: true, Indent: "  "}

// jsonLineOptions renders one message of a stream per line.
var jsonLineOptions = protojson.MarshalOptions{}

// printer is a command's terminal: it writes call results in the chosen output format, and in is
// where a secret whose file is "-" is read from.
type printer struct {
	in     io.Reader
	out    io.Writer
	errOut io.Writer
	asJSON bool
}

// print writes m as JSON, or as the text that text writes into aligned columns.
func (p *printer) print(m proto.Message, text func(w io.Writer)) error {
	if p.asJSON {
		return p.json(m)
	}
	tw := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

// secret is print for a result that holds a secret shown once: it adds a warning, on stderr in
// JSON mode so that stdout stays one JSON object.
func (p *printer) secret(m proto.Message, warning string, text func(w io.Writer)) error {
	if !p.asJSON {
		return p.print(m, func(w io.Writer) {
			text(w)
			fmt.Fprintf(w, "\n%s\n", warning)
		})
	}
	if err := p.json(m); err != nil {
		return err
	}
	_, err := fmt.Fprintf(p.errOut, "tokenctl: %s\n", warning)
	return err
}

// json writes m as one JSON object followed by a newline.
func (p *printer) json(m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	_, err = p.out.Write(append(b, '\n'))
	return err
}

func writeTenant(w io.Writer, t *tokenauthorityv1.Tenant) {
	fmt.Fprintf(w, "Tenant:\t%s\n", display(t.GetTenantId()))
	fmt.Fprintf(w, "Issuer:\t%s\n", display(t.GetIssuer()))
	fmt.Fprintf(w, "Algorithm:\t%s\n", algorithmName(t.GetAlgorithm()))
	fmt.Fprintf(w, "Max access TTL:\t%s\n", formatDuration(t.GetMaxAccessTtl(), "server bound"))
	fmt.Fprintf(w, "Max refresh TTL:\t%s\n", formatDuration(t.GetMaxRefreshTtl(), "server bound"))
	fmt.Fprintf(w, "Allowed audiences:\t%s\n", formatList(t.GetAllowedAudiences(), "any"))
	fmt.Fprintf(w, "Allowed scopes:\t%s\n", formatList(t.GetAllowedScopes(), "any"))
	fmt.Fprintf(w, "Issue rate limit:\t%s\n", formatRateLimit(t.GetIssueRateLimit()))
	fmt.Fprintf(w, "Refresh rate limit:\t%s\n", formatRateLimit(t.GetRefreshRateLimit()))
	fmt.Fprintf(w, "Revoke rate limit:\t%s\n", formatRateLimit(t.GetRevokeRateLimit()))
	fmt.Fprintf(w, "Exchange rate limit:\t%s\n", formatRateLimit(t.GetExchangeRateLimit()))
	fmt.Fprintf(w, "Created:\t%s\n", formatTime(t.GetCreateTime()))
}

func formatRateLimit(l *tokenauthorityv1.RateLimit) string {
	if l == nil {
		return "server default"
	}
	return fmt.Sprintf("%g/s per API key and replica, bursts of %d", l.GetPerSecond(), l.GetBurst())
}

func writeTenantList(w io.Writer, resp *tokenauthorityv1.ListTenantsResponse) {
	if len(resp.GetTenants()) == 0 {
		fmt.Fprintln(w, "no tenants")
	} else {
		fmt.Fprintln(w, "TENANT\tISSUER\tALGORITHM\tCREATED")
		for _, t := range resp.GetTenants() {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n",
				display(t.GetTenantId()), display(t.GetIssuer()), algorithmName(t.GetAlgorithm()), formatTime(t.GetCreateTime()))
		}
	}
	writeNextPage(w, resp.GetNextPageToken())
}

func writeAPIKey(w io.Writer, k *tokenauthorityv1.ApiKey) {
	fmt.Fprintf(w, "Key ID:\t%s\n", display(k.GetKeyId()))
	fmt.Fprintf(w, "Tenant:\t%s\n", display(k.GetTenantId()))
	fmt.Fprintf(w, "Name:\t%s\n", display(k.GetName()))
	fmt.Fprintf(w, "Roles:\t%s\n", formatRoles(k.GetRoles()))
	fmt.Fprintf(w, "Created:\t%s\n", formatTime(k.GetCreateTime()))
	if k.GetPreviousValueExpireTime() != nil {
		fmt.Fprintf(w, "Previous value expires:\t%s\n", formatTime(k.GetPreviousValueExpireTime()))
	}
	if p := k.GetExchangePolicy(); p != nil {
		fmt.Fprintf(w, "Exchanges tokens for:\t%s\n", display(p.GetAcceptAudience()))
		fmt.Fprintf(w, "Exchanges them into:\t%s\n", formatList(p.GetTargetAudiences(), "-"))
	}
}

func writeAPIKeyList(w io.Writer, resp *tokenauthorityv1.ListApiKeysResponse) {
	if len(resp.GetApiKeys()) == 0 {
		fmt.Fprintln(w, "no API keys")
		return
	}
	fmt.Fprintln(w, "KEY ID\tNAME\tTENANT\tROLES\tCREATED\tPREVIOUS VALUE EXPIRES\tEXCHANGE POLICY")
	for _, k := range resp.GetApiKeys() {
		policy := "-"
		if p := k.GetExchangePolicy(); p != nil {
			policy = display(p.GetAcceptAudience()) + " -> " + formatList(p.GetTargetAudiences(), "-")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			display(k.GetKeyId()), display(k.GetName()), display(k.GetTenantId()), formatRoles(k.GetRoles()),
			formatTime(k.GetCreateTime()), formatTime(k.GetPreviousValueExpireTime()), policy)
	}
}

func writePrincipal(w io.Writer, pr *tokenauthorityv1.Principal) {
	fmt.Fprintf(w, "Principal:\t%s\n", display(pr.GetIdentifier()))
	fmt.Fprintf(w, "Tenant:\t%s\n", display(pr.GetTenantId()))
	fmt.Fprintf(w, "Display name:\t%s\n", display(pr.GetDisplayName()))
	fmt.Fprintf(w, "Scopes:\t%s\n", formatList(pr.GetScopes(), "-"))
	fmt.Fprintf(w, "Audience:\t%s\n", formatList(pr.GetAudience(), "-"))
	fmt.Fprintf(w, "Has secret:\t%t\n", pr.GetHasSecret())
	fmt.Fprintf(w, "Created:\t%s\n", formatTime(pr.GetCreateTime()))
}

func writeSigningKey(w io.Writer, k *tokenauthorityv1.SigningKey) {
	fmt.Fprintf(w, "Key ID:\t%s\n", display(k.GetKid()))
	fmt.Fprintf(w, "Algorithm:\t%s\n", algorithmName(k.GetAlgorithm()))
	if k.GetState() != tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_UNSPECIFIED {
		fmt.Fprintf(w, "State:\t%s\n", formatKeyState(k.GetState()))
	}
	fmt.Fprintf(w, "Published:\t%s\n", formatTime(k.GetPublishTime()))
	fmt.Fprintf(w, "Activates:\t%s\n", formatTime(k.GetActivateTime()))
	if k.GetRetireTime() != nil {
		fmt.Fprintf(w, "Retired:\t%s\n", formatTime(k.GetRetireTime()))
	}
}

func writePrincipalList(w io.Writer, resp *tokenauthorityv1.ListPrincipalsResponse) {
	switch {
	case len(resp.GetPrincipals()) == 0 && resp.GetNextPageToken() != "":
		fmt.Fprintln(w, "no principals on this page")
	case len(resp.GetPrincipals()) == 0:
		fmt.Fprintln(w, "no principals")
	default:
		fmt.Fprintln(w, "PRINCIPAL\tDISPLAY NAME\tSCOPES\tAUDIENCE\tSECRET\tCREATED")
		for _, pr := range resp.GetPrincipals() {
			secret := "-"
			if pr.GetHasSecret() {
				secret = "set"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n",
				display(pr.GetIdentifier()), display(pr.GetDisplayName()), formatList(pr.GetScopes(), "-"),
				formatList(pr.GetAudience(), "-"), secret, formatTime(pr.GetCreateTime()))
		}
	}
	writeNextPage(w, resp.GetNextPageToken())
}

func writeSigningKeyList(w io.Writer, resp *tokenauthorityv1.ListSigningKeysResponse) {
	if len(resp.GetKeys()) == 0 {
		fmt.Fprintln(w, "no signing keys")
		return
	}
	fmt.Fprintln(w, "KEY ID\tALGORITHM\tSTATE\tCREATED\tACTIVATES\tRETIRES\tLEAVES\tWITHDRAWN")
	for _, k := range resp.GetKeys() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			display(k.GetKid()), algorithmName(k.GetAlgorithm()), formatKeyState(k.GetState()),
			formatTime(k.GetCreateTime()), formatTime(k.GetActivateTime()), formatTime(k.GetRetireTime()),
			formatTime(k.GetExpireTime()), formatTime(k.GetWithdrawTime()))
	}
}

func writeRefreshRotation(w io.Writer, resp *tokenauthorityv1.RotateRefreshKeyResponse) {
	cur := resp.GetCurrent()
	fmt.Fprintf(w, "Current key:\t%s (created %s)\n", display(cur.GetKid()), formatTime(cur.GetCreateTime()))
	for _, k := range resp.GetRetired() {
		fmt.Fprintf(w, "Retired key:\t%s (verifies until %s)\n", display(k.GetKid()), formatTime(k.GetDeleteTime()))
	}
	if len(resp.GetDroppedKids()) > 0 {
		fmt.Fprintf(w, "Dropped keys:\t%s (their refresh tokens are refused)\n", formatList(resp.GetDroppedKids(), "-"))
	}
}

// formatKeyState renders SIGNING_KEY_STATE_RETIRING as "retiring".
func formatKeyState(s tokenauthorityv1.SigningKeyState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SIGNING_KEY_STATE_"))
}

func writeSessionList(w io.Writer, resp *tokenauthorityv1.ListSessionsResponse) {
	switch {
	case len(resp.GetSessions()) == 0 && resp.GetNextPageToken() != "":
		// The server bounds the work of one call: a page may be empty and still not the last.
		fmt.Fprintln(w, "no sessions on this page")
	case len(resp.GetSessions()) == 0:
		fmt.Fprintln(w, "no sessions")
	default:
		fmt.Fprintln(w, "SESSION\tCREATED\tEXPIRES\tGENERATION\tDEVICE/UA")
		for _, s := range resp.GetSessions() {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n",
				display(s.GetSessionId()), formatTime(s.GetCreateTime()), formatTime(s.GetExpireTime()),
				s.GetGeneration(), formatDevice(s.GetMetadata()))
		}
	}
	writeNextPage(w, resp.GetNextPageToken())
}

func writeVerify(w io.Writer, resp *tokenauthorityv1.VerifyTokenResponse) {
	if !resp.GetActive() {
		fmt.Fprintf(w, "inactive: %s\n", formatReason(resp.GetReason()))
		return
	}
	c := resp.GetClaims()
	fmt.Fprintln(w, "active")
	fmt.Fprintf(w, "Subject:\t%s\n", display(c.GetSubject()))
	fmt.Fprintf(w, "Scopes:\t%s\n", formatList(c.GetScopes(), "-"))
	fmt.Fprintf(w, "Audience:\t%s\n", formatList(c.GetAudience(), "-"))
	fmt.Fprintf(w, "Expires:\t%s\n", formatTime(c.GetExpireTime()))
	fmt.Fprintf(w, "Session:\t%s\n", display(c.GetSessionId()))
	fmt.Fprintf(w, "JTI:\t%s\n", display(c.GetJti()))
	if len(c.GetActor()) > 0 {
		actors := make([]string, len(c.GetActor()))
		for i, a := range c.GetActor() {
			actors[i] = a.GetSubject()
		}
		// Outermost first: the service presenting the token, then those it acts after.
		fmt.Fprintf(w, "Acting for the subject:\t%s\n", display(strings.Join(actors, " <- ")))
	}
}

// writeNextPage tells how to fetch the next page, when there is one.
func writeNextPage(w io.Writer, token string) {
	if token != "" {
		fmt.Fprintf(w, "\nmore results: repeat with -page-token %s\n", strconv.Quote(token))
	}
}

// display makes a server-provided string safe for one table cell: "-" when empty, and with
// tabs and line breaks turned into spaces.
func display(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func formatDuration(d *durationpb.Duration, unset string) string {
	if d == nil {
		return unset
	}
	return d.AsDuration().String()
}

func formatList(items []string, empty string) string {
	if len(items) == 0 {
		return empty
	}
	return display(strings.Join(items, ","))
}

func formatRoles(roles []tokenauthorityv1.Role) string {
	names := make([]string, 0, len(roles))
	for _, r := range roles {
		names = append(names, roleName(r))
	}
	return formatList(names, "-")
}

// formatDevice describes a session's device by its name and user agent, whichever are known.
func formatDevice(md *tokenauthorityv1.SessionMetadata) string {
	var parts []string
	for _, s := range []string{md.GetDevice(), md.GetUserAgent()} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return display(strings.Join(parts, " / "))
}

// formatReason renders INACTIVE_REASON_WRONG_AUDIENCE as "wrong audience".
func formatReason(r tokenauthorityv1.InactiveReason) string {
	s := strings.TrimPrefix(r.String(), "INACTIVE_REASON_")
	return strings.ToLower(strings.ReplaceAll(s, "_", " "))
}
