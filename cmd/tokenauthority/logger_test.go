package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/config"
)

func TestJSONLogDurationsAreText(t *testing.T) {
	var buf bytes.Buffer
	log := newLoggerTo(&buf, &config.Config{LogFormat: "json", LogLevel: slog.LevelInfo})
	log.Info("x", slog.Duration("took", 1500*time.Millisecond), slog.Group("g", slog.Duration("ttl", 15*time.Minute)))
	out := buf.String()
	if !strings.Contains(out, `"took":"1.5s"`) || !strings.Contains(out, `"ttl":"15m0s"`) {
		t.Fatalf("durations are not Go duration strings: %s", out)
	}
}
