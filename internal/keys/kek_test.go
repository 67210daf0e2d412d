package keys_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
)

var kekC = bytes.Repeat([]byte{0xC3}, 32)

// ringManager returns a manager over s with current key cur and previous keys prev.
func ringManager(t testing.TB, e *env, s keys.Store, cur []byte, prev ...[]byte) *keys.Manager {
	t.Helper()
	m, err := keys.NewManager(s, cur, e.clock.Now, keys.WithPreviousKEKs(prev...))
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

// sealedUnder returns the id of the key-encryption key that a stored key set names.
func sealedUnder(t testing.TB, e *env, tenant string) string {
	t.Helper()
	rec := e.record(t, tenant)
	if len(rec) < 9 || rec[0] != 2 {
		t.Fatalf("key set of %q: format %d, want 2", tenant, rec[0])
	}
	return hex.EncodeToString(rec[1:9])
}

// noKeyMaterial fails if s holds any of the keys, raw, in hex or in base64.
func noKeyMaterial(t testing.TB, what, s string, kks ...[]byte) {
	t.Helper()
	for _, k := range kks {
		for _, form := range []string{string(k), hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k)} {
			if strings.Contains(s, form) {
				t.Errorf("%s holds a key-encryption key: %q", what, s)
			}
		}
	}
}

func TestKEKID(t *testing.T) {
	a, b := keys.KEKID(kekA), keys.KEKID(kekB)
	if len(a) != 16 || a == b || a != keys.KEKID(bytes.Clone(kekA)) {
		t.Errorf("KEKID = %q and %q; want 16 hex digits, stable, distinct per key", a, b)
	}
	noKeyMaterial(t, "KEKID", a, kekA)
}

func TestNewManagerRejectsBadPreviousKEKs(t *testing.T) {
	tests := []struct {
		name string
		prev [][]byte
		want string
	}{
		{"Short", [][]byte{make([]byte, 16)}, "#1: 16 bytes, want 32"},
		{"Current", [][]byte{kekB, kekA}, "#2 is the current key"},
		{"Duplicate", [][]byte{kekB, kekC, bytes.Clone(kekB)}, "#3 is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keys.NewManager(memory.New(nil), kekA, nil, keys.WithPreviousKEKs(tt.prev...))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewManager = %v, want an error with %q", err, tt.want)
			}
			noKeyMaterial(t, "the error", err.Error(), kekA, kekB, kekC)
		})
	}
	m, err := keys.NewManager(memory.New(nil), kekA, nil, keys.WithPreviousKEKs(kekB, kekC))
	if err != nil || !m.HasPreviousKEKs() || m.CurrentKEKID() != keys.KEKID(kekA) {
		t.Errorf("NewManager with two previous keys = %v; want a ring with current %s", err, keys.KEKID(kekA))
	}
}

// TestKEKRotation follows a rotation of the key-encryption key from A to B: sets sealed under A
// open on a replica with B and previous A, which reseals them under B with their content
// unchanged; a replica with A alone then cannot open them and says which key they need.
func TestKEKRotation(t *testing.T) {
	e := newEnv(t)
	tenants := []string{"acme", "globex", "initech"}
	signers := map[string]string{}
	for _, tn := range tenants {
		e.ensure(t, tn, keys.EdDSA)
		signers[tn] = e.signingKey(t, e.m, tn).ID
		if got := sealedUnder(t, e, tn); got != keys.KEKID(kekA) {
			t.Fatalf("%s sealed under %s, want A %s", tn, got, keys.KEKID(kekA))
		}
	}
	if st, ok := e.m.SealedRecords(); ok {
		t.Errorf("SealedRecords before any Check or Reseal = %+v, true; want false", st)
	}

	m := ringManager(t, e, e.store, kekB, kekA)
	if err := m.Check(e.ctx, e.store); err != nil {
		t.Fatalf("Check with previous key A: %v", err)
	}
	if st, _ := m.SealedRecords(); st != (keys.SealStats{Previous: 3}) {
		t.Errorf("SealedRecords after Check = %+v, want 3 under the previous key", st)
	}
	st, err := m.Reseal(e.ctx, e.store)
	if err != nil || st != (keys.SealStats{Current: 3, Resealed: 3}) {
		t.Fatalf("Reseal = %+v, %v; want 3 resealed, 3 current", st, err)
	}
	if got, _ := m.SealedRecords(); got != st {
		t.Errorf("SealedRecords = %+v, want the pass's %+v", got, st)
	}
	before := map[string][]byte{}
	for _, tn := range tenants {
		if got := sealedUnder(t, e, tn); got != keys.KEKID(kekB) {
			t.Errorf("%s sealed under %s after Reseal, want B %s", tn, got, keys.KEKID(kekB))
		}
		before[tn] = e.record(t, tn)
		// The content is unchanged: a replica with B alone signs with the same key.
		if got := e.signingKey(t, e.manager(t, kekB), tn).ID; got != signers[tn] {
			t.Errorf("%s signs with %q after Reseal, want %q", tn, got, signers[tn])
		}
	}
	// Another pass, here or on another replica, writes nothing.
	for _, r := range []*keys.Manager{m, ringManager(t, e, e.store, kekB, kekA)} {
		if st, err := r.Reseal(e.ctx, e.store); err != nil || st != (keys.SealStats{Current: 3}) {
			t.Errorf("second Reseal = %+v, %v; want 3 current, none resealed", st, err)
		}
	}
	for _, tn := range tenants {
		if !bytes.Equal(e.record(t, tn), before[tn]) {
			t.Errorf("a Reseal with nothing to do rewrote %s", tn)
		}
	}

	// A replica still on A alone: start-up fails naming B's id; its passes count the sets as
	// unknown and change nothing.
	old := e.manager(t, kekA)
	err = old.Check(e.ctx, e.store)
	if !errors.Is(err, keys.ErrWrongKEK) || !strings.Contains(err.Error(), keys.KEKID(kekB)) {
		t.Errorf("Check with A alone = %v; want ErrWrongKEK naming key %s", err, keys.KEKID(kekB))
	}
	st, err = old.Reseal(e.ctx, e.store)
	if !errors.Is(err, keys.ErrWrongKEK) || st != (keys.SealStats{Unknown: 3}) {
		t.Errorf("Reseal with A alone = %+v, %v; want 3 unknown and ErrWrongKEK", st, err)
	}
	noKeyMaterial(t, "the error", err.Error(), kekA, kekB)
	// With A and C, neither of which sealed them, the message names B as well.
	err = ringManager(t, e, e.store, kekC, kekA).Check(e.ctx, e.store)
	if !errors.Is(err, keys.ErrWrongKEK) || !strings.Contains(err.Error(), keys.KEKID(kekB)) {
		t.Errorf("Check with C and previous A = %v; want ErrWrongKEK naming key %s", err, keys.KEKID(kekB))
	}
}

