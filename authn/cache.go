package authn

import (
	"crypto/sha256"
	"math/rand/v2"
	"sync"
	"time"
)

// cacheKey is the SHA-256 of a token: the remote mode's answer cache never holds tokens
// themselves (the local verified cache does, in memory only: verified.go says why).
type cacheKey [sha256.Size]byte

// tokenKey returns the cache key of token without allocating for tokens of common sizes.
func tokenKey(token string) cacheKey {
	if len(token) <= 1024 {
		var buf [1024]byte
		n := copy(buf[:], token)
		return sha256.Sum256(buf[:n])
	}
	return sha256.Sum256([]byte(token))
}

// answerKey returns the cache key of the answer about token presented on a connection whose
// client certificate has the thumbprint presented: tokenKey(token) when there is none.
func answerKey(token, presented string) cacheKey {
	if presented == "" {
		return tokenKey(token)
	}
	h := sha256.New()
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write([]byte(presented))
	var k cacheKey
	h.Sum(k[:0])
	return k
}

// answer is what the authority said about a token: claims, or the error to return.
type answer struct {
	claims *Claims
	err    error
}

type cacheEntry struct {
	key     cacheKey
	answer  answer
	expires int64 // the clock's Unix nanoseconds
	idx     int   // position in answerCache.entries
}

// answerCache is a size-bounded map of answers with O(1) random eviction when full. Hits take
// a read lock only. Every eviction by an event bumps gen, and an answer fetched before a bump is
// not stored, so an RPC in flight when a revocation arrives cannot re-insert what it revoked.
type answerCache struct {
	mu      sync.RWMutex
	byKey   map[cacheKey]*cacheEntry
	entries []*cacheEntry
	size    int
	gen     uint64
}

func newAnswerCache(size int) *answerCache {
	return &answerCache{byKey: make(map[cacheKey]*cacheEntry, size), entries: make([]*cacheEntry, 0, size), size: size}
}

// get returns the unexpired answer for k.
func (c *answerCache) get(k *cacheKey, now time.Time) (answer, bool) {
	c.mu.RLock()
	e := c.byKey[*k]
	var a answer
	ok := e != nil && now.UnixNano() < e.expires
	if ok {
		a = e.answer
	}
	c.mu.RUnlock()
	return a, ok
}

// generation returns the current generation, to pass to put.
func (c *answerCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores a until expires, unless an eviction happened since gen was read.
func (c *answerCache) put(k *cacheKey, a answer, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if e := c.byKey[*k]; e != nil {
		e.answer, e.expires = a, expires.UnixNano()
		return
	}
	if len(c.entries) >= c.size {
		// A random victim costs O(1); it needs no unpredictability.
		c.removeLocked(c.entries[rand.IntN(len(c.entries))]) //nolint:gosec // G404: not security-relevant
	}
	e := &cacheEntry{key: *k, answer: a, expires: expires.UnixNano(), idx: len(c.entries)}
	c.byKey[*k] = e
	c.entries = append(c.entries, e)
}

func (c *answerCache) removeLocked(e *cacheEntry) {
	last := c.entries[len(c.entries)-1]
	c.entries[e.idx], last.idx = last, e.idx
	c.entries[len(c.entries)-1] = nil
	c.entries = c.entries[:len(c.entries)-1]
	delete(c.byKey, e.key)
}

// evict removes the active answers whose claims match, and invalidates answers in flight.
func (c *answerCache) evict(match func(*Claims) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for i := 0; i < len(c.entries); {
		if e := c.entries[i]; e.answer.claims != nil && match(e.answer.claims) {
			c.removeLocked(e) // moves the last entry to i
			continue
		}
		i++
	}
}

// clear removes every answer, and invalidates answers in flight.
func (c *answerCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byKey)
	clear(c.entries)
	c.entries = c.entries[:0]
}

// len returns the number of entries, expired ones included.
func (c *answerCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
