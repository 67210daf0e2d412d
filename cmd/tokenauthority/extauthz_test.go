package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

func TestParseExtauthz(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    extauthzSettings
		wantErr []string
	}{
		{name: "flags", args: []string{"-api-key-file", "k", "-policy", "p", "-authority", "a:1", "-listen", ":9000", "-staleness", "3s"},
			want: extauthzSettings{authority: "a:1", keyFile: "k", policyFile: "p", addr: ":9000", staleness: 3 * time.Second}},
		{name: "environment and defaults", env: map[string]string{extauthzKeyFileEnv: "k", extauthzPolicyEnv: "p"},
			want: extauthzSettings{authority: defaultExtauthzAuthority, keyFile: "k", policyFile: "p", addr: defaultExtauthzAddr, staleness: 10 * time.Second}},
		{name: "flag over environment", args: []string{"-policy", "flag"}, env: map[string]string{extauthzKeyFileEnv: "k", extauthzPolicyEnv: "env"},
			want: extauthzSettings{authority: defaultExtauthzAuthority, keyFile: "k", policyFile: "flag", addr: defaultExtauthzAddr, staleness: 10 * time.Second}},
		{name: "every problem at once", args: []string{"-authority", "nope", "-staleness", "1h", "extra"},
			wantErr: []string{"unexpected argument", "-api-key-file (" + extauthzKeyFileEnv + ") is required", "-policy (" + extauthzPolicyEnv + ") is required",
				`-authority: "nope" is not host:port`, "-staleness: must be between"}},
		{name: "TLS to the authority", args: []string{"-api-key-file", "k", "-policy", "p", "-cacert", "ca.pem", "-cert", "c.pem", "-key", "c.key"},
			want: extauthzSettings{authority: defaultExtauthzAuthority, keyFile: "k", policyFile: "p", addr: defaultExtauthzAddr, staleness: 10 * time.Second,
				caCert: "ca.pem", cert: "c.pem", certKey: "c.key"}},
		{name: "TLS from the environment", env: map[string]string{extauthzKeyFileEnv: "k", extauthzPolicyEnv: "p", extauthzCACertEnv: "ca.pem"},
			want: extauthzSettings{authority: defaultExtauthzAuthority, keyFile: "k", policyFile: "p", addr: defaultExtauthzAddr, staleness: 10 * time.Second,
				caCert: "ca.pem"}},
		{name: "certificate without its key", args: []string{"-api-key-file", "k", "-policy", "p", "-cert", "c.pem"}, wantErr: []string{"-cert and -key go together"}},
		{name: "bad duration", args: []string{"-api-key-file", "k", "-policy", "p", "-staleness", "soon"}, wantErr: []string{`"soon" is not a duration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseExtauthz(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("accepted: %+v", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// TestExtauthzReachesTheAuthorityOverMutualTLS: with -cacert, -cert and -key the sidecar's calls
// (its API key on each) reach an authority that requires a client certificate; without them they
// never do. The server here is no authority, so the sidecar stops at its first answer.
func TestExtauthzReachesTheAuthorityOverMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	addr := startTLSHealthServer(t, ca, dir, true)
	caFile := filepath.Join(dir, "trust.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	cert, key := ca.Client(t, "sidecar").Write(t, t.TempDir())
	keyFile, policyFile := filepath.Join(dir, "api-key"), filepath.Join(dir, "policy.json")
	tlstest.WriteFile(t, keyFile, []byte("ta_test_key\n"))
	tlstest.WriteFile(t, policyFile, []byte(`{"routes":[{"path_prefix":"/","audience":"orders"}]}`))
	run := func(extra ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		args := append([]string{"-authority", addr, "-api-key-file", keyFile, "-policy", policyFile, "-listen", "127.0.0.1:0"}, extra...)
		return runExtauthz(ctx, args, func(string) string { return "" }, io.Discard)
	}
	err := run("-cacert", caFile, "-cert", cert, "-key", key)
	t.Logf("over mutual TLS: %v", err)
	if err == nil || !strings.Contains(err.Error(), "Unimplemented") {
		t.Errorf("over mutual TLS = %v; want the authority's answer (Unimplemented: it is a health server)", err)
	}
	err = run()
	t.Logf("in plaintext: %v", err)
	if err == nil || strings.Contains(err.Error(), "Unimplemented") {
		t.Errorf("in plaintext = %v; want no answer from a TLS authority", err)
	}
}
