package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

func init() {
	requestCases = append(requestCases,
		requestCase{
			name:   "exchange",
			args:   []string{"exchange", "-subject-token", "eyJ.subject.token", "-audience", "svc-b", "-scopes", "read", "-access-ttl", "2m"},
			method: "ExchangeToken",
			want: &tokenauthorityv1.ExchangeTokenRequest{SubjectToken: "eyJ.subject.token", Audience: []string{"svc-b"},
				Scopes: []string{"read"}, AccessTtl: durationpb.New(2 * time.Minute)},
			wantOut: []string{"Access token:", cannedAccessToken, "Access expires:", "Token type:", "Bearer"},
		},
		requestCase{
			name:   "apikey create with an exchange policy",
			args:   []string{"apikey", "create", "-name", "svc-a", "-roles", "exchange", "-accept-audience", "svc-a", "-target-audiences", "svc-b,svc-c"},
			method: "CreateApiKey",
			want: &tokenauthorityv1.CreateApiKeyRequest{Name: "svc-a", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_EXCHANGE},
				ExchangePolicy: &tokenauthorityv1.ExchangePolicy{AcceptAudience: "svc-a", TargetAudiences: []string{"svc-b", "svc-c"}}},
		},
		requestCase{
			name:   "tenant create with an exchange rate limit",
			args:   []string{"tenant", "create", "-id", "acme", "-issuer", "https://acme.test", "-exchange-rate", "5"},
			method: "CreateTenant",
			want: &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "https://acme.test",
				ExchangeRateLimit: &tokenauthorityv1.RateLimit{PerSecond: 5, Burst: 10}}},
		},
	)
}

func TestExchangeUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"exchange", "-audience", "svc-b"},
		{"exchange", "-subject-token", "t"},
		{"exchange", "-subject-token", "t", "-subject-token-file", "-", "-audience", "svc-b"},
	} {
		if r := runCLI(t, nil, withServer("127.0.0.1:1", args...)...); r.code != exitUsage {
			t.Errorf("tokenctl %q: exit %d, want %d (usage); stderr %s", args, r.code, exitUsage, r.stderr)
		}
	}
}

// TestExchangeSubjectTokenFromStdin: the subject token can be read from the standard input, and an
// error never echoes it.
func TestExchangeSubjectTokenFromStdin(t *testing.T) {
	rec, addr := startFake(t)
	const subject = "eyJ.secret-subject.token"
	r := runCLIWithInput(t, nil, strings.NewReader(subject+"\n"), withServer(addr, "exchange", "-subject-token-file", "-", "-audience", "svc-b")...)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	_, requests, _ := rec.snapshot()
	if got := requests["ExchangeToken"].(*tokenauthorityv1.ExchangeTokenRequest).GetSubjectToken(); got != subject {
		t.Errorf("subject_token sent = %q", got)
	}
}

func TestVerifyShowsActors(t *testing.T) {
	rec, addr := startFake(t)
	rec.override("VerifyToken", &tokenauthorityv1.VerifyTokenResponse{Active: true, Claims: &tokenauthorityv1.TokenClaims{
		Subject: "alice", Actor: []*tokenauthorityv1.Actor{{Subject: "svc-b"}, {Subject: "svc-a"}}}})
	r := runCLI(t, nil, withServer(addr, "verify", "-token", "eyJ.access.token")...)
	if r.code != exitOK || !strings.Contains(r.stdout, "Acting for the subject:") || !strings.Contains(r.stdout, "svc-b <- svc-a") {
		t.Fatalf("exit %d, stdout:\n%s", r.code, r.stdout)
	}
}
