package config

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func randomKEK(t *testing.T) (string, []byte) {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b), b
}

func TestPreviousKeyEncryptionKeys(t *testing.T) {
	p1, k1 := randomKEK(t)
	p2, k2 := randomKEK(t)
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	dir := t.TempDir()
	tests := []struct {
		name string
		env  map[string]string
		want [][]byte
		// parseErr and resolveErr are substrings of the error of Parse, or of ResolveSecrets;
		// resolveName, when set, must start ResolveSecrets' error too.
		parseErr, resolveErr, resolveName string
	}{
		{name: "None", env: nil},
		{name: "One", env: map[string]string{varKeyEncryptionKeyPrevious: p1}, want: [][]byte{k1}},
		{name: "Two", env: map[string]string{varKeyEncryptionKeyPrevious: p1 + ", " + p2 + ","}, want: [][]byte{k1, k2}},
		{name: "File", env: map[string]string{varKeyEncryptionKeyPrevious + "_FILE": writeFile(t, dir, "prev", p1+"\n\n"+p2+"\n")}, want: [][]byte{k1, k2}},
		{name: "Malformed", env: map[string]string{varKeyEncryptionKeyPrevious: p1 + ",not base64!"},
			parseErr: varKeyEncryptionKeyPrevious + ": key #2 must be standard base64"},
		{name: "Short", env: map[string]string{varKeyEncryptionKeyPrevious: short},
			parseErr: varKeyEncryptionKeyPrevious + ": key #1 must decode to exactly 32 bytes, got 16"},
		{name: "Duplicate", env: map[string]string{varKeyEncryptionKeyPrevious: p1 + "," + p2 + "," + p1},
			parseErr: varKeyEncryptionKeyPrevious + ": key #3 is key #1 again"},
		{name: "BothSet", env: map[string]string{varKeyEncryptionKeyPrevious: p1, varKeyEncryptionKeyPrevious + "_FILE": "/x"},
			parseErr: "are both set"},
		{name: "Current", env: map[string]string{varKeyEncryptionKeyPrevious: p1 + "," + testKeyEncryptionKey},
			resolveErr: varKeyEncryptionKeyPrevious + ": key #2 is the current key"},
		{name: "CurrentInFile", env: map[string]string{varKeyEncryptionKeyPrevious + "_FILE": writeFile(t, dir, "cur", testKeyEncryptionKey+"\n")},
			resolveErr: varKeyEncryptionKeyPrevious + "_FILE: key #1 is the current key"},
		{name: "MalformedInFile", env: map[string]string{varKeyEncryptionKeyPrevious + "_FILE": writeFile(t, dir, "bad", p1+"\n"+short+"\n")},
			resolveErr: "is invalid: key #2 must decode to exactly 32 bytes", resolveName: varKeyEncryptionKeyPrevious + "_FILE: "},
		{name: "DuplicateInFile", env: map[string]string{varKeyEncryptionKeyPrevious + "_FILE": writeFile(t, dir, "dup", p2+"\n"+p2+"\n")},
			resolveErr: "is invalid: key #2 is key #1 again", resolveName: varKeyEncryptionKeyPrevious + "_FILE: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(nil, fakeEnv(production(tt.env)), nil)
			if tt.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
					t.Fatalf("Parse = %v, want an error with %q", err, tt.parseErr)
				}
				assertNoLeak(t, []string{err.Error()}, p1, p2, testKeyEncryptionKey)
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			_, err = c.ResolveSecrets()
			if tt.resolveErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.resolveErr) || !strings.HasPrefix(err.Error(), tt.resolveName) {
					t.Fatalf("ResolveSecrets = %v, want an error starting %q with %q", err, tt.resolveName, tt.resolveErr)
				}
				assertNoLeak(t, []string{err.Error()}, p1, p2, testKeyEncryptionKey)
				return
			}
			if err != nil {
				t.Fatalf("ResolveSecrets: %v", err)
			}
			if len(c.PreviousKeyEncryptionKeys) != len(tt.want) {
				t.Fatalf("%d previous keys, want %d", len(c.PreviousKeyEncryptionKeys), len(tt.want))
			}
			for i := range tt.want {
				if !bytes.Equal(c.PreviousKeyEncryptionKeys[i], tt.want[i]) {
					t.Errorf("previous key #%d differs", i+1)
				}
			}
			assertNoLeak(t, []string{c.String()}, p1, p2)
		})
	}
}
