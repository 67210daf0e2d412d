package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// DevTenant is the tenant that development mode creates on first start.
const DevTenant = "dev"

// DevAPIKeyFile is the file in the data directory that holds the development API key.
const DevAPIKeyFile = "dev-api-key" //nolint:gosec // G101: a file name, not a credential

// bootstrap checks that the stored keys open and, in development, makes sure the dev tenant, its
// keys and its all-roles API key exist. It is idempotent: restarts reuse what is there.
func (a *App) bootstrap(ctx context.Context) error {
	if err := a.keys.Check(ctx, a.store); err != nil {
		return err
	}
	if a.cfg.Production() {
		return nil
	}
	err := a.tenants.CreateTenant(ctx, &tenant.Tenant{
		ID:        DevTenant,
		Issuer:    "urn:tokenauthority:tenant:" + DevTenant,
		Algorithm: string(keys.EdDSA),
	})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("create development tenant: %w", err)
	}
	if err := a.keys.Ensure(ctx, DevTenant, keys.EdDSA); err != nil {
		return fmt.Errorf("create development keys: %w", err)
	}
	path := filepath.Join(a.cfg.DataDir, DevAPIKeyFile)
	value, created, err := loadOrCreateKey(path)
	if err != nil {
		return err
	}
	if _, err := a.tenants.RegisterAPIKey(ctx, DevTenant, "development", tenant.AllRoles, value); err != nil {
		return fmt.Errorf("register development API key: %w", err)
	}
	msg := "development API key (all roles, tenant dev) is in the file named here; present it as x-api-key"
	if created {
		msg = "created a development API key (all roles, tenant dev) in the file named here; present it as x-api-key"
	}
	a.log.Info(msg, slog.String("file", path))
	return nil
}

// loadOrCreateKey reads the API key in path, or creates one there (0600, in a 0700 directory).
func loadOrCreateKey(path string) (value string, created bool, err error) {
	raw, err := os.ReadFile(path) //nolint:gosec // G304: the operator chooses the data directory
	if err == nil {
		return strings.TrimSpace(string(raw)), false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("create data directory: %w", err)
	}
	value = tenant.NewAPIKeyValue()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".dev-api-key-*")
	if err != nil {
		return "", false, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return "", false, fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := tmp.WriteString(value + "\n"); err != nil {
		_ = tmp.Close()
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", false, fmt.Errorf("create %s: %w", path, err)
	}
	return value, true, nil
}
