package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/audit"
)

func TestEveryKindHasOneName(t *testing.T) {
	seen := map[string]audit.Kind{}
	for _, k := range audit.Kinds() {
		name := k.String()
		if name == "" || name == "unknown" {
			t.Errorf("kind %d has no name", k)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("kinds %d and %d share the name %q", prev, k, name)
		}
		seen[name] = k
	}
}

type callerKey struct{}

func TestWriterWritesOneStructuredLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	w := audit.NewWriter(log, func(ctx context.Context) []slog.Attr {
		if id, ok := ctx.Value(callerKey{}).(string); ok {
			return []slog.Attr{slog.String("caller_key_id", id)}
		}
		return nil
	})
	ctx := context.WithValue(context.Background(), callerKey{}, "k-1")
	at := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	w.Emit(ctx, audit.Event{Kind: audit.SubjectCutoff, Tenant: "acme", Subject: "alice", Cutoff: at})
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"audit": "subject_cutoff", "log": "audit", "tenant": "acme", "subject": "alice",
		"cutoff": at.Format(time.RFC3339), "caller_key_id": "k-1", "level": "WARN", "msg": "subject sessions revoked",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v", k, rec[k], v)
		}
	}
	for _, k := range []string{"session_id", "jti", "key_id", "kid", "principal", "reason", "emergency"} {
		if _, ok := rec[k]; ok {
			t.Errorf("field %s written although the event leaves it empty", k)
		}
	}
}

func TestNilWriterAndUnknownKindWriteNothing(t *testing.T) {
	var nilWriter *audit.Writer
	nilWriter.Emit(context.Background(), audit.Event{Kind: audit.TokenIssued, Tenant: "acme"})
	var buf bytes.Buffer
	w := audit.NewWriter(slog.New(slog.NewJSONHandler(&buf, nil)), nil)
	w.Emit(context.Background(), audit.Event{Tenant: "acme"})
	w.Emit(context.Background(), audit.Event{Kind: audit.Kind(200), Tenant: "acme"})
	if buf.Len() != 0 {
		t.Errorf("events without a known kind were written: %q", buf.String())
	}
}
