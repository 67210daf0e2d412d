package main

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// TestSecretsFromStandardInput checks that "-" reads a secret from the standard input, trimmed.
func TestSecretsFromStandardInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		method string
		want   proto.Message
	}{
		{
			name:   "principal secret",
			args:   []string{"issue", "-principal", "svc-billing", "-secret-file", "-"},
			method: "IssueToken",
			want: &tokenauthorityv1.IssueTokenRequest{
				Principal: &tokenauthorityv1.PrincipalCredentials{Identifier: "svc-billing", Secret: testPrincipalSecret},
			},
		},
		{
			name:   "refresh token",
			args:   []string{"refresh", "-refresh-token-file", "-"},
			method: "RefreshToken",
			want:   &tokenauthorityv1.RefreshTokenRequest{RefreshToken: testRefreshToken},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			secret := testPrincipalSecret
			if tc.method == "RefreshToken" {
				secret = testRefreshToken
			}
			r := runCLIWithInput(t, nil, strings.NewReader("\n "+secret+" \n"), withServer(addr, tc.args...)...)
			if r.code != exitOK {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", r.code, r.stderr)
			}
			if _, requests, _ := rec.snapshot(); !proto.Equal(requests[tc.method], tc.want) {
				t.Errorf("%s request:\n got %v\nwant %v", tc.method, requests[tc.method], tc.want)
			}
		})
	}
}

// TestSecretInputErrors checks that a secret that cannot be read is a usage error, reported
// before any call and without the secret.
func TestSecretInputErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		stdin   string
		wantErr string
	}{
		{
			name:    "missing file",
			args:    []string{"refresh", "-refresh-token-file", "testdata/absent"},
			wantErr: "tokenctl refresh: read the refresh token: open testdata/absent: ",
		},
		{
			name:    "empty standard input",
			args:    []string{"refresh", "-refresh-token-file", "-"},
			stdin:   " \n",
			wantErr: "tokenctl refresh: the refresh token in the standard input is empty\n",
		},
		{
			name:    "a directory",
			args:    []string{"issue", "-principal", "p", "-secret-file", "testdata"},
			wantErr: "tokenctl issue: read the principal's secret from testdata: ",
		},
		{
			name:    "oversized standard input",
			args:    []string{"issue", "-principal", "p", "-secret-file", "-"},
			stdin:   testPrincipalSecret + strings.Repeat("x", maxSecretSize),
			wantErr: "tokenctl issue: the principal's secret in the standard input is longer than 65536 bytes\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, addr := startFake(t)
			r := runCLIWithInput(t, nil, strings.NewReader(tc.stdin), withServer(addr, tc.args...)...)
			if r.code != exitUsage {
				t.Errorf("exit code %d, want %d", r.code, exitUsage)
			}
			if !strings.HasPrefix(r.stderr, tc.wantErr) {
				t.Errorf("stderr = %q, want prefix %q", r.stderr, tc.wantErr)
			}
			if strings.Contains(r.stderr, testPrincipalSecret) {
				t.Errorf("stderr contains the secret: %q", r.stderr)
			}
			if calls, _, _ := rec.snapshot(); calls != 0 {
				t.Errorf("server received %d calls, want none", calls)
			}
		})
	}
}

// TestSecretsNeverEchoed checks that a server error that echoes the refresh token or the
// principal's secret it was sent is printed with the secret redacted, the code kept.
func TestSecretsNeverEchoed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		secret string
	}{
		{name: "refresh token from a flag", args: []string{"refresh", "-refresh-token", testRefreshToken}, secret: testRefreshToken},
		{name: "refresh token from a file", args: []string{"refresh", "-refresh-token-file", "testdata/refresh-token"}, secret: testRefreshToken},
		{name: "principal secret", args: []string{"issue", "-principal", "p", "-secret-file", "testdata/principal-secret"}, secret: testPrincipalSecret},
		{name: "principal secret from a flag", args: []string{"issue", "-principal", "p", "-secret", testPrincipalSecret}, secret: testPrincipalSecret},
		{name: "refresh token revoked by value", args: []string{"revoke", "-token", testRefreshToken}, secret: testRefreshToken},
		{name: "access token verified", args: []string{"verify", "-token", testRefreshToken}, secret: testRefreshToken},
	}
	for _, tc := range tests {
		for _, json := range []bool{false, true} {
			args := tc.args
			if json {
				args = append([]string{"-o", "json"}, args...)
			}
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				rec, addr := startFake(t)
				rec.fail(status.Error(codes.Unauthenticated, "invalid token "+tc.secret+" (really: "+tc.secret+")"))
				r := runCLI(t, nil, withServer(addr, args...)...)
				if r.code != exitRPC {
					t.Errorf("exit code %d, want %d", r.code, exitRPC)
				}
				want := "tokenctl: Unauthenticated: invalid token [redacted] (really: [redacted])\n"
				if r.stderr != want {
					t.Errorf("stderr = %q, want %q", r.stderr, want)
				}
				if strings.Contains(r.stdout+r.stderr, tc.secret) {
					t.Errorf("output contains the secret:\nstdout: %q\nstderr: %q", r.stdout, r.stderr)
				}
			})
		}
	}
}
