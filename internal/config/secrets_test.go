package config

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// writeFile writes content to name in dir with mode 0600 and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustParse parses a configuration from args and env or fails the test.
func mustParse(t *testing.T, args []string, env map[string]string) *Config {
	t.Helper()
	c, err := Parse(args, fakeEnv(env), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// assertNoLeak fails the test if any text contains one of secrets.
func assertNoLeak(t *testing.T, texts []string, secrets ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%q contains the secret %q", text, s)
			}
		}
	}
}

// errText returns err.Error(), or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestResolveSecretsFromValues(t *testing.T) {
	c := mustParse(t, nil, production(nil))
	notes, err := c.ResolveSecrets()
	if err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}
	if len(notes) != 0 {
		t.Errorf("notes = %q, want none", notes)
	}
	if c.MasterKey.Reveal() != testMasterKey {
		t.Errorf("MasterKey = %q, want %q", c.MasterKey.Reveal(), testMasterKey)
	}
	if want, _ := base64.StdEncoding.DecodeString(testKeyEncryptionKey); !bytes.Equal(c.KeyEncryptionKey, want) {
		t.Errorf("KeyEncryptionKey = %x, want %x", c.KeyEncryptionKey, want)
	}
}

func TestResolveSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	mkPath := writeFile(t, dir, "mk", "\n  "+testMasterKey+"  \n")
	kekPath := writeFile(t, dir, "kek", testKeyEncryptionKey+"\n")
	otherMasterKey := strings.Repeat("m", 40)

	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{
			name: "variables",
			env: production(map[string]string{
				varMasterKey: "", varKeyEncryptionKey: "",
				varMasterKey + fileSuffix: mkPath, varKeyEncryptionKey + fileSuffix: kekPath,
			}),
		},
		{
			name: "flags",
			env:  production(map[string]string{varMasterKey: "", varKeyEncryptionKey: ""}),
			args: []string{"-master-key-file", mkPath, "-key-encryption-key-file=" + kekPath},
		},
		{
			name: "file flag over value variable",
			env: production(map[string]string{
				varMasterKey: otherMasterKey, varKeyEncryptionKey: "", varKeyEncryptionKey + fileSuffix: kekPath,
			}),
			args: []string{"-master-key-file", mkPath},
		},
		{
			name: "development",
			env:  map[string]string{varMasterKey + fileSuffix: mkPath, varKeyEncryptionKey + fileSuffix: kekPath},
			args: []string{"-data-dir", filepath.Join(dir, "unused")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.args, tt.env)
			notes, err := c.ResolveSecrets()
			if err != nil {
				t.Fatalf("ResolveSecrets: %v", err)
			}
			if len(notes) != 0 {
				t.Errorf("notes = %q, want none", notes)
			}
			if c.MasterKey.Reveal() != testMasterKey {
				t.Errorf("MasterKey = %q, want %q", c.MasterKey.Reveal(), testMasterKey)
			}
			if want, _ := base64.StdEncoding.DecodeString(testKeyEncryptionKey); !bytes.Equal(c.KeyEncryptionKey, want) {
				t.Errorf("KeyEncryptionKey = %x, want %x", c.KeyEncryptionKey, want)
			}
			if _, err := os.Stat(filepath.Join(dir, "unused")); err == nil {
				t.Error("the data directory was created although no secret was generated")
			}
		})
	}
}

func TestResolveSecretsFileErrors(t *testing.T) {
	dir := t.TempDir()
	const shortKey = "short-master-key-in-file"
	const badKEK = "not-base64-kek-in-file!!"
	shortKEK := base64.StdEncoding.EncodeToString([]byte("fifteen-bytes.."))
	tests := []struct {
		name    string
		env     string // variable naming the file
		path    string
		want    []string
		content string // must not appear in the error
	}{
		{name: "missing file", env: varMasterKey + fileSuffix, path: filepath.Join(dir, "missing"), want: []string{"cannot read", "no such file"}},
		{name: "directory", env: varKeyEncryptionKey + fileSuffix, path: dir, want: []string{"cannot read", "is a directory"}},
		{name: "empty file", env: varMasterKey + fileSuffix, path: writeFile(t, dir, "empty", " \n\t\n"), want: []string{"is empty"}},
		{name: "large file", env: varMasterKey + fileSuffix, path: writeFile(t, dir, "large", strings.Repeat("k", maxSecretFileSize+1)), want: []string{"larger than"}},
		{name: "short master key", env: varMasterKey + fileSuffix, path: writeFile(t, dir, "short", shortKey), want: []string{"is invalid: must be at least 32 characters"}, content: shortKey},
		{name: "key-encryption key not base64", env: varKeyEncryptionKey + fileSuffix, path: writeFile(t, dir, "bad", badKEK), want: []string{"is invalid: must be standard base64"}, content: badKEK},
		{name: "key-encryption key too short", env: varKeyEncryptionKey + fileSuffix, path: writeFile(t, dir, "shortkek", shortKEK), want: []string{"is invalid: must decode to exactly 32 bytes"}, content: shortKEK},
		// Readable by others: refused in production, naming the file and its mode, as OpenSSH does.
		{name: "master key readable by others", env: varMasterKey + fileSuffix, path: writeFileMode(t, dir, "open", testMasterKey, 0o644), want: []string{"permissions 0644", "chmod 600"}, content: testMasterKey},
		{name: "key-encryption key readable by group", env: varKeyEncryptionKey + fileSuffix, path: writeFileMode(t, dir, "group", testKeyEncryptionKey, 0o640), want: []string{"permissions 0640", "open to group or others"}, content: testKeyEncryptionKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := production(map[string]string{tt.env: tt.path, strings.TrimSuffix(tt.env, fileSuffix): ""})
			c := mustParse(t, nil, env)
			notes, err := c.ResolveSecrets()
			if err == nil {
				t.Fatal("ResolveSecrets succeeded, want an error")
			}
			if errs := joined(err); len(errs) != 1 {
				t.Errorf("ResolveSecrets reported %d errors, want 1: %v", len(errs), err)
			}
			for _, w := range append([]string{tt.env + ": ", tt.path}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			assertNoLeak(t, append(notes, err.Error()), tt.content, testMasterKey, testKeyEncryptionKey)
			if !c.MasterKey.IsZero() || c.KeyEncryptionKey != nil {
				t.Error("ResolveSecrets changed the config despite the error")
			}
		})
	}
}

