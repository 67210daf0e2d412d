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

// VerifiedLen returns the number of tokens the local verifier remembers as verified.
func (l *Local) VerifiedLen() int {
	if l.verified == nil {
		return 0
	}
	return l.verified.len()
}

// FetchWaiters returns the number of verifications waiting for a fetch for an unknown kid.
func (l *Local) FetchWaiters() int { return int(l.fetchWaiters.Load()) }
