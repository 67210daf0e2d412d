package keys

import "context"

// RefreshKey returns the tenant's server-only refresh-token key.
func (m *Manager) RefreshKey(ctx context.Context, tenant string) ([]byte, error) {
	ks, err := m.cached(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return ks.refreshKey, nil
}