func TestResolveSecretsDevelopmentGeneration(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "nested", "data")
	env := map[string]string{varDataDir: dataDir}

	first := mustParse(t, nil, env)
	notes1, err := first.ResolveSecrets()
	if err != nil {
		t.Fatalf("first ResolveSecrets: %v", err)
	}
	masterKeyPath := filepath.Join(dataDir, "master-key")
	kekPath := filepath.Join(dataDir, "key-encryption-key")
	wantNotes := []string{
		"generated development master key in " + masterKeyPath,
		"generated development key-encryption key in " + kekPath,
	}
	if strings.Join(notes1, "\n") != strings.Join(wantNotes, "\n") {
		t.Errorf("notes = %q, want %q", notes1, wantNotes)
	}
	if n := len([]rune(first.MasterKey.Reveal())); n < minMasterKeyLen {
		t.Errorf("generated master key has %d characters", n)
	}
	if len(first.KeyEncryptionKey) != keyEncryptionKeyLen {
		t.Errorf("generated key-encryption key has %d bytes", len(first.KeyEncryptionKey))
	}

	assertMode(t, dataDir, fs.ModeDir|0o700)
	assertMode(t, masterKeyPath, 0o600)
	assertMode(t, kekPath, 0o600)
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("data directory holds %d entries, want 2 (no temporary files)", len(entries))
	}
	if got, _ := os.ReadFile(kekPath); strings.TrimSpace(string(got)) != base64.StdEncoding.EncodeToString(first.KeyEncryptionKey) {
		t.Error("key-encryption-key file does not hold the standard base64 of the key")
	}

	second := mustParse(t, nil, env)
	notes2, err := second.ResolveSecrets()
	if err != nil {
		t.Fatalf("second ResolveSecrets: %v", err)
	}
	if second.MasterKey.Reveal() != first.MasterKey.Reveal() || !bytes.Equal(second.KeyEncryptionKey, first.KeyEncryptionKey) {
		t.Error("second start did not reuse the generated secrets")
	}
	wantNotes = []string{
		"using development master key from " + masterKeyPath,
		"using development key-encryption key from " + kekPath,
	}
	if strings.Join(notes2, "\n") != strings.Join(wantNotes, "\n") {
		t.Errorf("notes = %q, want %q", notes2, wantNotes)
	}

	assertNoLeak(t, append(notes1, notes2...), first.MasterKey.Reveal(),
		base64.StdEncoding.EncodeToString(first.KeyEncryptionKey), string(first.KeyEncryptionKey))
}

func TestResolveSecretsConcurrentStarts(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	const n = 8
	configs := make([]*Config, n)
	var wg sync.WaitGroup
	for i := range configs {
		configs[i] = mustParse(t, []string{"-data-dir", dataDir}, nil)
		wg.Go(func() {
			if _, err := configs[i].ResolveSecrets(); err != nil {
				t.Errorf("ResolveSecrets: %v", err)
			}
		})
	}
	wg.Wait()
	for _, c := range configs[1:] {
		if c.MasterKey.Reveal() != configs[0].MasterKey.Reveal() || !bytes.Equal(c.KeyEncryptionKey, configs[0].KeyEncryptionKey) {
			t.Fatal("concurrent starts resolved different secrets")
		}
	}
}

// assertMode fails the test unless path has mode want.
func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

