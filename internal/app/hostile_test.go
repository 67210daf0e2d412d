package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// b64url is the JWS segment encoding.
var b64url = base64.RawURLEncoding

// absent, as a value in with's pairs, removes the member.
type absentMember struct{}

var absent absentMember

// with returns a copy of m with the members of kv (name, value pairs) set, or removed when the
// value is absent.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		if _, ok := kv[i+1].(absentMember); ok {
			delete(out, name)
			continue
		}
		out[name] = kv[i+1]
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forge returns the compact JWS of header and claims signed by key (a tenant's real key or an
// attacker's); with a nil key the signature is empty.
func forge(t *testing.T, header, claims map[string]any, key *keys.Key) string {
	t.Helper()
	return sign(t, mustJSON(t, header), mustJSON(t, claims), key)
}

// sign is forge on raw header and payload bytes, for payloads that a map cannot express.
func sign(t *testing.T, header, payload []byte, key *keys.Key) string {
	t.Helper()
	signing := b64url.EncodeToString(header) + "." + b64url.EncodeToString(payload)
	if key == nil {
		return signing + "."
	}
	sig, err := key.Method.Sign(signing, key.SignKey)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64url.EncodeToString(sig)
}

// appendMember adds a raw member (`"name":value`) at the end of a JSON object.
func appendMember(object []byte, member string) []byte {
	out := bytes.TrimSuffix(bytes.TrimSpace(object), []byte("}"))
	return append(append(out, ','), member+"}"...)
}

// replaceSegment returns tok with its i-th segment replaced.
func replaceSegment(tok string, i int, seg string) string {
	parts := strings.Split(tok, ".")
	parts[i] = seg
	return strings.Join(parts, ".")
}

// editSignature returns tok with its decoded signature passed through edit.
func editSignature(t *testing.T, tok string, edit func([]byte) []byte) string {
	t.Helper()
	sig, err := b64url.DecodeString(strings.Split(tok, ".")[2])
	if err != nil {
		t.Fatal(err)
	}
	return replaceSegment(tok, 2, b64url.EncodeToString(edit(sig)))
}

// payloadOf decodes a token's claims, keeping numbers as written.
func payloadOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := b64url.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// outcome is what a hostile request must get: a failed call with code, or (code OK) an answer
// with active and reason; check, when set, looks further at an active answer.
type outcome struct {
	code   codes.Code
	active bool
	reason tokenauthorityv1.InactiveReason
	check  func(t *testing.T, v *tokenauthorityv1.VerifyTokenResponse)
}

func inactive(r tokenauthorityv1.InactiveReason) outcome { return outcome{reason: r} }
func failsWith(c codes.Code) outcome                     { return outcome{code: c} }
func isActive(check func(*testing.T, *tokenauthorityv1.VerifyTokenResponse)) outcome {
	return outcome{active: true, check: check}
}

// hostileEnv is the server under attack and what the cases build their inputs from.
type hostileEnv struct {
	r     *running
	ts    tokenauthorityv1.TokenServiceClient
	admin tokenauthorityv1.AdminServiceClient
	dev   context.Context // the dev API key: every role in tenant dev
	key   *keys.Key       // the dev tenant's signing key
	// live holds the claims of the access token of a live dev session (subject alice, audience
	// orders, scope read): forged tokens start from them, so that only what a case changes fails.
	live map[string]any
	// secrets collects every token and credential the test built or received, for the log check.
	secrets []string
}

// keep records a token or credential for the log check and returns it.
func (e *hostileEnv) keep(s string) string {
	e.secrets = append(e.secrets, s)
	return s
}

// header returns the header the authority writes, changed by kv.
func (e *hostileEnv) header(kv ...any) map[string]any {
	h := map[string]any{"alg": string(e.key.Algorithm), "kid": e.key.ID, "typ": token.TypeAccess}
	return with(h, kv...)
}

// claims returns the live session's claims, changed by kv.
func (e *hostileEnv) claims(kv ...any) map[string]any { return with(e.live, kv...) }

// signed forges a token with the tenant's real key.
func (e *hostileEnv) signed(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	return forge(t, header, claims, e.key)
}

// req returns the VerifyToken request of tok, recording tok.
func (e *hostileEnv) req(tok string) *tokenauthorityv1.VerifyTokenRequest {
	return &tokenauthorityv1.VerifyTokenRequest{Token: e.keep(tok)}
}

// issue issues a real pair for subject in tenant dev.
func (e *hostileEnv) issue(t *testing.T, subject string) *tokenauthorityv1.IssueTokenResponse {
	t.Helper()
	p, err := e.ts.IssueToken(e.dev, &tokenauthorityv1.IssueTokenRequest{Subject: subject, Audience: []string{"orders"}, Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	e.keep(p.GetAccessToken())
	e.keep(p.GetRefreshToken())
	return p
}

// leaveMillisecond returns once the clock has left the current millisecond (at most 1 ms of
// spinning, no sleep), so that a cut-off taken next lies strictly after the sessions created
// before the call: the ordinary case, kept apart from "subject cut-off in the session's own
// millisecond".
func leaveMillisecond() {
	ms := time.Now().UnixMilli()
	for time.Now().UnixMilli() == ms {
		runtime.Gosched()
	}
}

// TestHostileInputCatalogue presents hostile tokens and requests to the real server (gRPC, Redis)
// and pins the answer to each: the first failing check in the documented order (size and shape,
// algorithm allow-list, kid, signature, typ, time claims, issuer, audience, session, revocation,
// cut-offs, scopes), or the status of a request refused as a whole. The cases run in order: the
// tenant cut-off, which ends every dev session, comes last.
func TestHostileInputCatalogue(t *testing.T) {
	srv := redistest.Start(t)
	r := start(t, testConfig(t, srv.URL()))
	ctx := context.Background()
	e := &hostileEnv{
		r:     r,
		ts:    tokenauthorityv1.NewTokenServiceClient(r.conn),
		admin: tokenauthorityv1.NewAdminServiceClient(r.conn),
		dev:   withKey(r.devKey),
		key:   must(r.app.keys.SigningKey(ctx, DevTenant)),
	}
	if e.key.Algorithm != keys.EdDSA {
		t.Fatalf("dev tenant signs with %s, the cases assume EdDSA", e.key.Algorithm)
	}
	live := e.issue(t, "alice")
	e.live = payloadOf(t, live.GetAccessToken())

	// Keys and URLs an attacker controls. A request to the canary would show that the server
	// follows jku or x5u; 127.0.0.1:1 is closed.
	_, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	attacker := &keys.Key{ID: "attacker-key", Algorithm: keys.EdDSA, Method: jwt.SigningMethodEdDSA, SignKey: attackerPriv}
	attackerJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": attacker.ID, "x": b64url.EncodeToString(attackerPriv.Public().(ed25519.PublicKey))}
	ecPriv := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	attackerES256 := &keys.Key{Method: jwt.SigningMethodES256, SignKey: ecPriv}
	// HS256 keyed with the tenant's public key: what anyone can read from the JWKS.
	confused := &keys.Key{Method: jwt.SigningMethodHS256, SignKey: []byte(e.key.VerifyKey.(ed25519.PublicKey))}
	var fetched atomic.Int32
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fetched.Add(1)
		http.NotFound(w, req)
	}))
	t.Cleanup(canary.Close)
	const closed = "http://127.0.0.1:1/"

	future := time.Now().AddDate(1000, 0, 0).Unix()
	subjectIs := func(want string) func(*testing.T, *tokenauthorityv1.VerifyTokenResponse) {
		return func(t *testing.T, v *tokenauthorityv1.VerifyTokenResponse) {
			if got := v.GetClaims().GetSubject(); got != want {
				t.Errorf("subject %q, want %q", got, want)
			}
		}
	}

	cases := []struct {
		name string
		// verify builds a VerifyToken request (made with the dev key); call makes any other
		// request and returns its error. Exactly one is set.
		verify func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest
		call   func(t *testing.T) error
		want   outcome
	}{
		// The control: the forging helpers make tokens the server accepts, so every inactive answer
		// below is due to what its case changes.
		{name: "control: forged with the tenant key", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims()))
		}, want: isActive(subjectIs("alice"))},

		// Algorithm.
		{name: "alg none, empty signature", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("alg", "none"), e.claims(), nil))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM)},
		{name: "alg None", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("alg", "None"), e.claims(), nil))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM)},
		{name: "alg missing", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("alg", absent), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM)},
		{name: "HS256 keyed with the tenant's Ed25519 public key", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("alg", "HS256"), e.claims(), confused))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM)},
		{name: "ES256 under the EdDSA key's kid", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("alg", "ES256"), e.claims(), attackerES256))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSUPPORTED_ALGORITHM)},

		// kid.
		{name: "unknown kid", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("kid", "AAAAAAAAAAAAAAAA"), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "empty kid", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("kid", ""), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "kid of 500 characters", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("kid", strings.Repeat("k", 500)), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "path-like kid", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("kid", "../../etc/passwd"), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "kid not a string", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("kid", 7), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},

		// Key-locating headers are ignored: a token is judged by the tenant's own keys only. A
		// correctly signed token carrying them is therefore active (nothing is fetched: see the
		// canary check at the end), and one signed by the key they advertise is not.
		{name: "jku to a closed port, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("jku", closed), e.claims()))
		}, want: isActive(nil)},
		{name: "x5u to a closed port, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("x5u", closed), e.claims()))
		}, want: isActive(nil)},
		{name: "jku and x5u to a listening canary, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("jku", canary.URL+"/jwks.json", "x5u", canary.URL+"/cert.pem"), e.claims()))
		}, want: isActive(nil)},
		{name: "jku to a closed port, signed by the attacker", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("jku", closed), e.claims(), attacker))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE)},
		{name: "embedded jwk of the attacker, attacker's kid", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("kid", attacker.ID, "jwk", attackerJWK, "x5u", closed), e.claims(), attacker))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "embedded jwk of the attacker, tenant's kid", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(forge(t, e.header("jwk", attackerJWK), e.claims(), attacker))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE)},
		// RFC 7515 §4.1.11: a JWS whose `crit` lists an extension the recipient does not
		// understand is invalid. The authority writes no `crit`, so any is refused.
		{name: "crit naming an unknown extension, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("crit", []string{"x-must-understand"}, "x-must-understand", true), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},

		// Signature and encoding.
		{name: "tampered header", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			tok := e.signed(t, e.header(), e.claims())
			return e.req(replaceSegment(tok, 0, b64url.EncodeToString(mustJSON(t, e.header("cty", "x")))))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE)},
		{name: "tampered payload", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			tok := e.signed(t, e.header(), e.claims())
			return e.req(replaceSegment(tok, 1, b64url.EncodeToString(mustJSON(t, e.claims("sub", "admin", "scope", "read admin")))))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE)},
		{name: "tampered signature", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(editSignature(t, e.signed(t, e.header(), e.claims()), func(s []byte) []byte { s[10] ^= 0x01; return s }))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE)},
		{name: "truncated signature", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(editSignature(t, e.signed(t, e.header(), e.claims()), func(s []byte) []byte { return s[:32] }))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_BAD_SIGNATURE)},
		// A token has one spelling: non-canonical base64url (set low bits in the last character)
		// and white space (which base64 decoders skip) are malformed, so that no variant string of
		// a valid token exists.
		{name: "signature with non-zero padding bits", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			tok := e.signed(t, e.header(), e.claims())
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			last := strings.IndexByte(alphabet, tok[len(tok)-1])
			return e.req(tok[:len(tok)-1] + string(alphabet[last|0x0f]))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "valid token with a trailing newline", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims()) + "\n")
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "2 segments", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			tok := e.signed(t, e.header(), e.claims())
			return e.req(tok[:strings.LastIndexByte(tok, '.')])
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "4 segments", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims()) + ".e30")
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "non-base64url characters", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			tok := e.signed(t, e.header(), e.claims())
			return e.req(replaceSegment(tok, 1, "eyJzdWIiOiJ+/=!*"+strings.Split(tok, ".")[1]))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "header not JSON", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(sign(t, []byte(`{"alg":"EdDSA","kid":`), mustJSON(t, e.claims()), e.key))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},

		// Duplicate members: encoding/json keeps the last, and the signature covers the bytes, so
		// a correctly signed token with duplicates is judged on its last members. Only a holder of
		// the signing key can make one (the authority never does); a verifier keeping the first
		// member would read a different token, which is why the authority must never write them.
		{name: "duplicate sub, correctly signed: the last wins", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(sign(t, mustJSON(t, e.header()), appendMember(mustJSON(t, e.claims()), `"sub":"mallory"`), e.key))
		}, want: isActive(subjectIs("mallory"))},
		{name: "duplicate exp, the last in the past", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(sign(t, mustJSON(t, e.header()), appendMember(mustJSON(t, e.claims()), `"exp":946684800`), e.key))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_EXPIRED)},

		// Size and depth.
		{name: "nested arrays of depth 2500 within 8 KiB, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			const depth = 2500
			payload := appendMember(mustJSON(t, e.claims()), `"deep":`+strings.Repeat("[", depth)+strings.Repeat("]", depth))
			tok := sign(t, mustJSON(t, e.header()), payload, e.key)
			if len(tok) > token.MaxTokenSize {
				t.Fatalf("token of %d bytes: the case wants one within the limit", len(tok))
			}
			return e.req(tok)
		}, want: isActive(func(t *testing.T, v *tokenauthorityv1.VerifyTokenResponse) {
			if _, ok := v.GetClaims().GetExtra().GetFields()["deep"]; !ok {
				t.Error("the nested claim is missing from the answer")
			}
		})},
		{name: "nested arrays of depth 10000, correctly signed (over 8 KiB)", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			const depth = 10000
			payload := appendMember(mustJSON(t, e.claims()), `"deep":`+strings.Repeat("[", depth)+strings.Repeat("]", depth))
			return e.req(sign(t, mustJSON(t, e.header()), payload, e.key))
		}, want: failsWith(codes.InvalidArgument)},
		{name: "huge claims, correctly signed (over 8 KiB)", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("pad", strings.Repeat("x", 9000))))
		}, want: failsWith(codes.InvalidArgument)},

		// Time claims.
		{name: "exp missing", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("exp", absent)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "exp not a number", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("exp", "tomorrow")))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "exp far in the past", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("exp", 946684800)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_EXPIRED)},
		// A time beyond 2^53 seconds is not one the authority writes: malformed, at the authority
		// as in authn (accesstoken.DecodeMap), where golang-jwt's conversion to int64 overflowed.
		{name: "exp 1e300, beyond int64", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("exp", 1e300)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "fractional exp", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			exp, _ := e.live["exp"].(json.Number).Int64()
			return e.req(e.signed(t, e.header(), e.claims("exp", float64(exp)+0.5)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		// note: the server does not cap exp. Such a token takes the tenant's signing key to make,
		// and it still dies with its session (SESSION_ENDED once the session expires or is ended).
		{name: "exp in year 9999, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("exp", 253402300799)))
		}, want: isActive(func(t *testing.T, v *tokenauthorityv1.VerifyTokenResponse) {
			if y := v.GetClaims().GetExpireTime().AsTime().Year(); y != 9999 {
				t.Errorf("expire time in %d, want 9999", y)
			}
		})},
		{name: "nbf far in the future", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("nbf", future)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_NOT_YET_VALID)},
		{name: "iat far in the future", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("iat", future, "iat_ms", absent)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_NOT_YET_VALID)},
		{name: "iat_ms outside iat's second", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("iat_ms", future*1000)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "iat missing", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("iat", absent)))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},

		// Other claims of the wrong shape.
		{name: "sub not a string", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("sub", map[string]any{"id": "alice"})))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},
		{name: "jti of another session", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			other := store.NewSessionID(DevTenant, "alice")
			return e.req(e.signed(t, e.header(), e.claims("jti", other+".AAAAAAAAAAAAAAAA")))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_MALFORMED)},

		// Token type.
		{name: "typ JWT", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("typ", "JWT"), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_TYPE)},
		{name: "typ missing", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header("typ", absent), e.claims()))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_TYPE)},
		// A refresh token's kid ("rt") names no signing key.
		{name: "refresh token presented to VerifyToken", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.issue(t, "erin").GetRefreshToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "access token presented to RefreshToken", call: func(t *testing.T) error {
			_, err := e.ts.RefreshToken(e.dev, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: e.issue(t, "erin").GetAccessToken()})
			return err
		}, want: failsWith(codes.Unauthenticated)},
		// The refresh token's HMAC still verifies (CR and LF are skipped when decoding), but the
		// store holds the hash of the exact string, so the variant rotates nothing.
		{name: "refresh token with a trailing newline", call: func(t *testing.T) error {
			_, err := e.ts.RefreshToken(e.dev, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: e.keep(e.issue(t, "erin").GetRefreshToken() + "\n")})
			return err
		}, want: failsWith(codes.Unauthenticated)},

		// Tenant, issuer, audience.
		{name: "token of another tenant", verify: func(*testing.T) *tokenauthorityv1.VerifyTokenRequest {
			created := must(e.admin.CreateTenant(withKey(r.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "acme", Issuer: "https://acme.example"}}))
			issuer := must(e.admin.CreateApiKey(withKey(e.keep(created.GetAdminApiKey())), &tokenauthorityv1.CreateApiKeyRequest{Name: "issuer", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE}}))
			pair := must(e.ts.IssueToken(withKey(e.keep(issuer.GetSecret())), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
			e.keep(pair.GetRefreshToken())
			return e.req(pair.GetAccessToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNKNOWN_KEY)},
		{name: "wrong issuer, correctly signed", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(e.signed(t, e.header(), e.claims("iss", "https://acme.example")))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_ISSUER)},
		{name: "audience not in aud", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			req := e.req(e.signed(t, e.header(), e.claims()))
			req.Audience = "billing"
			return req
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_WRONG_AUDIENCE)},

		// Session, revocation, cut-offs, scopes.
		{name: "well-formed session the store does not know", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			sid := store.NewSessionID(DevTenant, "alice")
			return e.req(e.signed(t, e.header(), e.claims("sid", sid, "jti", sid+".AAAAAAAAAAAAAAAA")))
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED)},
		{name: "revoked jti", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			p := e.issue(t, "bob")
			jti, _ := payloadOf(t, p.GetAccessToken())["jti"].(string)
			must(e.ts.RevokeToken(e.dev, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_Jti{Jti: jti}}))
			return e.req(p.GetAccessToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_REVOKED)},
		{name: "ended session", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			p := e.issue(t, "bob")
			must(e.ts.RevokeToken(e.dev, &tokenauthorityv1.RevokeTokenRequest{Target: &tokenauthorityv1.RevokeTokenRequest_SessionId{SessionId: p.GetSessionId()}}))
			return e.req(p.GetAccessToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_SESSION_ENDED)},
		{name: "subject cut-off", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			p := e.issue(t, "carol")
			leaveMillisecond()
			must(e.ts.RevokeSessions(e.dev, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_Subject{Subject: "carol"}}))
			return e.req(p.GetAccessToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF)},
		// A cut-off ends every session created at or before it (store.EndedBy): a session opened in
		// the revocation's own millisecond is ended too. The case writes the cut-off RevokeSessions
		// writes when it runs in that millisecond (the API alone cannot pin that timing).
		{name: "subject cut-off in the session's own millisecond", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			p := e.issue(t, "dave")
			list := must(e.ts.ListSessions(e.dev, &tokenauthorityv1.ListSessionsRequest{Subject: "dave"}))
			if len(list.GetSessions()) != 1 {
				t.Fatalf("sessions of dave: %v", list.GetSessions())
			}
			created := list.GetSessions()[0].GetCreateTime().AsTime()
			if err := r.app.store.SetSubjectCutoff(ctx, DevTenant, "dave", created, time.Hour); err != nil {
				t.Fatal(err)
			}
			return e.req(p.GetAccessToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF)},
		{name: "scope not granted", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			req := e.req(e.signed(t, e.header(), e.claims()))
			req.RequiredScopes = []string{"read", "admin"}
			return req
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_INSUFFICIENT_SCOPE)},

		// Requests refused as a whole.
		{name: "empty token", verify: func(*testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return &tokenauthorityv1.VerifyTokenRequest{}
		}, want: failsWith(codes.InvalidArgument)},
		{name: "token of 8 KiB + 1", verify: func(*testing.T) *tokenauthorityv1.VerifyTokenRequest {
			return e.req(strings.Repeat("a", token.MaxTokenSize-2) + ".b.")
		}, want: failsWith(codes.InvalidArgument)},
		{name: "audience of 300 bytes", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			req := e.req(e.signed(t, e.header(), e.claims()))
			req.Audience = strings.Repeat("a", 300)
			return req
		}, want: failsWith(codes.InvalidArgument)},
		{name: "100 required scopes", verify: func(t *testing.T) *tokenauthorityv1.VerifyTokenRequest {
			req := e.req(e.signed(t, e.header(), e.claims()))
			for i := range 100 {
				req.RequiredScopes = append(req.RequiredScopes, "s"+strings.Repeat("x", i%8))
			}
			return req
		}, want: failsWith(codes.InvalidArgument)},
		{name: "CreateApiKey with unknown role 99", call: func(*testing.T) error {
			_, err := e.admin.CreateApiKey(e.dev, &tokenauthorityv1.CreateApiKeyRequest{Name: "x", Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_VERIFY, tokenauthorityv1.Role(99)}})
			return err
		}, want: failsWith(codes.InvalidArgument)},
		{name: "CreateTenant with unknown algorithm 99", call: func(*testing.T) error {
			_, err := e.admin.CreateTenant(withKey(r.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{TenantId: "evil", Issuer: "x", Algorithm: tokenauthorityv1.SigningAlgorithm(99)}})
			return err
		}, want: failsWith(codes.InvalidArgument)},
		{name: "RevokeSessions with all_in_tenant false", call: func(*testing.T) error {
			_, err := e.ts.RevokeSessions(e.dev, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: false}})
			return err
		}, want: failsWith(codes.InvalidArgument)},

		// Last: it ends every dev session, the control's included.
		{name: "tenant cut-off", verify: func(*testing.T) *tokenauthorityv1.VerifyTokenRequest {
			leaveMillisecond()
			must(e.ts.RevokeSessions(e.dev, &tokenauthorityv1.RevokeSessionsRequest{Scope: &tokenauthorityv1.RevokeSessionsRequest_AllInTenant{AllInTenant: true}}))
			return e.req(live.GetAccessToken())
		}, want: inactive(tokenauthorityv1.InactiveReason_INACTIVE_REASON_CUT_OFF)},
	}
	t.Logf("%d hostile cases", len(cases))

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var v *tokenauthorityv1.VerifyTokenResponse
			var err error
			if tc.call != nil {
				err = tc.call(t)
			} else {
				v, err = e.ts.VerifyToken(e.dev, tc.verify(t))
			}
			if got := status.Code(err); got != tc.want.code {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want.code)
			}
			if tc.want.code != codes.OK || tc.call != nil {
				return
			}
			if v.GetActive() != tc.want.active || v.GetReason() != tc.want.reason {
				t.Fatalf("active=%v reason=%v, want active=%v reason=%v", v.GetActive(), v.GetReason(), tc.want.active, tc.want.reason)
			}
			if !v.GetActive() && v.GetClaims() != nil {
				t.Error("an inactive answer carries claims")
			}
			if tc.want.check != nil {
				tc.want.check(t, v)
			}
		})
	}

	// The server is still up, followed no URL from a header, recovered from no panic, and logged
	// no token or credential.
	if _, err := healthpb.NewHealthClient(r.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health check after the catalogue: %v", err)
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the server fetched a jku or x5u URL %d times", n)
	}
	if strings.Contains(r.logs.String(), "panic in handler") {
		t.Error("a handler panicked")
	}
	assertNoSecretsLogged(t, r, e.secrets...)
}

