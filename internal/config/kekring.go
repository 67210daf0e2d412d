package config

import (
	"bytes"
	"fmt"
	"strings"
)

// varKeyEncryptionKeyPrevious lists the key-encryption keys being rotated away from.
const varKeyEncryptionKeyPrevious = varKeyEncryptionKey + "_PREVIOUS"

// previousKEKs parses the previous key-encryption keys given as a value (comma-separated) or, with
// the _FILE variable, notes the file that ResolveSecrets reads (one key per line).
func (p *parser) previousKEKs() secretSource {
	val, file, ok := p.valueOrFile(varKeyEncryptionKeyPrevious)
	src := secretSource{valueName: val.name, pathName: file.name}
	switch {
	case !ok:
	case val.value != "":
		if _, err := parsePreviousKEKs(strings.Split(val.value, ",")); err != nil {
			p.errorf(val, "%v", err)
		}
		src.value = NewSecret(val.value)
	case file.value != "":
		src.path = file.value
	}
	return src
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

// resolvePreviousKEKs returns the previous key-encryption keys found at src, reading its file
// (one key per line), and refuses the current key among them. Errors name the variable.
func (r *resolver) resolvePreviousKEKs(src secretSource, current []byte) ([][]byte, error) {
	var name string
	var entries []string
	switch {
	case !src.value.IsZero():
		name = orDefault(src.valueName, varKeyEncryptionKeyPrevious)
		entries = strings.Split(src.value.Reveal(), ",")
	case src.path != "":
		name = orDefault(src.pathName, varKeyEncryptionKeyPrevious+fileSuffix)
		v, err := readValueFile(name, src.path, r.c.Env == EnvProduction)
		if err != nil {
			return nil, err
		}
		entries = strings.Split(v, "\n")
	default:
		return nil, nil
	}
	keys, err := parsePreviousKEKs(entries)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for i, k := range keys {
		if bytes.Equal(k, current) {
			return nil, fmt.Errorf("%s: key #%d is the current key (%s): a previous key opens old records, "+
				"the current one seals new ones", name, i+1, varKeyEncryptionKey)
		}
	}
	return keys, nil
}
