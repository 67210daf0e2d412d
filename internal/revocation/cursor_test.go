package revocation

import (
	"errors"
	"testing"
)

func TestParseCursor(t *testing.T) {
	tests := []struct {
		in   string
		want ID
		ok   bool
	}{
		{"0", ID{}, true},
		{"1-0", ID{MS: 1}, true},
		{"1700000000000-12", ID{MS: 1700000000000, Seq: 12}, true},
		{"9007199254740991-9007199254740991", ID{MS: MaxCursorPart, Seq: MaxCursorPart}, true},
		// Well formed, but no log hands them out (the greatest stream id has no successor).
		{"18446744073709551615-18446744073709551615", ID{}, false},
		{"9007199254740992-0", ID{}, false},
		{"1-9007199254740992", ID{}, false},
		{"", ID{}, false},
		{"18446744073709551616-0", ID{}, false},
		{"01-0", ID{}, false},
		{"0-0", ID{}, false},
		{"1-00", ID{}, false},
		{"1", ID{}, false},
		{"-1", ID{}, false},
		{"1-", ID{}, false},
		{"1--1", ID{}, false},
		{"+1-1", ID{}, false},
		{"1-1\n", ID{}, false},
		{"1-1-1", ID{}, false},
		{"(1-1", ID{}, false},
	}
	for _, tt := range tests {
		got, err := ParseCursor(tt.in)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadCursor)) || got != tt.want {
			t.Errorf("ParseCursor(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if tt.ok && got.String() != tt.in {
			t.Errorf("String of ParseCursor(%q) = %q", tt.in, got.String())
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0", "1-0", "1700000000000-12", "01-0", "1--1", "(1-1", "18446744073709551616-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseCursor(s)
		if err != nil {
			return
		}
		// Every accepted cursor is canonical: it prints back as given, so a cursor names one entry.
		if id.String() != s {
			t.Fatalf("ParseCursor(%q) = %v, which prints as %q", s, id, id.String())
		}
	})
}
