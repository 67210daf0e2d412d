package accesstoken

import (
	"slices"
	"testing"
)

func TestValidScope(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"orders.read", true},
		{"a", true},
		{"urn:example:scope/x?y=1&z=[2]", true},
		{"!#$%&'()*+,-./:;<=>?@[]^_`{|}~", true},
		{"", false},
		{"a b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\"b", false},
		{`a\b`, false},
		{"orders.read\u00a0orders.write", false}, // NBSP: not a separator, not part of a scope
		{"orders.read\u2003orders.write", false}, // EM SPACE
		{"caf\u00e9", false},
		{"a\x00", false},
		{"a\x7f", false},
	}
	for _, c := range cases {
		if got := ValidScope(c.in); got != c.want {
			t.Errorf("ValidScope(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestParseScope(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a b c", []string{"a", "b", "c"}},
		{"a  b", []string{"a", "b"}},
		{" a b ", []string{"a", "b"}},
		// Only U+0020 separates scopes: the NBSP-joined claim grants neither part.
		{"orders.read\u00a0orders.write", nil},
		{"x orders.read\u00a0orders.write", []string{"x"}},
		{"a\tb", nil},
		{"a\nb c", []string{"c"}},
	}
	for _, c := range cases {
		if got := ParseScope(c.in); !slices.Equal(got, c.want) {
			t.Errorf("ParseScope(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"a b", "orders.read\u00a0orders.write", " ", "a\tb c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, claim string) {
		for _, s := range ParseScope(claim) {
			if !ValidScope(s) {
				t.Fatalf("ParseScope(%q) returned the invalid scope %q", claim, s)
			}
		}
		// A claim written from valid scopes reads back as the same scopes.
		if got := ParseScope(JoinScope(ParseScope(claim))); !slices.Equal(got, ParseScope(claim)) {
			t.Fatalf("ParseScope(JoinScope(ParseScope(%q))) = %q, want %q", claim, got, ParseScope(claim))
		}
	})
}
