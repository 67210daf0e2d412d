package accesstoken_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

func TestParseActor(t *testing.T) {
	long := strings.Repeat("a", 257)
	tests := []struct {
		name string
		json string
		want []string // nil: malformed
	}{
		{"one", `{"sub":"a"}`, []string{"a"}},
		{"chain of four", `{"sub":"d","act":{"sub":"c","act":{"sub":"b","act":{"sub":"a"}}}}`, []string{"d", "c", "b", "a"}},
		{"chain of five", `{"sub":"e","act":{"sub":"d","act":{"sub":"c","act":{"sub":"b","act":{"sub":"a"}}}}}`, nil},
		{"null", `null`, nil},
		{"nested null", `{"sub":"a","act":null}`, nil},
		{"string", `"a"`, nil},
		{"array", `[{"sub":"a"}]`, nil},
		{"empty object", `{}`, nil},
		{"empty sub", `{"sub":""}`, nil},
		{"numeric sub", `{"sub":1}`, nil},
		{"long sub", `{"sub":"` + long + `"}`, nil},
		{"other member", `{"sub":"a","iss":"x"}`, nil},
		{"other member beside act", `{"sub":"a","act":{"sub":"b"},"x":1}`, nil},
		{"act without sub", `{"act":{"sub":"b"}}`, nil},
		{"nested malformed", `{"sub":"a","act":{"sub":"b","act":"c"}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.json), &v); err != nil {
				t.Fatal(err)
			}
			chain, ok := accesstoken.ParseActor(v)
			if tt.want == nil {
				if ok || chain != nil {
					t.Fatalf("ParseActor(%s) = %v, %v; want malformed", tt.json, chain, ok)
				}
				return
			}
			var got []string
			for _, a := range chain {
				got = append(got, a.Subject)
			}
			if !ok || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseActor(%s) = %v, %v; want %v", tt.json, got, ok, tt.want)
			}
		})
	}
}

// TestActorClaimRoundTrip: what the authority writes is what every verifier reads back.
func TestActorClaimRoundTrip(t *testing.T) {
	for n := 1; n <= accesstoken.MaxActorChain; n++ {
		var chain []accesstoken.Actor
		for i := range n {
			chain = append(chain, accesstoken.Actor{Subject: string(rune('a' + i))})
		}
		raw, err := json.Marshal(accesstoken.ActorClaim(chain))
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		got, ok := accesstoken.ParseActor(v)
		if !ok || !reflect.DeepEqual(got, chain) {
			t.Fatalf("round trip of %s = %v, %v; want %v", raw, got, ok, chain)
		}
	}
	if accesstoken.ActorClaim(nil) != nil {
		t.Fatal("ActorClaim(nil) must be nil: no act claim")
	}
}

// FuzzParseActor decodes arbitrary JSON as an act claim: it never panics, a chain it accepts is
// 1-MaxActorChain valid actors, and encoding that chain again and decoding it gives the same chain.
func FuzzParseActor(f *testing.F) {
	for _, seed := range []string{
		`{"sub":"a"}`, `{"sub":"b","act":{"sub":"a"}}`, `null`, `{}`, `{"sub":"a","act":null}`,
		`{"sub":"e","act":{"sub":"d","act":{"sub":"c","act":{"sub":"b","act":{"sub":"a"}}}}}`,
		`{"sub":"a","act":{"sub":"b"},"x":1}`, `[1,2]`, `{"sub":"\u0000"}`, `{"sub":{"sub":"a"}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			return
		}
		chain, ok := accesstoken.ParseActor(v)
		if !ok {
			if chain != nil {
				t.Fatalf("a refused claim returned a chain")
			}
			return
		}
		if len(chain) == 0 || len(chain) > accesstoken.MaxActorChain {
			t.Fatalf("accepted a chain of %d actors", len(chain))
		}
		for _, a := range chain {
			if !accesstoken.ValidActor(a.Subject) {
				t.Fatalf("accepted an invalid actor %q", a.Subject)
			}
		}
		again, err := json.Marshal(accesstoken.ActorClaim(chain))
		if err != nil {
			t.Fatal(err)
		}
		var w any
		if err := json.Unmarshal(again, &w); err != nil {
			t.Fatal(err)
		}
		if back, ok := accesstoken.ParseActor(w); !ok || !reflect.DeepEqual(back, chain) {
			t.Fatalf("re-encoded chain %s decodes to %v, %v; want %v", again, back, ok, chain)
		}
	})
}
