package token

import (
	"sync"
	"time"
)

// verifyCache remembers tokens whose immutable checks (shape, algorithm, kid, signature, typ) have
// passed, with their parsed claims, so that a token presented many times in its life is parsed and
// its signature verified once per replica. Everything that can change (the key still being
// published, time, issuer and audience against the request, the session and revocations in the
// store, scopes) is checked on every call. Entries leave when their token expires or when the
// cache is full.
type verifyCache struct {
	mu      sync.RWMutex
	entries map[cacheKey]*verified
	max     int
}

type cacheKey struct {
	tenant, token string
}

// verified is what the immutable checks established about a token.
type verified struct {
	kid    string
	claims *Claims
	// exp is when the entry stops being useful: the token's exp plus the leeway.
	exp time.Time
}

// defaultVerifyCacheSize bounds the cache (about 2 KiB an entry).
const defaultVerifyCacheSize = 16384

func newVerifyCache(size int) *verifyCache {
	return &verifyCache{entries: make(map[cacheKey]*verified, size), max: size}
}

func (c *verifyCache) get(tenant, tok string, now time.Time) *verified {
	c.mu.RLock()
	v := c.entries[cacheKey{tenant, tok}]
	c.mu.RUnlock()
	if v == nil || !now.Before(v.exp) {
		return nil
	}
	return v
}

func (c *verifyCache) put(tenant, tok string, v *verified, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Drop expired entries, then, if still full, an arbitrary eighth (map order is random).
		drop := c.max / 8
		for k, e := range c.entries {
			if !now.Before(e.exp) {
				delete(c.entries, k)
			} else if drop > 0 {
				delete(c.entries, k)
				drop--
			}
		}
	}
	c.entries[cacheKey{tenant, tok}] = v
}

// drop forgets tenant's token.
func (c *verifyCache) drop(tenant, tok string) {
	c.mu.Lock()
	delete(c.entries, cacheKey{tenant, tok})
	c.mu.Unlock()
}
