package accesstoken

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestEncodeSplicesExtraAfterRegistered(t *testing.T) {
	c := &Claims{Issuer: "i", Subject: "s", ExpiresAt: 20, NotBefore: 10, IssuedAt: 10, IssuedAtMS: 10_500, JTI: "j", SessionID: "sid",
		Confirmation: &Confirmation{X5tS256: "tp"}, Act: ActorClaim([]Actor{{Subject: "svc"}})}
	for _, tt := range []struct {
		extra []byte
		want  string
	}{
		{nil, `{"iss":"i","sub":"s","exp":20,"nbf":10,"iat":10,"iat_ms":10500,"jti":"j","sid":"sid","act":{"sub":"svc"},"cnf":{"x5t#S256":"tp"}}`},
		{[]byte(`{}`), `{"iss":"i","sub":"s","exp":20,"nbf":10,"iat":10,"iat_ms":10500,"jti":"j","sid":"sid","act":{"sub":"svc"},"cnf":{"x5t#S256":"tp"}}`},
		{[]byte(`{"role":"r"}`), `{"iss":"i","sub":"s","exp":20,"nbf":10,"iat":10,"iat_ms":10500,"jti":"j","sid":"sid","act":{"sub":"svc"},"cnf":{"x5t#S256":"tp"},"role":"r"}`},
	} {
		got, err := Encode(c, tt.extra)
		if err != nil || string(got) != tt.want {
			t.Errorf("Encode(extra %s) = %s, %v; want %s", tt.extra, got, err, tt.want)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	c := &Claims{Issuer: "i", Subject: "s", Audience: []string{"a", "b"}, ExpiresAt: 20, NotBefore: 10, IssuedAt: 10, IssuedAtMS: 10_500,
		JTI: "j", SessionID: "sid", Scope: "x y", Confirmation: &Confirmation{X5tS256: "tp"}, Act: ActorClaim([]Actor{{Subject: "svc"}})}
	payload, err := Encode(c, []byte(`{"role":"r"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := Decode(payload)
	want := &Decoded{Issuer: "i", Subject: "s", Audience: []string{"a", "b"}, ExpiresAt: time.Unix(20, 0).UTC(),
		NotBefore: time.Unix(10, 0).UTC(), IssuedAt: time.Unix(10, 0).UTC(), IssuedAtExact: time.UnixMilli(10_500).UTC(),
		JTI: "j", SessionID: "sid", Scopes: []string{"x", "y"}, CertThumbprint: "tp", Extra: map[string]any{"role": "r"},
		Actor: []Actor{{Subject: "svc"}}}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("Decode(%s) = %+v, %v; want %+v", payload, got, ok, want)
	}
}

// TestDecodeMapShapeRules: each rule of DecodeMap's doc comment, one case each way.
func TestDecodeMapShapeRules(t *testing.T) {
	base := `{"iss":"i","sub":"s","exp":20,"nbf":10,"iat":10,"iat_ms":10999,"jti":"j","sid":"sid"}`
	tests := []struct {
		name   string
		change map[string]any // nil value: remove the claim
		ok     bool
	}{
		{"well formed", nil, true},
		{"no exp", map[string]any{"exp": nil}, false},
		{"fractional exp", map[string]any{"exp": 20.5}, false},
		{"string exp", map[string]any{"exp": "20"}, false},
		{"exp beyond 2^53", map[string]any{"exp": float64(1 << 54)}, false},
		{"no iat", map[string]any{"iat": nil}, false},
		{"fractional iat", map[string]any{"iat": 10.5}, false},
		{"no nbf", map[string]any{"nbf": nil}, true},
		{"fractional nbf", map[string]any{"nbf": 10.5}, false},
		{"no iat_ms", map[string]any{"iat_ms": nil}, true},
		{"iat_ms at iat's second", map[string]any{"iat_ms": 10000}, true},
		{"iat_ms before iat's second", map[string]any{"iat_ms": 9999}, false},
		{"iat_ms after iat's second", map[string]any{"iat_ms": 11000}, false},
		{"fractional iat_ms", map[string]any{"iat_ms": 10000.5}, false},
		{"negative iat_ms", map[string]any{"iat_ms": -1}, false},
		{"no iss", map[string]any{"iss": nil}, false},
		{"empty iss", map[string]any{"iss": ""}, true},
		{"numeric sub", map[string]any{"sub": 1}, false},
		{"no jti", map[string]any{"jti": nil}, false},
		{"empty jti", map[string]any{"jti": ""}, false},
		{"no sid", map[string]any{"sid": nil}, false},
		{"empty sid", map[string]any{"sid": ""}, false},
		{"numeric sid", map[string]any{"sid": 1}, false},
		{"aud string", map[string]any{"aud": "a"}, true},
		{"aud array", map[string]any{"aud": []any{"a", "b"}}, true},
		{"aud number", map[string]any{"aud": 1}, false},
		{"aud array of numbers", map[string]any{"aud": []any{"a", 1}}, false},
		{"scope number", map[string]any{"scope": 1}, false},
		{"cnf unreadable", map[string]any{"cnf": map[string]any{"x5t": "tp"}}, false},
		{"act malformed", map[string]any{"act": "svc"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal([]byte(base), &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.change {
				if v == nil {
					delete(m, k)
				} else {
					m[k] = v
				}
			}
			// Through JSON, so that numbers are float64 as a verifier sees them.
			raw, _ := json.Marshal(m)
			if _, ok := Decode(raw); ok != tt.ok {
				t.Fatalf("Decode(%s) ok = %v, want %v", raw, ok, tt.ok)
			}
		})
	}
}

func TestCheckTimes(t *testing.T) {
	at := func(s int64) time.Time { return time.Unix(s, 0) }
	const leeway = 30 * time.Second
	tests := []struct {
		name          string
		exp, nbf, iat time.Time
		now           time.Time
		want          Timing
	}{
		{"current", at(200), at(100), at(100), at(150), Current},
		{"within leeway after exp", at(200), at(100), at(100), at(229), Current},
		{"at exp plus leeway", at(200), at(100), at(100), at(230), Expired},
		{"iat at now plus leeway", at(200), time.Time{}, at(130), at(100), Current},
		{"iat after now plus leeway", at(200), time.Time{}, at(131), at(100), NotYetValid},
		{"nbf after now plus leeway", at(200), at(131), at(100), at(100), NotYetValid},
	}
	for _, tt := range tests {
		if got := CheckTimes(tt.exp, tt.nbf, tt.iat, tt.now, leeway); got != tt.want {
			t.Errorf("%s: CheckTimes = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestAlgorithms(t *testing.T) {
	for _, a := range Algorithms() {
		if got, ok := ParseAlgorithm(string(a)); !ok || got != a {
			t.Errorf("ParseAlgorithm(%q) = %q, %v", a, got, ok)
		}
		if a.Method() == nil || a.Method().Alg() != string(a) {
			t.Errorf("%s.Method() = %v", a, a.Method())
		}
		if a.Public() == (a == HS256) {
			t.Errorf("%s.Public() = %v", a, a.Public())
		}
	}
	for _, s := range []string{"", "none", "hs256", "HS512", "eddsa"} {
		if _, ok := ParseAlgorithm(s); ok {
			t.Errorf("ParseAlgorithm(%q) accepted", s)
		}
	}
}
