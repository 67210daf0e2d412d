package config

import (
	"fmt"
	"io"
	"log/slog"
)

// redacted is what a Secret prints instead of its value.
const redacted = "[REDACTED]"

// Secret is a string that never prints itself. Formatting it with any fmt verb, marshaling it to
// JSON or text, and logging it with log/slog all yield "[REDACTED]"; only Reveal returns the
// value. The zero Secret is empty.
type Secret struct {
	value string
}

// NewSecret returns a Secret holding value.
func NewSecret(value string) Secret {
	return Secret{value: value}
}

// Reveal returns the value of the secret. Pass the result on, never print it.
func (s Secret) Reveal() string {
	return s.value
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool {
	return s.value == ""
}

// String returns "[REDACTED]".
func (Secret) String() string {
	return redacted
}

// GoString returns "[REDACTED]", so %#v hides the value too.
func (Secret) GoString() string {
	return redacted
}

// Format writes "[REDACTED]" for every verb and flag.
func (Secret) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, redacted)
}

// MarshalJSON returns the JSON string "[REDACTED]".
func (Secret) MarshalJSON() ([]byte, error) {
	return []byte(`"` + redacted + `"`), nil
}

// MarshalText returns "[REDACTED]", for encoders that use encoding.TextMarshaler.
func (Secret) MarshalText() ([]byte, error) {
	return []byte(redacted), nil
}

// LogValue implements slog.LogValuer and returns "[REDACTED]".
func (Secret) LogValue() slog.Value {
	return slog.StringValue(redacted)
}
