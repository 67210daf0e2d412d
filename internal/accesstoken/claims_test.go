package accesstoken

import (
	"encoding/json"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestIsReservedName(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{"sub", true}, {"Sub", true}, {"SUB", true}, {"\u017fub", true}, // ſub folds to sub
		{"Exp", true}, {"Aud", true}, {"Iss", true}, {"Scope", true}, {"NBF", true}, {"iAt", true},
		{"JTI", true}, {"Sid", true}, {"Typ", true}, {"cnf", true}, {"CNF", true},
		{"act", true}, {"Act", true}, {"may_act", true}, {"client_ID", true},
		{"\u212aid", false}, // KELVIN SIGN folds to k: "kid" is not a claim we write
		{"tenant_role", false}, {"subject", false}, {"su", false}, {"", false}, {"sub ", false},
	}
	for _, c := range cases {
		if got := IsReservedName(c.name); got != c.want {
			t.Errorf("IsReservedName(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReservedNamesAreWhatJSONFolds proves the rule against the decoder it protects: every name that
// encoding/json would read into golang-jwt's RegisteredClaims is reserved.
func TestReservedNamesAreWhatJSONFolds(t *testing.T) {
	for _, name := range []string{"Sub", "SUB", "\u017fub", "Exp", "Aud", "Iss", "Nbf", "Jti", "IAT"} {
		var rc jwt.RegisteredClaims
		payload := `{"sub":"alice","iss":"i","aud":"a","exp":1,"nbf":1,"iat":1,"jti":"j",` + `"` + name + `":"X"}`
		if err := json.Unmarshal([]byte(payload), &rc); err != nil {
			continue // A type mismatch (exp as a string) fails the decode: also not what we sent.
		}
		same := rc.Subject == "alice" && rc.Issuer == "i" && rc.ID == "j" && len(rc.Audience) == 1 && rc.Audience[0] == "a"
		if !same && !IsReservedName(name) {
			t.Errorf("extra claim %q changes RegisteredClaims but is not reserved", name)
		}
		if same {
			t.Logf("%q did not change RegisteredClaims", name)
		}
		if !IsReservedName(name) {
			t.Errorf("IsReservedName(%q) = false", name)
		}
	}
}
