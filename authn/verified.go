package authn

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// verified is a token whose signature, header and claims were checked once: what can never change
// for that token string. What can change (the clock, revocations and cut-offs, the key's presence,
// the audience and scopes a method needs) is checked on every call.
type verified struct {
	// token is the token string itself, compared on a hit: it never leaves the process's memory,
	// which is handed the same string on every call, and a hash per hit would double the cost of
	// the check a repeated token is cached for.
	token  string
	claims *Claims
	// key is the key that verified the signature: the token is used only while the current key
	// set holds this very key, so a withdrawn or replaced key's tokens stop at once.
	key *verifyKey
	// until is the clock's Unix nanoseconds after which the token has expired even with the
	// leeway: the entry is useless then.
	until int64
}

// The cache is spread over shards so that writers (a token seen for the first time) rarely meet,
// each shard holding about shardEntries, so that the copy a write makes costs little next to the
// signature check that precedes it; at most maxShards.
const (
	shardEntries = 16
	maxShards    = 256
)

// verifiedCache remembers verified tokens, bounded in number. Reads take no lock and allocate
// nothing: each shard is an immutable map behind an atomic pointer, replaced whole (copy on write)
// by a writer. Tokens are presented many times over their lifetime, so writes are rare next to
// reads, and a shard holds at most its share of the bound, so a copy stays small.
//
// Only tokens whose signature verified are stored, so a flood of forged tokens never enters; a
// flood of genuine distinct tokens evicts at most one entry per insert, preferring expired ones.
type verifiedCache struct {
	seed     maphash.Seed
	perShard int
	shards   []verifiedShard
}

type verifiedShard struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[uint64]*verified]
	_  [48]byte // one shard per cache line: writers of one shard do not slow readers of another
}

// newVerifiedCache returns a cache of at most size tokens, or nil for size 0: no cache.
func newVerifiedCache(size int) *verifiedCache {
	if size <= 0 {
		return nil
	}
	n := min(max(size/shardEntries, 1), maxShards)
	return &verifiedCache{seed: maphash.MakeSeed(), perShard: size / n, shards: make([]verifiedShard, n)}
}

// get returns the entry of token, unexpired at now (Unix nanoseconds), or nil.
func (c *verifiedCache) get(token string, now int64) *verified {
	h := maphash.String(c.seed, token)
	m := c.shards[h%uint64(len(c.shards))].m.Load()
	if m == nil {
		return nil
	}
	v := (*m)[h]
	if v == nil || now >= v.until || v.token != token {
		return nil
	}
	return v
}

// put stores v. Expired entries of its shard are dropped; if the shard is still full, one random
// live entry is evicted.
func (c *verifiedCache) put(v *verified, now int64) {
	h := maphash.String(c.seed, v.token)
	s := &c.shards[h%uint64(len(c.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	var old map[uint64]*verified
	if p := s.m.Load(); p != nil {
		old = *p
	}
	next := make(map[uint64]*verified, min(len(old)+1, c.perShard))
	for k, e := range old {
		if e.until > now { // expired entries are dropped while copying
			next[k] = e
		}
	}
	if len(next) >= c.perShard {
		// Full of live entries: evict one. Map iteration order is random, so the first is a
		// random victim, found in O(1).
		for k := range next {
			delete(next, k)
			break
		}
	}
	next[h] = v
	s.m.Store(&next)
}

// drop removes the entries that match, in every shard.
func (c *verifiedCache) drop(match func(*verified) bool) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		if p := s.m.Load(); p != nil && anyMatch(*p, match) {
			next := make(map[uint64]*verified, len(*p))
			for k, e := range *p {
				if !match(e) {
					next[k] = e
				}
			}
			s.m.Store(&next)
		}
		s.mu.Unlock()
	}
}

// anyMatch reports whether an entry of m matches: a shard without one is left as it is, not
// copied.
func anyMatch(m map[uint64]*verified, match func(*verified) bool) bool {
	for _, e := range m {
		if match(e) {
			return true
		}
	}
	return false
}

// len returns the number of entries, for tests.
func (c *verifiedCache) len() int {
	n := 0
	for i := range c.shards {
		if p := c.shards[i].m.Load(); p != nil {
			n += len(*p)
		}
	}
	return n
}