// field encodes a length-delimited protobuf field.
func field(num int, b []byte) []byte {
	return append(protowire.AppendTag(nil, protowire.Number(num), protowire.BytesType), append(protowire.AppendVarint(nil, uint64(len(b))), b...)...)
}

// TestMalformedRequests: requests that no proto library would marshal (invalid UTF-8 in strings,
// broken wire format) are refused with InvalidArgument, on unary and streaming methods, before or
// after authentication alike; the server keeps serving.
func TestMalformedRequests(t *testing.T) {
	r := start(t, testConfig(t, ""))
	ctx := withKey(r.devKey)
	badUTF8 := []byte("al\xffice")
	extra := field(1, append(field(1, []byte("role")), field(2, field(3, badUTF8))...)) // Struct{fields: {"role": Value{string_value: bad}}}
	cases := []struct {
		name   string
		method string
		body   []byte
		ctx    context.Context
	}{
		{"token with invalid UTF-8", tokenauthorityv1.TokenService_VerifyToken_FullMethodName, field(1, []byte("ey\xc3\x28.x.y")), ctx},
		{"audience with invalid UTF-8", tokenauthorityv1.TokenService_VerifyToken_FullMethodName, append(field(1, []byte("a.b.c")), field(2, badUTF8)...), ctx},
		{"subject with invalid UTF-8", tokenauthorityv1.TokenService_IssueToken_FullMethodName, field(1, badUTF8), ctx},
		{"extra claim with invalid UTF-8", tokenauthorityv1.TokenService_IssueToken_FullMethodName, append(field(1, []byte("alice")), field(4, extra)...), ctx},
		{"refresh token with invalid UTF-8", tokenauthorityv1.TokenService_RefreshToken_FullMethodName, field(1, badUTF8), ctx},
		{"tenant id with invalid UTF-8", tokenauthorityv1.AdminService_GetTenant_FullMethodName, field(1, badUTF8), withKey(r.master)},
		{"truncated field", tokenauthorityv1.TokenService_VerifyToken_FullMethodName, []byte{0x0a, 0x10, 'a'}, ctx},
		{"invalid wire type", tokenauthorityv1.TokenService_VerifyToken_FullMethodName, []byte{0x0f}, ctx},
		{"without credentials", tokenauthorityv1.TokenService_VerifyToken_FullMethodName, field(1, badUTF8), context.Background()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out []byte
			err := r.conn.Invoke(c.ctx, c.method, c.body, &out, grpc.ForceCodecV2(bytesCodec{}))
			wantCode(t, c.name, err, codes.InvalidArgument)
		})
	}
	t.Run("stream", func(t *testing.T) {
		desc := &grpc.StreamDesc{ServerStreams: true}
		cs, err := r.conn.NewStream(ctx, desc, tokenauthorityv1.TokenService_WatchRevocations_FullMethodName, grpc.ForceCodecV2(bytesCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(field(1, badUTF8)); err != nil {
			t.Fatal(err)
		}
		_ = cs.CloseSend()
		var out []byte
		wantCode(t, "cursor with invalid UTF-8", cs.RecvMsg(&out), codes.InvalidArgument)
	})
	// Still serving, and a well-formed request is decoded as before.
	v := must(tokenauthorityv1.NewTokenServiceClient(r.conn).VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: "a.b.c"}))
	if v.GetActive() {
		t.Fatal("a malformed token is active")
	}
}
