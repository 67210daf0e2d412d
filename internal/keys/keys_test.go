package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

	kekA = bytes.Repeat([]byte{0xA1}, 32)
	kekB = bytes.Repeat([]byte{0xB2}, 32)

	allAlgorithms = []keys.Algorithm{keys.EdDSA, keys.ES256, keys.RS256, keys.HS256}
)

const message = "header.payload"

// env is a manager over a fresh memory store, reading the time from an injected clock.
type env struct {
	ctx   context.Context
	clock *storetest.Clock
	store *memory.Store
	m     *keys.Manager
	// opts configure m, and the replicas that replica returns.
	opts []keys.Option
}

func newEnv(t testing.TB) *env {
	t.Helper()
	clock := storetest.NewClock(t0)
	s := memory.New(clock.Now)
	return &env{ctx: context.Background(), clock: clock, store: s, m: newManager(t, s, kekA, clock.Now)}
}

func newManager(t testing.TB, s keys.Store, kek []byte, now func() time.Time) *keys.Manager {
	t.Helper()
	m, err := keys.NewManager(s, kek, now)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// manager returns another manager over e's store, as a second replica would have.
func (e *env) manager(t testing.TB, kek []byte) *keys.Manager {
	t.Helper()
	return newManager(t, e.store, kek, e.clock.Now)
}

func (e *env) ensure(t testing.TB, tenant string, alg keys.Algorithm) {
	t.Helper()
	if err := e.m.Ensure(e.ctx, tenant, alg); err != nil {
		t.Fatalf("Ensure(%q, %s): %v", tenant, alg, err)
	}
}

func (e *env) signingKey(t testing.TB, m *keys.Manager, tenant string) *keys.Key {
	t.Helper()
	k, err := m.SigningKey(e.ctx, tenant)
	if err != nil {
		t.Fatalf("SigningKey(%q): %v", tenant, err)
	}
	return k
}

func (e *env) record(t testing.TB, tenant string) []byte {
	t.Helper()
	rec, err := e.store.GetRecord(e.ctx, store.KindKeyset, tenant)
	if err != nil {
		t.Fatalf("GetRecord(keyset, %q): %v", tenant, err)
	}
	return rec
}

func sign(t testing.TB, k *keys.Key) []byte {
	t.Helper()
	sig, err := k.Method.Sign(message, k.SignKey)
	if err != nil {
		t.Fatalf("sign with %s key %s: %v", k.Algorithm, k.ID, err)
	}
	return sig
}

func TestNewManagerRejectsKEKOfWrongSize(t *testing.T) {
	for _, n := range []int{0, 31, 33} {
		if _, err := keys.NewManager(memory.New(nil), make([]byte, n), time.Now); err == nil {
			t.Errorf("NewManager with a %d-byte key-encryption key succeeded", n)
		}
	}
}

// TestNewManagerRejectsAES128And192KEK shows that NewManager takes any AES key size although the
// package promises AES-256-GCM and NewManager documents a 32-byte key. Production is protected by
// config, which insists on 32 bytes; other callers are not.
func TestNewManagerRejectsAES128And192KEK(t *testing.T) {
	for _, n := range []int{16, 24} {
		if _, err := keys.NewManager(memory.New(nil), make([]byte, n), time.Now); err == nil {
			t.Errorf("NewManager with a %d-byte key-encryption key succeeded, want an error", n)
		}
	}
}

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in     string
		want   keys.Algorithm
		wantOK bool
	}{
		{"EdDSA", keys.EdDSA, true},
		{"ES256", keys.ES256, true},
		{"RS256", keys.RS256, true},
		{"HS256", keys.HS256, true},
		{"", "", false},
		{"none", "", false},
		{"eddsa", "", false},
		{"HS512", "", false},
	}
	for _, tt := range tests {
		got, ok := accesstoken.ParseAlgorithm(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseAlgorithm(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestManagerSigningKeySignsWhatVerificationKeyVerifies(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", alg)

			sk := e.signingKey(t, e.m, "acme")
			if sk.ID == "" || sk.Algorithm != alg || sk.Method.Alg() != string(alg) {
				t.Fatalf("SigningKey = {ID:%q Algorithm:%s Method:%s}, want a %s key with an id",
					sk.ID, sk.Algorithm, sk.Method.Alg(), alg)
			}
			if !sk.CreatedAt.Equal(t0) {
				t.Errorf("SigningKey.CreatedAt = %v, want the clock's %v", sk.CreatedAt, t0)
			}
			sig := sign(t, sk)

			vk, err := e.m.VerificationKey(e.ctx, "acme", sk.ID)
			if err != nil {
				t.Fatalf("VerificationKey(%q): %v", sk.ID, err)
			}
			if err := vk.Method.Verify(message, sig, vk.VerifyKey); err != nil {
				t.Errorf("the verification key rejects the signing key's signature: %v", err)
			}
			if err := vk.Method.Verify(message+"x", sig, vk.VerifyKey); err == nil {
				t.Error("the verification key accepts the signature over another message")
			}
		})
	}
}

