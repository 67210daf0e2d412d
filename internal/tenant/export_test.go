package tenant

// Hooks for the tests of package tenant_test, which may import the stores.

// MaxUnknownKeys is maxUnknownKeys.
const MaxUnknownKeys = maxUnknownKeys

// SetCompareHash makes Authenticate compare hashes with f until restore is called.
func SetCompareHash(f func(x, y []byte) int) (restore func()) {
	old := compareHash
	compareHash = f
	return func() { compareHash = old }
}

// UnknownKeys returns how many unknown key ids s remembers.
func (s *Service) UnknownKeys() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.unknown)
}
