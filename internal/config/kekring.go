package config

import (
	"bytes"
	"fmt"
	"strings"
)

// varKeyEncryptionKeyPrevious lists the key-encryption keys being rotated away from.
const varKeyEncryptionKeyPrevious = varKeyEncryptionKey + "_PREVIOUS"

// keyEncryptionKeyPreviousKind is the list of key-encryption keys being rotated away from: never
// generated, it exists only while an operator rotates the key-encryption key. Its value is a
// comma-separated list, its file one key per line (either separator is accepted in both).
var keyEncryptionKeyPreviousKind = &secretKind{
	env:  varKeyEncryptionKeyPrevious,
	what: "previous key-encryption keys",
	check: func(v string) error {
		_, err := parsePreviousKEKs(splitKEKList(v))
		return err
	},
}

// splitKEKList splits a list of key-encryption keys at commas and line ends.
func splitKEKList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' })
}

// parsePreviousKEKs decodes a list of key-encryption keys, refusing a malformed one or a
// duplicate. Blank entries are skipped. Its errors number the keys and never hold one.
func parsePreviousKEKs(entries []string) ([][]byte, error) {
	var out [][]byte
	n := 0
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		n++
		k, err := decodeKeyEncryptionKey(e)
		if err != nil {
			return nil, fmt.Errorf("key #%d %w", n, err)
		}
		for i, prev := range out {
			if bytes.Equal(prev, k) {
				return nil, fmt.Errorf("key #%d is key #%d again: list each key once", n, i+1)
			}
		}
		out = append(out, k)
	}
	return out, nil
}

// resolvePreviousKEKs returns the previous key-encryption keys found at src (none when it is
// not set), and refuses the current key among them. Errors name the variable.
func (r *resolver) resolvePreviousKEKs(src secretSource, current []byte) ([][]byte, error) {
	if !src.given() {
		return nil, nil
	}
	v, err := r.lookup(keyEncryptionKeyPreviousKind, src)
	if err != nil {
		return nil, err
	}
	keys, err := parsePreviousKEKs(splitKEKList(v)) // checked by lookup: cannot fail
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if bytes.Equal(k, current) {
			return nil, fmt.Errorf("%s: key #%d is the current key (%s): a previous key opens old records, "+
				"the current one seals new ones", src.name(varKeyEncryptionKeyPrevious), i+1, varKeyEncryptionKey)
		}
	}
	return keys, nil
}
