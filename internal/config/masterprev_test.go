package config

import (
	"os"
	"strings"
	"testing"
)

func TestPreviousMasterKey(t *testing.T) {
	const previous = "previous-master-key-0123456789abcdefghij"
	dir := t.TempDir()
	open := writeFile(t, dir, "open", previous)
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		env                  map[string]string
		want                 string
		parseErr, resolveErr string
	}{
		{name: "None", env: nil},
		{name: "Value", env: map[string]string{varMasterKeyPrevious: previous}, want: previous},
		{name: "File", env: map[string]string{varMasterKeyPrevious + "_FILE": writeFile(t, dir, "prev", previous+"\n")}, want: previous},
		{name: "Short", env: map[string]string{varMasterKeyPrevious: "short"}, parseErr: varMasterKeyPrevious + ": must be at least 32 characters"},
		{name: "BothSet", env: map[string]string{varMasterKeyPrevious: previous, varMasterKeyPrevious + "_FILE": "/x"}, parseErr: "are both set"},
		{name: "Current", env: map[string]string{varMasterKeyPrevious: testMasterKey}, resolveErr: varMasterKeyPrevious + ": is the current master key"},
		{name: "CurrentInFile", env: map[string]string{varMasterKeyPrevious + "_FILE": writeFile(t, dir, "cur", testMasterKey)},
			resolveErr: varMasterKeyPrevious + "_FILE: is the current master key"},
		{name: "FileOpenToOthers", env: map[string]string{varMasterKeyPrevious + "_FILE": open}, resolveErr: "permissions 0644"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(nil, fakeEnv(production(tt.env)), nil)
			if tt.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
					t.Fatalf("Parse = %v, want an error with %q", err, tt.parseErr)
				}
				assertNoLeak(t, []string{err.Error()}, previous, testMasterKey)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = c.ResolveSecrets()
			if tt.resolveErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.resolveErr) {
					t.Fatalf("ResolveSecrets = %v, want an error with %q", err, tt.resolveErr)
				}
				assertNoLeak(t, []string{err.Error()}, previous, testMasterKey)
				return
			}
			if err != nil {
				t.Fatalf("ResolveSecrets: %v", err)
			}
			if got := c.PreviousMasterKey.Reveal(); got != tt.want {
				t.Fatalf("previous master key %q, want %q", got, tt.want)
			}
			if strings.Contains(c.String(), previous) {
				t.Fatal("the printed configuration shows the previous master key")
			}
		})
	}
}

// TestKeyEncryptionKeySources: the message of a key set that no configured key opens names the
// variable that was actually used, the _FILE form included.
func TestKeyEncryptionKeySources(t *testing.T) {
	dir := t.TempDir()
	prev, _ := randomKEK(t)
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"value", map[string]string{}, varKeyEncryptionKey},
		{"file", map[string]string{varKeyEncryptionKey: "", varKeyEncryptionKey + "_FILE": writeFile(t, dir, "kek", testKeyEncryptionKey)}, varKeyEncryptionKey + "_FILE"},
		{"with previous", map[string]string{varKeyEncryptionKeyPrevious: prev}, varKeyEncryptionKey + " and " + varKeyEncryptionKeyPrevious},
	}
	for _, c := range cases {
		cfg, err := Parse(nil, fakeEnv(production(c.env)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.KeyEncryptionKeySources(); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
