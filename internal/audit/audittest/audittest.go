// Package audittest captures what an audit.Writer writes, for the tests of the packages that emit
// audit events.
package audittest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/audit"
)

// Log is an audit log in memory. It is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// New returns a writer of JSON audit lines into a new Log, naming no caller.
func New() (*audit.Writer, *Log) {
	l := &Log{}
	return audit.NewWriter(slog.New(slog.NewJSONHandler(l, nil)), nil), l
}

// Write appends p, as the writer's handler does.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns what was written since the last Reset.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len returns the number of bytes written since the last Reset.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// Reset forgets what was written.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// Records decodes each line written since the last Reset.
func (l *Log) Records(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// Names returns the event name (audit=<name>) of each line written since the last Reset.
func (l *Log) Names(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, rec := range l.Records(t) {
		out = append(out, fmt.Sprint(rec["audit"]))
	}
	return out
}