// failingSwaps fails every compare-and-swap after the first ok ones, as a Redis that goes down in
// the middle of a pass.
type failingSwaps struct {
	*memory.Store
	ok    atomic.Int32
	swaps atomic.Int32
}

var errDown = errors.New("redis down")

func (s *failingSwaps) SwapRecord(ctx context.Context, kind, id string, old, value []byte) (bool, error) {
	if s.swaps.Add(1) > s.ok.Load() {
		return false, errDown
	}
	return s.Store.SwapRecord(ctx, kind, id, old, value)
}

func (s *failingSwaps) UpdateRecord(ctx context.Context, kind, id string, fn func([]byte) ([]byte, error)) ([]byte, error) {
	return store.UpdateRecord(ctx, s, kind, id, fn)
}

// TestResealResumesAfterStoreFailure: a pass interrupted by the store leaves every set whole,
// under A or B, and the next pass finishes the work.
func TestResealResumesAfterStoreFailure(t *testing.T) {
	e := newEnv(t)
	const n = 5
	for i := range n {
		e.ensure(t, fmt.Sprintf("t%d", i), keys.EdDSA)
	}
	s := &failingSwaps{Store: e.store}
	s.ok.Store(2)
	m := ringManager(t, e, s, kekB, kekA)
	st, err := m.Reseal(e.ctx, s)
	if !errors.Is(err, errDown) || st != (keys.SealStats{Current: 2, Previous: n - 2, Resealed: 2}) {
		t.Fatalf("interrupted Reseal = %+v, %v; want 2 resealed, %d left and the store's error", st, err, n-2)
	}
	if got, _ := m.SealedRecords(); got.Previous != n-2 {
		t.Errorf("SealedRecords().Previous = %d, want %d", got.Previous, n-2)
	}
	fresh := ringManager(t, e, e.store, kekB, kekA)
	if err := fresh.Check(e.ctx, e.store); err != nil {
		t.Fatalf("after the interruption, a set does not open: %v", err)
	}
	s.ok.Store(1 << 30)
	st, err = m.Reseal(e.ctx, s)
	if err != nil || st != (keys.SealStats{Current: n, Resealed: n - 2}) {
		t.Errorf("resumed Reseal = %+v, %v; want the %d left resealed", st, err, n-2)
	}
	if err := e.manager(t, kekB).Check(e.ctx, e.store); err != nil {
		t.Errorf("B alone does not open every set after the resumed pass: %v", err)
	}
}

// TestConcurrentReseal: replicas resealing at once move each set exactly once, and a rotation
// racing them is kept.
func TestConcurrentReseal(t *testing.T) {
	e := newEnv(t)
	const n, replicas = 8, 4
	for i := range n {
		e.ensure(t, fmt.Sprintf("t%d", i), keys.EdDSA)
	}
	var resealed atomic.Int32
	var wg sync.WaitGroup
	for range replicas {
		m := ringManager(t, e, e.store, kekB, kekA)
		wg.Go(func() {
			st, err := m.Reseal(e.ctx, e.store)
			if err != nil {
				t.Errorf("Reseal: %v", err)
			}
			resealed.Add(int32(st.Resealed))
		})
	}
	rotator := ringManager(t, e, e.store, kekB, kekA)
	var rotated *keys.Key
	wg.Go(func() {
		var err error
		if rotated, err = rotator.Rotate(e.ctx, "t3", ""); err != nil {
			t.Errorf("Rotate: %v", err)
		}
	})
	wg.Wait()
	// Each set moves once; the rotation may move t3 itself.
	if got := resealed.Load(); got < n-1 || got > n {
		t.Errorf("%d sets resealed by %d replicas, want %d or %d: each once", got, replicas, n-1, n)
	}
	b := e.manager(t, kekB)
	if err := b.Check(e.ctx, e.store); err != nil {
		t.Fatalf("B alone does not open every set: %v", err)
	}
	if rotated != nil && keyByID(e.keyList(t, b, "t3"), rotated.ID) == nil {
		t.Errorf("the rotation racing the reseal was lost")
	}
}
