package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/status"
)

// stdinName is the file name that stands for the standard input.
const stdinName = "-"

// maxSecretSize bounds what is read for one secret: far above any token or secret the server
// accepts, and small enough that naming a device or a huge file by mistake does not hang or fill
// memory.
const maxSecretSize = 64 << 10

// secretFlags are the two flags that give one secret: -NAME VALUE, which other users of the
// machine can read in the process list, or -NAME-file PATH ("-" for the standard input).
type secretFlags struct {
	name  string
	what  string
	value string
	file  string
}

// secretVar defines -name and -name-file on fs for the secret described by what.
func secretVar(fs *flag.FlagSet, name, what string) *secretFlags {
	s := &secretFlags{name: name, what: what}
	fs.StringVar(&s.value, name, "", what+" (prefer -"+name+"-file: argv is visible to other users)")
	fs.StringVar(&s.file, name+"-file", "", "read "+what+" from `file`, trimmed; - reads the standard input")
	return s
}

// given reports whether either flag is set.
func (s *secretFlags) given() bool { return s.value != "" || s.file != "" }

// check refuses both flags at once.
func (s *secretFlags) check() error {
	if s.value != "" && s.file != "" {
		return usagef("-%s and -%s-file are mutually exclusive", s.name, s.name)
	}
	return nil
}

// read returns the secret, from the flag or from its file (in for "-"), trimmed of surrounding
// white space. Its errors are usage errors that name the file, never its content.
func (s *secretFlags) read(in io.Reader) (string, error) {
	if s.file == "" {
		return strings.TrimSpace(s.value), nil
	}
	source := s.file
	if s.file == stdinName {
		source = "the standard input"
		if in == nil {
			in = strings.NewReader("")
		}
	} else {
		f, err := os.Open(s.file) //nolint:gosec // G304: the operator names the file
		if err != nil {
			return "", usagef("read %s: %v", s.what, err)
		}
		defer f.Close()
		in = f
	}
	b, err := io.ReadAll(io.LimitReader(in, maxSecretSize+1))
	switch {
	case err != nil:
		return "", usagef("read %s from %s: %v", s.what, source, err)
	case len(b) > maxSecretSize:
		return "", usagef("%s in %s is longer than %d bytes", s.what, source, maxSecretSize)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", usagef("%s in %s is empty", s.what, source)
	}
	return secret, nil
}

// redactErr returns err with every occurrence of the secrets in its message replaced, keeping its
// gRPC status code, in case a server echoes what it was sent.
func redactErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	s, isStatus := status.FromError(err)
	if isStatus {
		msg = s.Message()
	}
	redactedMsg := msg
	for _, secret := range secrets {
		if secret != "" {
			redactedMsg = strings.ReplaceAll(redactedMsg, secret, redacted)
		}
	}
	switch {
	case redactedMsg == msg:
		return err
	case isStatus:
		return status.Error(s.Code(), redactedMsg)
	}
	return errors.New(redactedMsg)
}
