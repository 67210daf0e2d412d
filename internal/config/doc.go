// Package config reads the settings of the token authority from flags and environment variables,
// validates them in one pass, and resolves its secrets.
//
// Every setting has an environment variable TOKENAUTHORITY_<NAME> and a flag -<name>, the suffix
// in lower case with dashes (TOKENAUTHORITY_GRPC_ADDR and -grpc-addr). A flag given on the command
// line overrides the variable, even when it is given empty, and an empty value selects the
// default: flag > variable > default. Values are case-sensitive.
//
// Parse reports every problem at once, each naming the variable (and the flag when the value came
// from one), and never echoes the Redis URL or a secret. The environment is development unless
// TOKENAUTHORITY_ENV=production or -env production says otherwise; production is never guessed.
// In production a Redis URL and both secrets are required, and TLS (TOKENAUTHORITY_TLS_CERT_FILE
// and _KEY_FILE) unless TOKENAUTHORITY_INSECURE_PLAINTEXT=true says a mesh terminates it.
//
// The secrets, the master key and the key-encryption key, may be given as a value
// (TOKENAUTHORITY_MASTER_KEY, -master-key) or as a file holding the value
// (TOKENAUTHORITY_MASTER_KEY_FILE, -master-key-file), but not both. A secret given by flag in
// either form replaces one given by variable in either form. ResolveSecrets reads the files and, in
// development only, generates a missing secret once and keeps it in the data directory so that
// later starts reuse it. Secret values never appear in errors, notes, or printed configurations:
// the Secret type and Config redact themselves in fmt, encoding/json and log/slog output. The
// Redis URL, which may hold a password, is given and read the same way.
//
// One table, settings, holds every setting: its typed default in each environment, its parser
// and its rules. The usage text, Parse and its validation all come from it, so a default is
// written once. Every development secret file, the development API key included, is written by
// CreateSecretFile (atomically, synced, mode 0600 in a 0700 directory, never replacing one).
package config