func TestResolveSecretsTightensPermissions(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	first := mustParse(t, []string{"-data-dir", dataDir}, nil)
	if _, err := first.ResolveSecrets(); err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}
	masterKeyPath := filepath.Join(dataDir, "master-key")
	for path, mode := range map[string]fs.FileMode{dataDir: 0o755, masterKeyPath: 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}

	second := mustParse(t, []string{"-data-dir", dataDir}, nil)
	notes, err := second.ResolveSecrets()
	if err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}
	for _, want := range []string{
		"tightened permissions of " + dataDir + " from 0755 to 0700",
		"tightened permissions of " + masterKeyPath + " from 0644 to 0600",
	} {
		if !strings.Contains(strings.Join(notes, "\n"), want) {
			t.Errorf("notes %q do not contain %q", notes, want)
		}
	}
	assertMode(t, dataDir, fs.ModeDir|0o700)
	assertMode(t, masterKeyPath, 0o600)
	if second.MasterKey.Reveal() != first.MasterKey.Reveal() {
		t.Error("the master key changed")
	}
}

func TestResolveSecretsDevelopmentErrors(t *testing.T) {
	const invalidKey = "persisted-but-too-short"
	tests := []struct {
		name  string
		setup func(t *testing.T, dataDir string)
		want  []string
	}{
		{
			name: "invalid persisted master key",
			setup: func(t *testing.T, dataDir string) {
				if err := os.Mkdir(dataDir, 0o700); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dataDir, "master-key", invalidKey)
			},
			want: []string{varMasterKey + ": development master key in ", "master-key", "delete the file"},
		},
		{
			name: "persisted key is a directory",
			setup: func(t *testing.T, dataDir string) {
				if err := os.MkdirAll(filepath.Join(dataDir, "key-encryption-key"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{varKeyEncryptionKey + ": development key-encryption key", "is not a regular file"},
		},
		{
			name: "data directory is a file",
			setup: func(t *testing.T, dataDir string) {
				writeFile(t, filepath.Dir(dataDir), filepath.Base(dataDir), "not a directory")
			},
			want: []string{varDataDir + ": cannot create"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			tt.setup(t, dataDir)
			c := mustParse(t, []string{"-data-dir", dataDir}, nil)
			notes, err := c.ResolveSecrets()
			if errs := joined(err); len(errs) != 1 {
				t.Fatalf("ResolveSecrets reported %d errors, want 1: %v", len(errs), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			assertNoLeak(t, append(notes, err.Error()), invalidKey)
			if !c.MasterKey.IsZero() || c.KeyEncryptionKey != nil {
				t.Error("ResolveSecrets changed the config despite the error")
			}
		})
	}
}

func TestResolveSecretsWithoutSource(t *testing.T) {
	tests := []struct {
		name string
		env  Env
		want []string
	}{
		{
			name: "production",
			env:  EnvProduction,
			want: []string{
				"TOKENAUTHORITY_MASTER_KEY (or TOKENAUTHORITY_MASTER_KEY_FILE) must be set in production",
				"TOKENAUTHORITY_KEY_ENCRYPTION_KEY (or TOKENAUTHORITY_KEY_ENCRYPTION_KEY_FILE) must be set in production",
			},
		},
		{
			name: "no environment",
			env:  "",
			want: []string{"secrets are generated only when TOKENAUTHORITY_ENV is \"development\""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			c := &Config{Env: tt.env, DataDir: dataDir}
			_, err := c.ResolveSecrets()
			if errs := joined(err); len(errs) != 2 {
				t.Errorf("ResolveSecrets reported %d errors, want 2: %v", len(errs), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(errText(err), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err := os.Stat(dataDir); err == nil {
				t.Error("ResolveSecrets generated secrets outside development")
			}
		})
	}
}

func TestCreateFileAtomicKeepsExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "master-key", "first")
	created, err := createFileAtomic(dir, "master-key", []byte("second"))
	if err != nil || created {
		t.Fatalf("createFileAtomic = %v, %v; want false, nil", created, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("content = %q, want %q", got, "first")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

// writeFileMode writes content to name in dir with mode perm (applied after the umask).
func writeFileMode(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := writeFile(t, dir, name, content)
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCreateSecretFile checks the guarantees of the one writer of development secrets: a missing
// directory is created 0700, the file is 0600 with the whole content, no temporary file is left,
// and an existing file is kept (two processes starting at once agree on its value).
func TestCreateSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	created, err := CreateSecretFile(dir, "dev-api-key", []byte("first\n"))
	if err != nil || !created {
		t.Fatalf("CreateSecretFile = %v, %v; want true, nil", created, err)
	}
	path := filepath.Join(dir, "dev-api-key")
	assertMode(t, dir, fs.ModeDir|0o700)
	assertMode(t, path, 0o600)
	if got, _ := os.ReadFile(path); string(got) != "first\n" {
		t.Errorf("content = %q, want %q", got, "first\n")
	}

	created, err = CreateSecretFile(dir, "dev-api-key", []byte("second\n"))
	if err != nil || created {
		t.Fatalf("second CreateSecretFile = %v, %v; want false, nil", created, err)
	}
	if got, _ := os.ReadFile(path); string(got) != "first\n" {
		t.Errorf("content after a second call = %q, want the first %q", got, "first\n")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary file left)", len(entries))
	}
}
