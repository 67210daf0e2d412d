package authn

// Hooks for the external tests.

// DenySetSize returns the number of deny-set entries.
func (l *Local) DenySetSize() int { return l.deny.size() }

// CacheLen returns the number of cached answers, expired ones included.
func (r *Remote) CacheLen() int {
	if r.cache == nil {
		return 0
	}
	return r.cache.len()
}
