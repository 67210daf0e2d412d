package authn

import (
	"errors"
	"testing"
	"time"
)

func TestDenySetPrune(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	leeway := 5 * time.Second
	d := newDenySet()
	d.addJTI("j", t0)
	d.addSession("s", t0.Add(time.Hour))
	d.addKid("k", time.Time{}) // no expiry: kept until a resync
	d.addSubjectCutoff("alice", cutoff{ms: t0.UnixMilli(), expire: t0})
	d.addTenantCutoff(cutoff{ms: t0.UnixMilli(), expire: t0})
	cases := []struct {
		at   time.Time
		size int
	}{
		{t0, 5},
		{t0.Add(leeway), 5}, // never before expire_time plus the leeway
		{t0.Add(leeway + time.Nanosecond), 2},
		{t0.Add(2 * time.Hour), 1},
	}
	for _, tc := range cases {
		d.prune(tc.at, leeway)
		if got := d.size(); got != tc.size {
			t.Fatalf("at %v: %d entries, want %d", tc.at.Sub(t0), got, tc.size)
		}
	}
	if d.denied("k", "", "", "", 0) == nil {
		t.Fatal("the withdrawn kid was pruned")
	}
	d.clear()
	if d.size() != 0 {
		t.Fatal("clear left entries")
	}
}

func TestDenySetMerge(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	d := newDenySet()
	// A repeated or overlapping event never shortens nor narrows what is denied.
	d.addJTI("j", t0.Add(time.Hour))
	d.addJTI("j", t0)
	d.addSubjectCutoff("alice", cutoff{ms: 200, expire: t0})
	d.addSubjectCutoff("alice", cutoff{ms: 100, expire: t0.Add(time.Hour)})
	d.addTenantCutoff(cutoff{ms: 50, expire: time.Time{}})
	d.addTenantCutoff(cutoff{ms: 10, expire: t0})
	d.prune(t0.Add(time.Minute), 0)
	switch {
	case !errors.Is(d.denied("", "j", "", "", 0), ErrRevoked):
		t.Fatal("jti entry shortened")
	case !errors.Is(d.denied("", "", "", "alice", 200), ErrCutOff) || d.denied("", "", "", "alice", 201) != nil:
		t.Fatal("subject cut-off not the later one")
	case !errors.Is(d.denied("", "", "", "bob", 50), ErrCutOff) || d.denied("", "", "", "bob", 51) != nil:
		t.Fatal("tenant cut-off not the later one, kept forever")
	}
}

// TestDenySetCutoffMilliseconds: a cut-off denies what was issued at or before its millisecond. A
// token without iat_ms counts as issued at the start of its iat second (verify passes
// IssuedAt.UnixMilli()), so every token that may predate the cut-off is denied.
func TestDenySetCutoffMilliseconds(t *testing.T) {
	d := newDenySet()
	const cut = 1_900_000_000_500 // x.500 s
	d.addSubjectCutoff("alice", cutoff{ms: cut})
	cases := []struct {
		iatMS  int64
		denied bool
	}{
		{cut - 1, true}, {cut, true}, {cut + 1, false},
		{1_900_000_000_000, true},  // no iat_ms: the start of the cut-off's second
		{1_900_000_001_000, false}, // the next second
	}
	for _, c := range cases {
		if got := d.denied("", "", "", "alice", c.iatMS) != nil; got != c.denied {
			t.Errorf("iat %d ms, cut-off %d ms: denied %v, want %v", c.iatMS, int64(cut), got, c.denied)
		}
	}
}

func TestAnswerCache(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newAnswerCache(3)
	key := func(i byte) *cacheKey { return &cacheKey{i} }
	claims := func(jti, sid, sub string) answer {
		return answer{claims: &Claims{JTI: jti, SessionID: sid, Subject: sub, IssuedAt: t0}}
	}
	gen := c.generation()
	c.put(key(1), claims("j1", "s1", "alice"), t0.Add(time.Second), gen)
	c.put(key(2), claims("j2", "s2", "alice"), t0.Add(time.Second), gen)
	c.put(key(3), claims("j3", "s3", "bob"), t0.Add(time.Second), gen)
	if _, ok := c.get(key(1), t0); !ok {
		t.Fatal("miss")
	}
	if _, ok := c.get(key(1), t0.Add(time.Second)); ok {
		t.Fatal("hit at expiry")
	}
	c.put(key(4), claims("j4", "s4", "carol"), t0.Add(time.Second), gen)
	if c.len() != 3 {
		t.Fatalf("%d entries, want the bound 3", c.len())
	}
	c.evict(func(cl *Claims) bool { return cl.Subject == "alice" || cl.Subject == "bob" || cl.Subject == "carol" })
	if c.len() != 0 {
		t.Fatalf("%d entries after evicting all", c.len())
	}
	// An answer fetched before an eviction is not stored.
	c.put(key(5), claims("j5", "s5", "dave"), t0.Add(time.Second), gen)
	if _, ok := c.get(key(5), t0); ok {
		t.Fatal("stale answer stored")
	}
	gen = c.generation()
	c.put(key(5), claims("j5", "s5", "dave"), t0.Add(time.Second), gen)
	c.clear()
	if _, ok := c.get(key(5), t0); ok || c.len() != 0 {
		t.Fatal("clear left entries")
	}
}