func TestManagerVerificationKeyOfUnknownKidIsErrUnknownKey(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", alg)
			// The first lookup answers from the cache; the second, past the reload interval,
			// re-reads the store before answering.
			for _, advance := range []time.Duration{0, time.Minute} {
				e.clock.Advance(advance)
				k, err := e.m.VerificationKey(e.ctx, "acme", "no-such-kid")
				if !errors.Is(err, keys.ErrUnknownKey) {
					t.Errorf("after %v: VerificationKey of an unknown kid = %v, %v; want ErrUnknownKey", advance, k, err)
				}
			}
		})
	}
}

func TestManagerVerificationKeyRereadsStoreForUnknownKid(t *testing.T) {
	e := newEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	old := e.signingKey(t, e.m, "acme")

	// Another replica replaces the tenant's key set (same tenant, same KEK).
	other := newEnv(t)
	other.ensure(t, "acme", keys.EdDSA)
	replacement := other.signingKey(t, other.m, "acme")
	if err := e.store.PutRecord(e.ctx, store.KindKeyset, "acme", other.record(t, "acme")); err != nil {
		t.Fatalf("PutRecord: %v", err)
	}

	if _, err := e.m.VerificationKey(e.ctx, "acme", replacement.ID); !errors.Is(err, keys.ErrUnknownKey) {
		t.Errorf("VerificationKey of the new kid at once = %v, want ErrUnknownKey from the cached set", err)
	}
	e.clock.Advance(time.Minute)
	k, err := e.m.VerificationKey(e.ctx, "acme", replacement.ID)
	if err != nil || k.ID != replacement.ID {
		t.Fatalf("VerificationKey of the new kid after a minute = %v, %v; want the re-read key", k, err)
	}
	if got := e.signingKey(t, e.m, "acme"); got.ID != replacement.ID {
		t.Errorf("SigningKey after the re-read = %q, want %q (not the replaced %q)", got.ID, replacement.ID, old.ID)
	}
}

func TestManagerConcurrentEnsureAgreesOnOneKeySet(t *testing.T) {
	e := newEnv(t)
	const replicas = 8
	ms := make([]*keys.Manager, replicas)
	for i := range ms {
		ms[i] = e.manager(t, kekA)
	}
	errs := make(chan error, replicas)
	for _, m := range ms {
		go func() { errs <- m.Ensure(e.ctx, "acme", keys.EdDSA) }()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Ensure: %v", err)
		}
	}
	want := e.signingKey(t, ms[0], "acme").ID
	for i, m := range ms[1:] {
		if got := e.signingKey(t, m, "acme").ID; got != want {
			t.Errorf("replica %d signs with %q, replica 0 with %q", i+1, got, want)
		}
	}
}

func TestManagerRefreshKeyIs32BytesAndPerTenant(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var got [][]byte
			for _, tenant := range []string{"acme", "globex"} {
				e.ensure(t, tenant, alg)
				rk, err := currentRefreshKey(e.ctx, e.m, tenant)
				if err != nil {
					t.Fatalf("RefreshKey(%q): %v", tenant, err)
				}
				if len(rk) != 32 {
					t.Errorf("RefreshKey(%q) has %d bytes, want 32", tenant, len(rk))
				}
				got = append(got, rk)
			}
			if bytes.Equal(got[0], got[1]) {
				t.Error("two tenants share a refresh key")
			}
		})
	}
}

