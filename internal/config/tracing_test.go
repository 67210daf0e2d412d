package config

import (
	"strings"
	"testing"
)

func TestParseTracing(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    string
		wantErr string
	}{
		{name: "off by default", want: TracingOff},
		{name: "off", env: map[string]string{varTracing: "off"}, want: TracingOff},
		{name: "otlp", env: map[string]string{varTracing: "otlp"}, want: TracingOTLP},
		{name: "flag wins", env: map[string]string{varTracing: "otlp"}, args: []string{"-tracing", "off"}, want: TracingOff},
		{name: "unknown", env: map[string]string{varTracing: "jaeger"}, wantErr: varTracing + ": must be one of off, otlp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.args, fakeEnv(tt.env), nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Tracing != tt.want {
				t.Fatalf("Tracing = %q, want %q", c.Tracing, tt.want)
			}
			if !strings.Contains(c.String(), "tracing:"+tt.want) {
				t.Fatalf("String() does not show the tracing mode: %s", c)
			}
		})
	}
}
