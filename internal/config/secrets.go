package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

const (
	// minMasterKeyLen is the shortest master key, in characters.
	minMasterKeyLen = 32
	// maxMasterKeyLen is the longest, in bytes: it travels in the x-api-key header, and the
	// server bounds a call's metadata (32 KiB in all).
	maxMasterKeyLen = 1024
	// keyEncryptionKeyLen is the length of the key-encryption key, in bytes.
	keyEncryptionKeyLen = 32
	// maxSecretFileSize bounds what is read from a secret file.
	maxSecretFileSize = 64 << 10
	// dataDirPerm and secretFilePerm are the permissions of the data directory and of the
	// development secrets kept in it.
	dataDirPerm    fs.FileMode = 0o700
	secretFilePerm fs.FileMode = 0o600
)

// secretKind describes one secret.
type secretKind struct {
	env      string // variable of the value; env+fileSuffix names the file
	what     string // for messages
	fileName string // name of the development secret in the data directory
	// check validates a value; its error must not contain the value.
	check func(string) error
	// generate returns a new random development value.
	generate func() (string, error)
}

var (
	masterKeyKind = &secretKind{
		env:      varMasterKey,
		what:     "master key",
		fileName: "master-key",
		check:    checkMasterKey,
		generate: func() (string, error) {
			b, err := randomBytes(32)
			return base64.RawURLEncoding.EncodeToString(b), err
		},
	}
	// masterKeyPreviousKind is never generated: it exists only while an operator rotates the
	// master key.
	masterKeyPreviousKind = &secretKind{
		env:   varMasterKeyPrevious,
		what:  "previous master key",
		check: checkMasterKey,
	}
	keyEncryptionKeyKind = &secretKind{
		env:      varKeyEncryptionKey,
		what:     "key-encryption key",
		fileName: "key-encryption-key",
		check: func(v string) error {
			_, err := decodeKeyEncryptionKey(v)
			return err
		},
		generate: func() (string, error) {
			b, err := randomBytes(keyEncryptionKeyLen)
			return base64.StdEncoding.EncodeToString(b), err
		},
	}
)

// secretSource is where Parse found a secret: its value or the path of its file (at most one is
// set), and the names to report each under.
type secretSource struct {
	value     Secret
	valueName string
	path      string
	pathName  string
}

// given reports whether the secret was set, as a value or as a file.
func (src secretSource) given() bool { return src.path != "" || !src.value.IsZero() }

// name returns the setting that gave the secret, for messages: the value's (flag or variable),
// or the file's, whose variable is env's with fileSuffix.
func (src secretSource) name(env string) string {
	if src.path != "" {
		return orDefault(src.pathName, env+fileSuffix)
	}
	return orDefault(src.valueName, env)
}

// checkMasterKey validates a master key.
func checkMasterKey(v string) error {
	if utf8.RuneCountInString(v) < minMasterKeyLen {
		return fmt.Errorf("must be at least %d characters", minMasterKeyLen)
	}
	if len(v) > maxMasterKeyLen {
		return fmt.Errorf("must be at most %d bytes", maxMasterKeyLen)
	}
	return nil
}

// decodeKeyEncryptionKey decodes and validates a key-encryption key.
func decodeKeyEncryptionKey(v string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New("must be standard base64 (generate one with: openssl rand -base64 32)")
	}
	if len(b) != keyEncryptionKeyLen {
		return nil, fmt.Errorf("must decode to exactly %d bytes, got %d (generate one with: openssl rand -base64 32)",
			keyEncryptionKeyLen, len(b))
	}
	return b, nil
}

// randomBytes returns n bytes from crypto/rand.
func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ResolveSecrets resolves every secret and sets MasterKey, KeyEncryptionKey and
// PreviousKeyEncryptionKeys (from their value or file only, never generated). Each secret comes
// from its value, else from its file, else, in development only, from a value generated once with
// crypto/rand and kept in DataDir (files master-key and key-encryption-key, mode 0600, in a
// directory of mode 0700, written atomically and reused on later starts; looser permissions are
// tightened). In production a missing secret is an error naming what to set.
//
// It returns notes for the log, such as "generated development master key in .data/master-key",
// and every problem joined with errors.Join. Neither ever contains a secret value. On error, c is
// left unchanged, though development secrets may have been written.
func (c *Config) ResolveSecrets() (notes []string, err error) {
	r := &resolver{c: c}
	masterKey := r.resolve(masterKeyKind, c.masterKey)
	keyEncryptionKey := r.resolve(keyEncryptionKeyKind, c.keyEncryptionKey)
	if err := errors.Join(r.errs...); err != nil {
		return r.notes, err
	}
	key, err := decodeKeyEncryptionKey(keyEncryptionKey)
	if err != nil {
		return r.notes, fmt.Errorf("%s: %w", varKeyEncryptionKey, err)
	}
	previous, err := r.resolvePreviousKEKs(c.previousKEKs, key)
	if err != nil {
		return r.notes, err
	}
	var previousMaster string
	if src := c.previousMaster; src.given() {
		if previousMaster, err = r.lookup(masterKeyPreviousKind, src); err != nil {
			return r.notes, err
		}
		if previousMaster == masterKey {
			return r.notes, fmt.Errorf("%s: is the current master key (%s): set the key being replaced, or unset it",
				src.name(varMasterKeyPrevious), varMasterKey)
		}
	}
	c.MasterKey = NewSecret(masterKey)
	c.KeyEncryptionKey = key
	c.PreviousKeyEncryptionKeys = previous
	c.PreviousMasterKey = NewSecret(previousMaster)
	return r.notes, nil
}

