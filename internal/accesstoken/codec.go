package accesstoken

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// MaxKeyIDLen bounds the `kid` header: a longer one names no key of any tenant, and every verifier
// refuses it before looking it up.
const MaxKeyIDLen = 64

// ValidKeyID reports whether kid may name a key: 1 to MaxKeyIDLen bytes.
func ValidKeyID(kid string) bool { return kid != "" && len(kid) <= MaxKeyIDLen }

// Claims are an access token's registered claims as they are written, in that order. The
// authority and authntest both encode them with Encode.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  []string `json:"aud,omitempty"`
	ExpiresAt int64    `json:"exp"`
	NotBefore int64    `json:"nbf"`
	IssuedAt  int64    `json:"iat"`
	// IssuedAtMS is iat in milliseconds: a verifier without the store (authn's local mode)
	// compares it with a cut-off, which has millisecond precision, so that a token issued in the
	// cut-off's second but after it is not refused (and one issued before it always is).
	IssuedAtMS int64  `json:"iat_ms"`
	JTI        string `json:"jti"`
	SessionID  string `json:"sid"`
	Scope      string `json:"scope,omitempty"`
	// Act is the delegation chain of an exchanged token (RFC 8693 section 4.1); nil otherwise.
	Act *ActClaim `json:"act,omitempty"`
	// Confirmation binds the token to a client certificate (RFC 8705); nil when unbound.
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the `cnf` claim of a certificate-bound token.
type Confirmation struct {
	X5tS256 string `json:"x5t#S256"`
}

// Encode returns the JSON payload of c followed by the members of extra, a JSON object (or nil)
// whose names the caller checked with IsReservedName: a registered claim is written once, first.
func Encode(c *Claims, extra []byte) ([]byte, error) {
	out, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	if len(extra) > 2 && extra[0] == '{' && extra[len(extra)-1] == '}' {
		out[len(out)-1] = ','
		out = append(out, extra[1:]...)
	}
	return out, nil
}

// Decoded are the claims of a well-formed access token, typed.
type Decoded struct {
	Issuer    string
	Subject   string
	Audience  []string
	ExpiresAt time.Time
	NotBefore time.Time // zero when the token has no nbf
	// IssuedAt is iat, in whole seconds.
	IssuedAt time.Time
	// IssuedAtExact is iat_ms when the token has it (the authority always writes it), else
	// IssuedAt: the instant compared with revocation cut-offs.
	IssuedAtExact time.Time
	JTI           string
	SessionID     string
	Scopes        []string
	// CertThumbprint is the x5t#S256 of the client certificate the token is bound to (`cnf`);
	// empty when it is not bound.
	CertThumbprint string
	// Extra holds every claim that is not a registered one; nil when there is none.
	Extra map[string]any
	// Actor is the delegation chain of an exchanged token (its `act` claim), outermost first;
	// nil for a token that was not exchanged.
	Actor []Actor
}

// Decode reads a token's JSON payload; see DecodeMap for the shape rules.
func Decode(payload []byte) (*Decoded, bool) {
	var m map[string]any
	if json.Unmarshal(payload, &m) != nil || m == nil {
		return nil, false
	}
	return DecodeMap(m)
}

// DecodeMap reads the claims of a token's payload as a JSON decoder gives them (a jwt.MapClaims,
// numbers as float64), or reports the token malformed. Every verifier decodes with it, so none
// accepts a token another refuses. The shape rules:
//   - exp and iat are required, nbf optional: JSON numbers of whole seconds within ±2^53;
//   - iat_ms is optional: a whole number of milliseconds, 0 to 2^53, within iat's second;
//   - iss and sub are required strings; jti and sid are required non-empty strings (a token
//     without a session could not be revoked with it);
//   - aud is absent, a string, or an array of strings; scope, when present, a string;
//   - act is a delegation chain (ParseActor) and cnf a readable binding (CertificateThumbprint);
//   - any other claim is kept in Extra.
func DecodeMap(m map[string]any) (*Decoded, bool) {
	c := &Decoded{}
	var ok bool
	if c.ExpiresAt, ok = numericDate(m["exp"]); !ok {
		return nil, false
	}
	if c.IssuedAt, ok = numericDate(m["iat"]); !ok {
		return nil, false
	}
	c.IssuedAtExact = c.IssuedAt
	if v, present := m["iat_ms"]; present {
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || f < 0 || f > 1<<53 || int64(f)/1000 != c.IssuedAt.Unix() {
			return nil, false
		}
		c.IssuedAtExact = time.UnixMilli(int64(f)).UTC()
	}
	if v, present := m["nbf"]; present {
		if c.NotBefore, ok = numericDate(v); !ok {
			return nil, false
		}
	}
	if c.Issuer, ok = m["iss"].(string); !ok {
		return nil, false
	}
	if c.Subject, ok = m["sub"].(string); !ok {
		return nil, false
	}
	if c.JTI, ok = m["jti"].(string); !ok || c.JTI == "" {
		return nil, false
	}
	if c.SessionID, ok = m["sid"].(string); !ok || c.SessionID == "" {
		return nil, false
	}
	if c.Audience, ok = audience(m["aud"]); !ok {
		return nil, false
	}
	if v, present := m["scope"]; present {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		c.Scopes = ParseScope(s)
	}
	if v, present := m["act"]; present {
		if c.Actor, ok = ParseActor(v); !ok {
			return nil, false
		}
	}
	if v, present := m["cnf"]; present {
		// A binding that cannot be read must not read as none.
		if c.CertThumbprint, ok = CertificateThumbprint(v); !ok {
			return nil, false
		}
	}
	for name, v := range m {
		if !IsRegistered(name) {
			if c.Extra == nil {
				c.Extra = map[string]any{}
			}
			c.Extra[name] = v
		}
	}
	return c, true
}

// numericDate reads a JSON number of whole seconds: the authority writes no fractions.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0).UTC(), true
}

// audience reads aud: absent (or null), a string, or an array of strings.
func audience(v any) ([]string, bool) {
	switch a := v.(type) {
	case nil:
		return nil, true
	case string:
		return []string{a}, true
	case []any:
		out := make([]string, len(a))
		for i, e := range a {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// Token types (the `typ` header): a verifier of access tokens refuses every other, a refresh
// token first.
const (
	TypeAccess  = "at+jwt"
	TypeRefresh = "rt+jwt"
)