func TestManagerEnsureIsIdempotent(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", alg)
			first := e.signingKey(t, e.m, "acme")
			rec := e.record(t, "acme")

			e.ensure(t, "acme", alg)
			// Another replica's Ensure, even with another algorithm, keeps the stored set.
			if err := e.manager(t, kekA).Ensure(e.ctx, "acme", keys.EdDSA); err != nil {
				t.Fatalf("Ensure on a second manager: %v", err)
			}
			if second := e.signingKey(t, e.m, "acme"); second.ID != first.ID {
				t.Errorf("signing kid after a second Ensure = %q, want %q", second.ID, first.ID)
			}
			if !bytes.Equal(e.record(t, "acme"), rec) {
				t.Error("a second Ensure rewrote the stored key set")
			}
		})
	}
}

func TestManagerSigningKeyOfTenantWithoutKeysIsErrNoKeys(t *testing.T) {
	e := newEnv(t)
	if _, err := e.m.SigningKey(e.ctx, "acme"); !errors.Is(err, keys.ErrNoKeys) {
		t.Errorf("SigningKey of a tenant without keys: %v, want ErrNoKeys", err)
	}
}

func TestManagerEnsureRejectsUnsupportedAlgorithm(t *testing.T) {
	e := newEnv(t)
	if err := e.m.Ensure(e.ctx, "acme", "none"); err == nil {
		t.Fatal(`Ensure with algorithm "none" succeeded`)
	}
	if _, err := e.store.GetRecord(e.ctx, store.KindKeyset, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a failed Ensure, GetRecord = %v, want ErrNotFound", err)
	}
}

func TestManagerWithSameKEKLoadsStoredKeys(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", alg)
			first := e.signingKey(t, e.m, "acme")
			sig := sign(t, first)
			rk1, err := currentRefreshKey(e.ctx, e.m, "acme")
			if err != nil {
				t.Fatalf("RefreshKey: %v", err)
			}

			m2 := e.manager(t, kekA)
			if err := m2.Check(e.ctx, e.store); err != nil {
				t.Fatalf("Check with the same KEK: %v", err)
			}
			if second := e.signingKey(t, m2, "acme"); second.ID != first.ID || second.Algorithm != alg {
				t.Errorf("second manager's signing key = %q (%s), want %q (%s)", second.ID, second.Algorithm, first.ID, alg)
			}
			vk, err := m2.VerificationKey(e.ctx, "acme", first.ID)
			if err != nil {
				t.Fatalf("second manager's VerificationKey(%q): %v", first.ID, err)
			}
			if err := vk.Method.Verify(message, sig, vk.VerifyKey); err != nil {
				t.Errorf("second manager rejects the first manager's signature: %v", err)
			}
			rk2, err := currentRefreshKey(e.ctx, m2, "acme")
			if err != nil {
				t.Fatalf("second manager's RefreshKey: %v", err)
			}
			if !bytes.Equal(rk1, rk2) {
				t.Error("second manager's refresh key differs from the first's")
			}
		})
	}
}

func TestManagerWithWrongKEKReportsErrWrongKEK(t *testing.T) {
	e := newEnv(t)
	e.ensure(t, "acme", keys.EdDSA)
	kid := e.signingKey(t, e.m, "acme").ID

	tests := []struct {
		name string
		call func(m *keys.Manager) error
	}{
		{"Check", func(m *keys.Manager) error { return m.Check(e.ctx, e.store) }},
		{"SigningKey", func(m *keys.Manager) error { _, err := m.SigningKey(e.ctx, "acme"); return err }},
		{"VerificationKey", func(m *keys.Manager) error { _, err := m.VerificationKey(e.ctx, "acme", kid); return err }},
		{"RefreshKey", func(m *keys.Manager) error { _, err := currentRefreshKey(e.ctx, m, "acme"); return err }},
		{"PublicKeys", func(m *keys.Manager) error { _, err := m.PublicKeys(e.ctx, "acme"); return err }},
		{"Ensure", func(m *keys.Manager) error { return m.Ensure(e.ctx, "acme", keys.EdDSA) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(e.manager(t, kekB)); !errors.Is(err, keys.ErrWrongKEK) {
				t.Errorf("%s with another KEK: %v, want ErrWrongKEK", tt.name, err)
			}
		})
	}
	if _, err := e.m.SigningKey(e.ctx, "acme"); err != nil {
		t.Errorf("the right KEK no longer opens the key set after the failed attempts: %v", err)
	}
}

