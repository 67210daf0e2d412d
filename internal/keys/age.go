package keys

import "time"

// SigningKeyAges returns, per algorithm, the longest time any cached tenant's signer has been
// signing at now: how overdue the oldest key of that algorithm is for rotation. It reads the cache
// only (never the store), so that it is cheap enough for a metrics scrape; tenants whose set is not
// cached, and sets whose signer has not activated yet, are left out.
func (m *Manager) SigningKeyAges() map[Algorithm]time.Duration {
	now := m.now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	ages := make(map[Algorithm]time.Duration, 4)
	for _, ks := range m.sets {
		k := ks.active(now)
		if k == nil {
			continue
		}
		if age, ok := ages[k.Algorithm]; !ok || now.Sub(k.ActivatesAt) > age {
			ages[k.Algorithm] = now.Sub(k.ActivatesAt)
		}
	}
	return ages
}