// errReported stands for an error that has already been recorded.
var errReported = errors.New("already reported")

// resolver resolves the secrets of one Config.
type resolver struct {
	c                  *Config
	dirDone, dirFailed bool
	notes              []string
	errs               []error
}

// notef records a note for the log. It must not contain a secret.
func (r *resolver) notef(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// resolve returns the value of the secret of kind k found at src, recording any error.
func (r *resolver) resolve(k *secretKind, src secretSource) string {
	v, err := r.lookup(k, src)
	if err != nil && !errors.Is(err, errReported) {
		r.errs = append(r.errs, err)
	}
	return v
}

// lookup returns the value of the secret of kind k found at src.
func (r *resolver) lookup(k *secretKind, src secretSource) (string, error) {
	fileEnv := k.env + fileSuffix
	switch {
	case !src.value.IsZero():
		if err := k.check(src.value.Reveal()); err != nil {
			return "", fmt.Errorf("%s: %w", src.name(k.env), err)
		}
		return src.value.Reveal(), nil
	case src.path != "":
		name := src.name(k.env)
		v, err := readValueFile(name, src.path, r.c.Env == EnvProduction)
		if err != nil {
			return "", err
		}
		if err := k.check(v); err != nil {
			return "", fmt.Errorf("%s: content of %q is invalid: %w", name, src.path, err)
		}
		return v, nil
	case r.c.Env == EnvDevelopment && k.generate != nil:
		return r.generated(k)
	case r.c.Env == EnvProduction:
		return "", fmt.Errorf("%s (or %s) must be set in production", k.env, fileEnv)
	default:
		return "", fmt.Errorf("%s (or %s) must be set: secrets are generated only when %s is %q",
			k.env, fileEnv, varEnv, EnvDevelopment)
	}
}

// orDefault returns s, or def if s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// generated returns the development secret of kind k, creating it on first use.
func (r *resolver) generated(k *secretKind) (string, error) {
	if err := r.prepareDataDir(); err != nil {
		return "", err
	}
	path := filepath.Join(r.c.DataDir, k.fileName)
	if v, found, err := r.loadPersisted(k, path); found || err != nil {
		return v, err
	}
	v, err := k.generate()
	if err != nil {
		return "", fmt.Errorf("%s: cannot generate a development %s: %w", k.env, k.what, err)
	}
	created, err := CreateSecretFile(r.c.DataDir, k.fileName, []byte(v+"\n"))
	if err != nil {
		return "", fmt.Errorf("%s: cannot write the development %s: %w", k.env, k.what, err)
	}
	if !created {
		// Another process created it first: use its value, as it does.
		v, found, err := r.loadPersisted(k, path)
		if err == nil && !found {
			err = fmt.Errorf("%s: development %s %q vanished while being created", k.env, k.what, path)
		}
		return v, err
	}
	r.notef("generated development %s in %s", k.what, path)
	return v, nil
}

// prepareDataDir creates the data directory with mode 0700, or tightens the mode of an existing
// one. Only the first call does the work and reports a failure; later ones return errReported
// after a failure.
func (r *resolver) prepareDataDir() error {
	if r.dirDone {
		if r.dirFailed {
			return errReported
		}
		return nil
	}
	r.dirDone = true
	err := r.makeDataDir()
	r.dirFailed = err != nil
	return err
}

// makeDataDir does the work of prepareDataDir.
func (r *resolver) makeDataDir() error {
	dir := r.c.DataDir
	if dir == "" {
		return fmt.Errorf("%s must be set to keep development secrets", varDataDir)
	}
	if err := os.MkdirAll(dir, dataDirPerm); err != nil {
		return fmt.Errorf("%s: cannot create %q: %w", varDataDir, dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", varDataDir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %q is not a directory", varDataDir, dir)
	}
	if perm := fi.Mode().Perm(); perm&^dataDirPerm != 0 {
		if err := os.Chmod(dir, dataDirPerm); err != nil {
			return fmt.Errorf("%s: %q has permissions %04o, want %04o: %w",
				varDataDir, dir, uint32(perm), uint32(dataDirPerm), cause(err))
		}
		r.notef("tightened permissions of %s from %04o to %04o", dir, uint32(perm), uint32(dataDirPerm))
	}
	return nil
}

// loadPersisted reads the development secret of kind k at path, tightening its permissions if
// needed. found is false, with no error, if the file does not exist.
func (r *resolver) loadPersisted(k *secretKind, path string) (v string, found bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", true, fmt.Errorf("%s: development %s %q: %w", k.env, k.what, path, cause(err))
	}
	if !fi.Mode().IsRegular() {
		return "", true, fmt.Errorf("%s: development %s %q is not a regular file", k.env, k.what, path)
	}
	if perm := fi.Mode().Perm(); perm&^secretFilePerm != 0 {
		if err := os.Chmod(path, secretFilePerm); err != nil {
			return "", true, fmt.Errorf("%s: development %s %q has permissions %04o, want %04o: %w",
				k.env, k.what, path, uint32(perm), uint32(secretFilePerm), cause(err))
		}
		r.notef("tightened permissions of %s from %04o to %04o", path, uint32(perm), uint32(secretFilePerm))
	}
	v, err = readSecretFile(path)
	if err != nil {
		return "", true, fmt.Errorf("%s: development %s: %w", k.env, k.what, err)
	}
	if err := k.check(v); err != nil {
		return "", true, fmt.Errorf("%s: development %s in %q is invalid (%w); delete the file to generate a new one",
			k.env, k.what, path, err)
	}
	r.notef("using development %s from %s", k.what, path)
	return v, true, nil
}