// encodings returns the forms in which secret could appear in a record: raw, and as JSON encodes
// bytes (standard base64) or as JOSE does (base64url).
func encodings(secret []byte) map[string][]byte {
	return map[string][]byte{
		"raw":       secret,
		"base64":    []byte(base64.StdEncoding.EncodeToString(secret)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
	}
}

func TestManagerStoredRecordIsSealed(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", alg)
			sk := e.signingKey(t, e.m, "acme")
			rk, err := currentRefreshKey(e.ctx, e.m, "acme")
			if err != nil {
				t.Fatalf("RefreshKey: %v", err)
			}
			var private []byte
			if alg == keys.HS256 {
				private = sk.SignKey.([]byte)
			} else if private, err = x509.MarshalPKCS8PrivateKey(sk.SignKey); err != nil {
				t.Fatalf("MarshalPKCS8PrivateKey: %v", err)
			}

			rec := e.record(t, "acme")
			secrets := map[string][]byte{"private key": private, "refresh key": rk}
			for what, secret := range secrets {
				for enc, b := range encodings(secret) {
					if bytes.Contains(rec, b) {
						t.Errorf("the stored record contains the %s (%s)", what, enc)
					}
				}
			}
			for _, plain := range []string{sk.ID, `"priv"`, `"rk"`, `"keys"`} {
				if bytes.Contains(rec, []byte(plain)) {
					t.Errorf("the stored record contains %q in the clear", plain)
				}
			}
		})
	}
}

func TestManagerRecordCopiedToAnotherTenantDoesNotOpen(t *testing.T) {
	e := newEnv(t)
	e.ensure(t, "a", keys.EdDSA)
	if err := e.store.PutRecord(e.ctx, store.KindKeyset, "b", e.record(t, "a")); err != nil {
		t.Fatalf("PutRecord: %v", err)
	}

	if err := e.manager(t, kekA).Check(e.ctx, e.store); !errors.Is(err, keys.ErrWrongKEK) {
		t.Errorf("Check with a record of tenant a stored as b: %v, want ErrWrongKEK", err)
	}
	m := e.manager(t, kekA)
	if k, err := m.SigningKey(e.ctx, "b"); !errors.Is(err, keys.ErrWrongKEK) {
		t.Errorf("SigningKey(b) from a copy of a's record = %v, %v; want ErrWrongKEK", k, err)
	}
	if _, err := m.SigningKey(e.ctx, "a"); err != nil {
		t.Errorf("SigningKey(a) from its own record: %v", err)
	}
}

func TestManagerPublicKeysOmitsHS256(t *testing.T) {
	for _, alg := range allAlgorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", alg)
			pub, err := e.m.PublicKeys(e.ctx, "acme")
			if err != nil {
				t.Fatalf("PublicKeys: %v", err)
			}
			want := 1
			if alg == keys.HS256 {
				want = 0
			}
			if len(pub) != want {
				t.Errorf("PublicKeys of a %s tenant has %d keys, want %d", alg, len(pub), want)
			}
		})
	}
}

