package main

import (
	"io"
	"strings"
	"testing"
	"time"
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
