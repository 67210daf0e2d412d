package config

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// logOutputs returns what the slog text and JSON handlers write for one record carrying args.
func logOutputs(t *testing.T, args ...any) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(newHandler(&b)).Info("message", args...)
		out[name] = b.String()
	}
	return out
}

func TestSecretRedaction(t *testing.T) {
	const value = "correct-horse-battery-staple-4242"
	s := NewSecret(value)
	holder := struct {
		Name   string
		Secret Secret
		Ptr    *Secret
	}{Name: "holder", Secret: s, Ptr: &s}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-40v"} {
		outputs["Sprintf "+verb+" value"] = fmt.Sprintf(verb, s)
		outputs["Sprintf "+verb+" pointer"] = fmt.Sprintf(verb, &s)
		outputs["Sprintf "+verb+" struct"] = fmt.Sprintf(verb, holder)
	}
	outputs["Sprint"] = fmt.Sprint(s, &s, holder, []Secret{s}, map[string]Secret{"k": s})
	outputs["Sprintln"] = fmt.Sprintln(s)
	outputs["String"] = s.String()
	outputs["GoString"] = s.GoString()
	for name, v := range map[string]any{"value": s, "pointer": &s, "struct": holder, "map": map[string]Secret{"k": s}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs["json "+name] = string(b)
	}
	text, err := s.MarshalText()
	if err != nil {
		t.Fatalf("MarshalText: %v", err)
	}
	outputs["MarshalText"] = string(text)
	for handler, out := range logOutputs(t, "secret", s, "pointer", &s, slog.Any("any", s), "struct", holder,
		slog.Group("group", "secret", s)) {
		outputs["slog "+handler] = out
	}

	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s shows the secret: %s", name, out)
		}
		if !strings.Contains(out, redacted) && !strings.Contains(out, "config.Secret") {
			t.Errorf("%s does not say %s: %s", name, redacted, out)
		}
	}
}

func TestSecretRevealAndIsZero(t *testing.T) {
	var zero Secret
	if !zero.IsZero() || zero.Reveal() != "" {
		t.Errorf("zero Secret: IsZero() = %v, Reveal() = %q", zero.IsZero(), zero.Reveal())
	}
	s := NewSecret("value")
	if s.IsZero() || s.Reveal() != "value" {
		t.Errorf("NewSecret(%q): IsZero() = %v, Reveal() = %q", "value", s.IsZero(), s.Reveal())
	}
}

func TestConfigRedaction(t *testing.T) {
	key := []byte("0123456789abcdefghijklmnopqrstuv")
	c, err := Parse(nil, fakeEnv(production(nil)), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c.MasterKey = NewSecret(testMasterKey)
	c.KeyEncryptionKey = key
	leaks := []string{
		testMasterKey,
		testKeyEncryptionKey,
		base64.StdEncoding.EncodeToString(key),
		string(key),
		fmt.Sprintf("%d", key),
		fmt.Sprintf("%x", key),
		"s3cr3t-redis-password",
	}

	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		outputs["Sprintf "+verb+" value"] = fmt.Sprintf(verb, *c)
		outputs["Sprintf "+verb+" pointer"] = fmt.Sprintf(verb, c)
	}
	for name, v := range map[string]any{"value": *c, "pointer": c} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs["json "+name] = string(b)
	}
	for handler, out := range logOutputs(t, "config", c, "value", *c) {
		outputs["slog "+handler] = out
	}

	for name, out := range outputs {
		for _, leak := range leaks {
			if strings.Contains(out, leak) {
				t.Errorf("%s shows %q: %s", name, leak, out)
			}
		}
		if !strings.Contains(out, "redis.internal") || !strings.Contains(out, ":50051") {
			t.Errorf("%s does not show the settings: %s", name, out)
		}
	}
	var decoded map[string]string
	if err := json.Unmarshal([]byte(outputs["json value"]), &decoded); err != nil {
		t.Fatalf("json output does not decode: %v", err)
	}
	if decoded["access_ttl"] != "15m0s" || decoded["master_key"] != redacted {
		t.Errorf("json output = %v", decoded)
	}
}