func TestPublicJWK(t *testing.T) {
	b64 := base64.RawURLEncoding
	tests := []struct {
		alg    keys.Algorithm
		wantOK bool
		check  func(t *testing.T, k *keys.Key, j keys.JWK)
	}{
		{keys.EdDSA, true, func(t *testing.T, k *keys.Key, j keys.JWK) {
			if j.Kty != "OKP" || j.Crv != "Ed25519" {
				t.Errorf("kty, crv = %q, %q; want OKP, Ed25519", j.Kty, j.Crv)
			}
			x, err := b64.DecodeString(j.X)
			if err != nil || !bytes.Equal(x, k.VerifyKey.(ed25519.PublicKey)) {
				t.Errorf("x = %q (%v), want the base64url of the public key", j.X, err)
			}
			if j.Y != "" || j.N != "" || j.E != "" {
				t.Errorf("OKP key has y, n or e: %+v", j)
			}
		}},
		{keys.ES256, true, func(t *testing.T, k *keys.Key, j keys.JWK) {
			if j.Kty != "EC" || j.Crv != "P-256" {
				t.Errorf("kty, crv = %q, %q; want EC, P-256", j.Kty, j.Crv)
			}
			x, errX := b64.DecodeString(j.X)
			y, errY := b64.DecodeString(j.Y)
			if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
				t.Fatalf("x, y = %q, %q; want 32 bytes each in base64url", j.X, j.Y)
			}
			point := append(append([]byte{4}, x...), y...)
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
			if err != nil {
				t.Fatalf("x, y are not a P-256 point: %v", err)
			}
			if !pub.Equal(k.VerifyKey) {
				t.Error("x, y are not the verification key")
			}
			if j.N != "" || j.E != "" {
				t.Errorf("EC key has n or e: %+v", j)
			}
		}},
		{keys.RS256, true, func(t *testing.T, k *keys.Key, j keys.JWK) {
			if j.Kty != "RSA" {
				t.Errorf("kty = %q, want RSA", j.Kty)
			}
			n, errN := b64.DecodeString(j.N)
			e, errE := b64.DecodeString(j.E)
			if errN != nil || errE != nil {
				t.Fatalf("n, e = %q, %q; want base64url", j.N, j.E)
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if !pub.Equal(k.VerifyKey) {
				t.Error("n, e are not the verification key")
			}
			if j.E != "AQAB" {
				t.Errorf("e = %q, want AQAB (65537)", j.E)
			}
			if j.Crv != "" || j.X != "" || j.Y != "" {
				t.Errorf("RSA key has crv, x or y: %+v", j)
			}
		}},
		{keys.HS256, false, func(t *testing.T, _ *keys.Key, j keys.JWK) {
			if j != (keys.JWK{}) {
				t.Errorf("JWK of an HS256 key = %+v, want the zero JWK", j)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.ensure(t, "acme", tt.alg)
			k := e.signingKey(t, e.m, "acme")
			j, ok := keys.PublicJWK(k)
			if ok != tt.wantOK {
				t.Fatalf("PublicJWK ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && (j.Kid != k.ID || j.Use != "sig" || j.Alg != string(tt.alg)) {
				t.Errorf("kid, use, alg = %q, %q, %q; want %q, sig, %s", j.Kid, j.Use, j.Alg, k.ID, tt.alg)
			}
			tt.check(t, k, j)
		})
	}
}

func TestToJWKSSkipsHS256Keys(t *testing.T) {
	e := newEnv(t)
	var ks []*keys.Key
	var wantKids []string
	for i, alg := range allAlgorithms {
		tenant := "t" + string(rune('0'+i))
		e.ensure(t, tenant, alg)
		k := e.signingKey(t, e.m, tenant)
		ks = append(ks, k)
		if alg != keys.HS256 {
			wantKids = append(wantKids, k.ID)
		}
	}
	got := keys.ToJWKS(ks)
	var kids []string
	for _, j := range got.Keys {
		kids = append(kids, j.Kid)
		if j.Alg == string(keys.HS256) {
			t.Errorf("JWKS publishes HS256 key %q", j.Kid)
		}
	}
	if len(kids) != len(wantKids) {
		t.Fatalf("JWKS kids = %q, want %q", kids, wantKids)
	}
	for i := range kids {
		if kids[i] != wantKids[i] {
			t.Errorf("JWKS kids = %q, want %q", kids, wantKids)
			break
		}
	}
}

func TestToJWKSOfNoKeysIsEmptyArray(t *testing.T) {
	hs := &keys.Key{ID: "h", Algorithm: keys.HS256, Method: keys.HS256.Method(), SignKey: []byte("s"), VerifyKey: []byte("s")}
	for _, in := range [][]*keys.Key{nil, {hs}} {
		b, err := json.Marshal(keys.ToJWKS(in))
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if string(b) != `{"keys":[]}` {
			t.Errorf("JWKS of %d keys without a public half = %s, want {\"keys\":[]}", len(in), b)
		}
	}
}

func TestToJWKSGolden(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	k := &keys.Key{
		ID:        "test-kid",
		Algorithm: keys.EdDSA,
		Method:    keys.EdDSA.Method(),
		SignKey:   priv,
		VerifyKey: priv.Public(),
		CreatedAt: t0,
	}
	got, err := json.MarshalIndent(keys.ToJWKS([]*keys.Key{k}), "", "  ")
	if err != nil {
		t.Fatalf("MarshalIndent: %v", err)
	}
	got = append(got, '\n')

	golden := filepath.Join("testdata", "jwks.golden.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("JWKS differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// FuzzOpen stores arbitrary bytes as a tenant's key set and checks that opening them never panics
// and only succeeds for the one record that seal produced for that tenant under this KEK.
func FuzzOpen(f *testing.F) {
	const tenant = "fuzz"
	ctx := context.Background()
	// A fresh KEK per process: records sealed by another process (cached corpus entries, the
	// coordinator's seeds) must not open, so the only record that may is the one sealed below.
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	clock := storetest.NewClock(t0)
	s := memory.New(clock.Now)
	m := newManager(f, s, kek, clock.Now)
	for _, id := range []string{tenant, "other"} {
		if err := m.Ensure(ctx, id, keys.EdDSA); err != nil {
			f.Fatalf("Ensure(%q): %v", id, err)
		}
	}
	get := func(id string) []byte {
		rec, err := s.GetRecord(ctx, store.KindKeyset, id)
		if err != nil {
			f.Fatalf("GetRecord(%q): %v", id, err)
		}
		return rec
	}
	sealed, other := get(tenant), get("other")
	signer, err := m.SigningKey(ctx, tenant)
	if err != nil {
		f.Fatalf("SigningKey: %v", err)
	}

	mutate := func(fn func(b []byte) []byte) []byte { return fn(bytes.Clone(sealed)) }
	f.Add(sealed)
	f.Add(other) // sealed, but for another tenant
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(sealed[:1+12])                                                   // version and nonce only
	f.Add(sealed[:len(sealed)-1])                                          // tag cut short
	f.Add(append(bytes.Clone(sealed), 0))                                  // trailing byte
	f.Add(mutate(func(b []byte) []byte { b[0] = 2; return b }))            // unknown version
	f.Add(mutate(func(b []byte) []byte { b[5] ^= 1; return b }))           // nonce
	f.Add(mutate(func(b []byte) []byte { b[len(b)/2] ^= 0x80; return b })) // ciphertext
	f.Add(mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }))    // tag

	f.Fuzz(func(t *testing.T, data []byte) {
		fs := memory.New(clock.Now)
		if err := fs.PutRecord(ctx, store.KindKeyset, tenant, data); err != nil {
			t.Fatalf("PutRecord: %v", err)
		}
		checkErr := newManager(t, fs, kek, clock.Now).Check(ctx, fs)
		k, signErr := newManager(t, fs, kek, clock.Now).SigningKey(ctx, tenant)

		if bytes.Equal(data, sealed) {
			if checkErr != nil || signErr != nil {
				t.Fatalf("the sealed record does not open: Check: %v; SigningKey: %v", checkErr, signErr)
			}
			if k.ID != signer.ID {
				t.Fatalf("the sealed record opens to kid %q, want %q", k.ID, signer.ID)
			}
			return
		}
		if checkErr == nil {
			t.Fatalf("Check accepted %d bytes that seal did not produce", len(data))
		}
		if signErr == nil {
			t.Fatalf("SigningKey accepted %d bytes that seal did not produce: kid %q", len(data), k.ID)
		}
	})
}

// currentRefreshKey returns the secret of the tenant's refresh-token key that signs.
func currentRefreshKey(ctx context.Context, m *keys.Manager, tenant string) ([]byte, error) {
	rks, err := m.RefreshKeys(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return rks[len(rks)-1].Secret, nil
}
