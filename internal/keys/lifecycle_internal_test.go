package keys

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// mapStore is a minimal Store. The memory store cannot be used here: it imports token, which
// imports keys.
type mapStore struct {
	mu   sync.Mutex
	recs map[string][]byte
}

func newMapStore() *mapStore { return &mapStore{recs: map[string][]byte{}} }

func (s *mapStore) CreateRecord(_ context.Context, kind, id string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[kind+"/"+id]; ok {
		return fmt.Errorf("create %s record: %w", kind, store.ErrExists)
	}
	s.recs[kind+"/"+id] = bytes.Clone(value)
	return nil
}

func (s *mapStore) PutRecord(_ context.Context, kind, id string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[kind+"/"+id] = bytes.Clone(value)
	return nil
}

func (s *mapStore) GetRecord(_ context.Context, kind, id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.recs[kind+"/"+id]
	if !ok {
		return nil, fmt.Errorf("get %s record: %w", kind, store.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (s *mapStore) SwapRecord(_ context.Context, kind, id string, old, value []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.recs[kind+"/"+id]
	if !ok {
		return false, fmt.Errorf("swap %s record: %w", kind, store.ErrNotFound)
	}
	if !bytes.Equal(cur, old) {
		return false, nil
	}
	s.recs[kind+"/"+id] = bytes.Clone(value)
	return true, nil
}

func (s *mapStore) UpdateRecord(ctx context.Context, kind, id string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	return store.UpdateRecord(ctx, s, kind, id, fn)
}

func (s *mapStore) ListRecords(_ context.Context, kind, prefix string) ([]store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Record
	for k, v := range s.recs {
		if id, ok := strings.CutPrefix(k, kind+"/"); ok && strings.HasPrefix(id, prefix) {
			out = append(out, store.Record{ID: id, Value: bytes.Clone(v)})
		}
	}
	slices.SortFunc(out, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *mapStore) DeleteRecord(_ context.Context, kind, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.recs[kind+"/"+id]
	delete(s.recs, kind+"/"+id)
	return ok, nil
}

// legacyKey and legacyKeyset are the plaintext format of a sealed key set as written before keys
// had lifecycle times.
type legacyKey struct {
	ID        string    `json:"kid"`
	Algorithm Algorithm `json:"alg"`
	Private   []byte    `json:"priv"`
	CreatedAt time.Time `json:"created"`
}

type legacyKeyset struct {
	Keys       []legacyKey `json:"keys"`
	RefreshKey []byte      `json:"rk"`
}

// sealLegacy seals a key set of one key of alg, created at created, in the format written before
// keys had lifecycle times, and returns the key.
func sealLegacy(t *testing.T, m *Manager, tenant string, alg Algorithm, created time.Time) ([]byte, *Key) {
	t.Helper()
	k, err := generate(alg, created)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	priv, ok := k.SignKey.([]byte)
	if !ok {
		if priv, err = x509.MarshalPKCS8PrivateKey(k.SignKey); err != nil {
			t.Fatalf("MarshalPKCS8PrivateKey: %v", err)
		}
	}
	plain, err := json.Marshal(legacyKeyset{
		Keys:       []legacyKey{{ID: k.ID, Algorithm: alg, Private: priv, CreatedAt: created}},
		RefreshKey: bytes.Repeat([]byte{7}, 32),
	})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return sealVersion1(m.kek, tenant, plain), k
}

// sealVersion1 seals plain in the format of before key-encryption key ids (version 1).
func sealVersion1(k *kek, tenant string, plain []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return k.aead.Seal(append([]byte{sealV1}, nonce...), nonce, plain, aad(tenant))
}

// unseal returns the plaintext of a sealed key set.
func unseal(t *testing.T, m *Manager, tenant string, blob []byte) []byte {
	t.Helper()
	if !m.sealedUnderCurrent(blob) {
		t.Fatalf("seal version %d, want %d under the current key-encryption key", blob[0], sealV2)
	}
	plain, _, err := m.openPlain(tenant, blob)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return plain
}

func TestKeySetSealedBeforeLifecycleTimesOpensAndSigns(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now := created.Add(90 * 24 * time.Hour)
	clock := func() time.Time { return now }
	kek := bytes.Repeat([]byte{0xC3}, 32)
	ctx := context.Background()

	for _, alg := range []Algorithm{EdDSA, ES256, RS256, HS256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			s := newMapStore()
			writer, err := NewManager(s, kek, clock)
			if err != nil {
				t.Fatalf("NewManager: %v", err)
			}
			blob, legacy := sealLegacy(t, writer, "acme", alg, created)
			if err := s.PutRecord(ctx, store.KindKeyset, "acme", blob); err != nil {
				t.Fatalf("PutRecord: %v", err)
			}

			m, err := NewManager(s, kek, clock)
			if err != nil {
				t.Fatalf("NewManager: %v", err)
			}
			signer, err := m.SigningKey(ctx, "acme")
			if err != nil {
				t.Fatalf("SigningKey of a set without lifecycle times: %v", err)
			}
			if signer.ID != legacy.ID {
				t.Fatalf("SigningKey = %q, want the set's only key %q", signer.ID, legacy.ID)
			}
			sig, err := signer.Method.Sign("header.payload", signer.SignKey)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			vk, err := m.VerificationKey(ctx, "acme", legacy.ID)
			if err != nil {
				t.Fatalf("VerificationKey: %v", err)
			}
			if err := vk.Method.Verify("header.payload", sig, vk.VerifyKey); err != nil {
				t.Errorf("the key verifies not its own signature: %v", err)
			}

			list, err := m.Keys(ctx, "acme")
			if err != nil {
				t.Fatalf("Keys: %v", err)
			}
			if len(list) != 1 {
				t.Fatalf("Keys has %d keys, want 1", len(list))
			}
			if k := list[0]; !k.PublishedAt.Equal(created) || !k.ActivatesAt.Equal(created) || !k.RetiredAt.IsZero() {
				t.Errorf("Keys = published %v, activates %v, retired %v; want published and active since %v, not retired",
					k.PublishedAt, k.ActivatesAt, k.RetiredAt, created)
			}
			pub, err := m.PublicKeys(ctx, "acme")
			if err != nil {
				t.Fatalf("PublicKeys: %v", err)
			}
			if want := map[bool]int{true: 0, false: 1}[alg == HS256]; len(pub) != want {
				t.Errorf("PublicKeys has %d keys, want %d", len(pub), want)
			}

			// A rotation rewrites the set in the same version, with the times, still readable by
			// the format before them.
			nk, err := m.Rotate(ctx, "acme", "")
			if err != nil {
				t.Fatalf("Rotate: %v", err)
			}
			rec, err := s.GetRecord(ctx, store.KindKeyset, "acme")
			if err != nil {
				t.Fatalf("GetRecord: %v", err)
			}
			plain := unseal(t, m, "acme", rec)
			var old legacyKeyset
			if err := json.Unmarshal(plain, &old); err != nil || len(old.Keys) != 2 {
				t.Fatalf("the rewritten set in the old format: %d keys, %v; want 2 keys", len(old.Keys), err)
			}
			var stored storedKeyset
			if err := json.Unmarshal(plain, &stored); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			byID := map[string]storedKey{}
			for _, sk := range stored.Keys {
				byID[sk.ID] = sk
			}
			if sk := byID[legacy.ID]; !sk.ActivatesAt.Equal(created) || !sk.RetiredAt.Equal(now) {
				t.Errorf("stored old key: activates %v, retired %v; want %v, %v", sk.ActivatesAt, sk.RetiredAt, created, now)
			}
			if sk := byID[nk.ID]; !sk.PublishedAt.Equal(now) || !sk.ActivatesAt.Equal(now) || !sk.RetiredAt.IsZero() {
				t.Errorf("stored new key: published %v, activates %v, retired %v; want %v, %v, zero",
					sk.PublishedAt, sk.ActivatesAt, sk.RetiredAt, now, now)
			}
			if bytes.Count(plain, []byte(`"retired"`)) != 1 {
				t.Errorf("the stored set has %d retirement times, want 1 (a zero time is left out)",
					bytes.Count(plain, []byte(`"retired"`)))
			}
		})
	}
}

// TestConcurrentRotationsGenerateOneKeyAtATime: RSA rotations of one replica take turns to
// generate their keys, whatever the tenant, and a rotation refused for a full set generates none.
func TestConcurrentRotationsGenerateOneKeyAtATime(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	m, err := NewManager(newMapStore(), bytes.Repeat([]byte{0xA1}, 32), func() time.Time { return now })
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	var mu sync.Mutex
	inFlight, most, calls := 0, 0, 0
	m.newKey = func(alg Algorithm, at time.Time) (*Key, error) {
		mu.Lock()
		inFlight++
		calls++
		most = max(most, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		return generate(alg, at)
	}
	tenants := []string{"acme", "globex"}
	for _, tn := range tenants {
		if err := m.Ensure(ctx, tn, RS256); err != nil {
			t.Fatalf("Ensure: %v", err)
		}
	}
	const perTenant = 4
	var wg sync.WaitGroup
	errs := make(chan error, perTenant*len(tenants))
	for _, tn := range tenants {
		for range perTenant {
			wg.Go(func() {
				_, err := m.Rotate(ctx, tn, "")
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Rotate: %v", err)
		}
	}
	if most != 1 {
		t.Errorf("%d RSA keys were generated at once, want one at a time", most)
	}

	// Fill acme's set; a refused rotation generates nothing.
	for range MaxKeys - 1 - perTenant {
		if _, err := m.Rotate(ctx, "acme", ""); err != nil {
			t.Fatalf("Rotate: %v", err)
		}
	}
	before := calls
	if _, err := m.Rotate(ctx, "acme", ""); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("Rotate of a full set: %v, want ErrTooManyKeys", err)
	}
	if calls != before {
		t.Errorf("a refused rotation generated %d keys", calls-before)
	}
}

// TestKeySetSealedBeforeKEKIDsOpensUnderAnyConfiguredKey: a version 1 record (no key id) opens
// under the current key or a previous one, Reseal moves it to version 2 under the current key,
// and a replica none of whose keys opens it says so.
func TestKeySetSealedBeforeKEKIDsOpensUnderAnyConfiguredKey(t *testing.T) {
	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }
	kekA, kekB, kekC := bytes.Repeat([]byte{0xA1}, 32), bytes.Repeat([]byte{0xB2}, 32), bytes.Repeat([]byte{0xC3}, 32)
	s := newMapStore()
	a, err := NewManager(s, kekA, now)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	blob, k := sealLegacy(t, a, "acme", EdDSA, now())
	if err := s.CreateRecord(ctx, store.KindKeyset, "acme", blob); err != nil {
		t.Fatalf("CreateRecord: %v", err)
	}
	for name, m := range map[string]*Manager{"current": a, "previous": mustManager(t, s, kekB, now, kekA)} {
		if err := m.Check(ctx, s); err != nil {
			t.Errorf("Check with A as the %s key: %v", name, err)
		}
	}
	c := mustManager(t, s, kekC, now)
	if err := c.Check(ctx, s); !errors.Is(err, ErrWrongKEK) || !strings.Contains(err.Error(), "before records named") {
		t.Errorf("Check with C alone = %v; want ErrWrongKEK saying the record names no key", err)
	}
	// Even the current key's version 1 records are moved, so that every record names its key.
	st, err := a.Reseal(ctx, s)
	if err != nil || st != (SealStats{Current: 1, Resealed: 1}) {
		t.Fatalf("Reseal = %+v, %v; want the version 1 record resealed", st, err)
	}
	rec, _ := s.GetRecord(ctx, store.KindKeyset, "acme")
	if !a.sealedUnderCurrent(rec) {
		t.Errorf("after Reseal the record has format %d, want 2 under A", rec[0])
	}
	if got, err := a.SigningKey(ctx, "acme"); err != nil || got.ID != k.ID {
		t.Errorf("SigningKey after Reseal = %v, %v; want %q", got, err, k.ID)
	}
}

func mustManager(t *testing.T, s Store, kek []byte, now func() time.Time, previous ...[]byte) *Manager {
	t.Helper()
	m, err := NewManager(s, kek, now, WithPreviousKEKs(previous...))
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}