// checkSecretFileMode refuses a secret file that users other than its owner may read or write, as
// OpenSSH refuses a private key "with permissions too open": a secret in a world-readable file is
// already leaked to every account on the host.
func checkSecretFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read %q: %w", path, cause(err))
	}
	if !fi.Mode().IsRegular() {
		return nil // readSecretFile says what it is.
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%q has permissions %04o: it is open to group or others; run chmod 600 %q (or 0400)",
			path, uint32(perm), path)
	}
	return nil
}

// readSecretFile returns the content of the file at path with surrounding white space removed.
// Its errors name the path, never the content.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // G304: reading the file the operator named is the point.
	if err != nil {
		return "", fmt.Errorf("cannot read the file %q: %w", path, cause(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileSize+1))
	if err != nil {
		return "", fmt.Errorf("cannot read the file %q: %w", path, cause(err))
	}
	if len(b) > maxSecretFileSize {
		return "", fmt.Errorf("%q is larger than %d bytes", path, maxSecretFileSize)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("the file %q is empty", path)
	}
	return v, nil
}

// cause returns the error inside a *fs.PathError, whose path the caller reports itself.
func cause(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

// CreateSecretFile creates dir/name with mode 0600 and content data unless it exists, creating
// dir with mode 0700 if it is missing. It is the one writer of the development secrets (master
// key, key-encryption key, the dev API key), so that each has the same guarantees: a reader never
// sees a partial file, the file is synced before it appears and its directory after, and two
// processes starting at once agree on one value because an existing file is never replaced. It
// writes a temporary file and links it into place, renaming it instead where the file system has
// no hard links. It reports whether it created the file; when it did not, the caller reads the
// file that won.
func CreateSecretFile(dir, name string, data []byte) (created bool, err error) {
	if err := os.MkdirAll(dir, dataDirPerm); err != nil {
		return false, err
	}
	return createFileAtomic(dir, name, data)
}

// createFileAtomic is CreateSecretFile in a directory that exists.
func createFileAtomic(dir, name string, data []byte) (created bool, err error) {
	f, err := os.CreateTemp(dir, "."+name+"-*.tmp")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer func() {
		// After a link the temporary name remains; after a rename it is gone.
		_ = os.Remove(tmp)
	}()
	if err := writeAndClose(f, data); err != nil {
		return false, err
	}
	final := filepath.Join(dir, name)
	if err := os.Link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		if err := os.Rename(tmp, final); err != nil {
			return false, err
		}
	}
	syncDir(dir)
	return true, nil
}

// writeAndClose sets the mode of f to 0600, writes data, syncs, and closes f.
func writeAndClose(f *os.File, data []byte) error {
	err := f.Chmod(secretFilePerm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

// syncDir makes a new entry in dir durable where the platform supports it.
func syncDir(dir string) {
	d, err := os.Open(dir) //nolint:gosec // G304: the data directory is the operator's setting.
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}

// sourceName names where a secret of kind k came from, for messages: the variable (or flag) of its
// value or of its file, or the development file it was generated into.
func (c *Config) sourceName(k *secretKind, src secretSource) string {
	if !src.given() && k.fileName != "" {
		return fmt.Sprintf("%s (unset: the development key in %s)", k.env, filepath.Join(c.DataDir, k.fileName))
	}
	return src.name(k.env)
}

// KeyEncryptionKeySources names where the key-encryption keys came from, for the message of a key
// set that none of them opens: the current key's variable, or its _FILE form when the file was
// used, and the previous keys' when set.
func (c *Config) KeyEncryptionKeySources() string {
	names := c.sourceName(keyEncryptionKeyKind, c.keyEncryptionKey)
	if src := c.previousKEKs; src.given() {
		names += " and " + src.name(varKeyEncryptionKeyPrevious)
	}
	return names
}
