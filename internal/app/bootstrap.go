package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/lifecycle"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// DevTenant is the tenant that development mode creates on first start.
const DevTenant = "dev"

// DevAPIKeyFile is the file in the data directory that holds the development API key.
const DevAPIKeyFile = "dev-api-key" //nolint:gosec // G101: a file name, not a credential

// devKeyFilePerm is the mode of the development API key file; a looser one is tightened.
const devKeyFilePerm fs.FileMode = 0o600

// bootstrap checks that the stored keys open, claims the issuers of tenants stored without a
// claim (claimIssuers) and, in development, runs the development bootstrap unless the store says
// it has run (devBootstrap).
func (a *App) bootstrap(ctx context.Context) error {
	if err := a.keys.Check(ctx, a.store); err != nil {
		return err
	}
	// A repair, not a precondition: a store that cannot list the tenants now (or one record that
	// does not decode) must not keep every replica from serving; the next bootstrap (a restart,
	// or the store's recovery) tries again.
	if err := a.claimIssuers(ctx); err != nil {
		a.log.Error("claiming the issuers of stored tenants failed; retried at the next start", slog.String("error", err.Error()))
	}
	if a.cfg.Production() {
		return nil
	}
	return a.devBootstrap(ctx)
}

// claimIssuers claims the issuer of every tenant stored before issuers were claimed
// (tenant.Service.ClaimIssuers), so that no tenant is created under the issuer of one of them.
// Two tenants under one issuer (their creations raced under the old check, or one was created by
// a replica of the previous version during a rolling upgrade) do not stop the start: the one
// that holds the claim keeps the issuer and each other one is logged as an error, for an
// operator to delete.
func (a *App) claimIssuers(ctx context.Context) error {
	claimed, released, conflicts, err := a.tenants.ClaimIssuers(ctx)
	if err != nil {
		return fmt.Errorf("claim the issuers of stored tenants: %w", err)
	}
	if claimed > 0 || released > 0 {
		a.log.Info("claimed the issuers of stored tenants", slog.Int("claimed", claimed), slog.Int("released", released))
	}
	for _, c := range conflicts {
		a.log.Error("two tenants share an issuer; the one holding its claim keeps it, delete the other",
			slog.String("issuer", c.Issuer), slog.String("tenant", c.Holder), slog.String("other_tenant", c.Tenant))
	}
	return nil
}

// devBootstrap creates the dev tenant, its signing keys and the all-roles API key of the data
// directory's key file, once per store and data directory. A record in the store marks it done,
// named after the key file's key, and is written last, so that an interrupted bootstrap runs
// again. The rule:
//
//   - A store with the mark is never bootstrapped again, after a reconnect, a health recovery
//     or a restart of the service: an operator who deleted or rotated the dev key, or deleted the
//     dev tenant, does not see them come back.
//   - A store without it is new to this data directory and is bootstrapped: the in-memory store
//     at every start, and a Redis that came back empty, which lost the mark with everything else
//     (what it lost cannot be told from what was deleted, and nothing of it is left to protect).
//   - A new key file (deleted by the operator, or another data directory) is a new bootstrap.
func (a *App) devBootstrap(ctx context.Context) error {
	path := filepath.Join(a.cfg.DataDir, DevAPIKeyFile)
	value, created, err := a.loadOrCreateKey(path)
	if err != nil {
		return err
	}
	a.devMark = devMarkID(value)
	done, err := a.devBootstrapped(ctx)
	if err != nil {
		return err
	}
	if done {
		if !a.booted.Load() {
			a.log.Info("development bootstrap already done in this store for the key file named here: "+
				"the dev tenant and API key are not re-created (delete the file to bootstrap again)",
				slog.String("file", path))
		}
		return nil
	}
	// The tenant's lifecycle makes it, as CreateTenant does, with the key file's key as its first
	// key. A dev tenant already there (a bootstrap interrupted before its mark, or an earlier key
	// file's) is completed instead: its keys ensured and this key added.
	_, _, err = a.devLifecycle.Create(ctx, &tenant.Tenant{
		ID:        DevTenant,
		Issuer:    "urn:tokenauthority:tenant:" + DevTenant,
		Algorithm: keys.EdDSA,
	}, lifecycle.CompleteExisting(), lifecycle.WithAPIKey("development", tenant.AllRoles, value))
	if err != nil {
		return fmt.Errorf("create the development tenant: %w", err)
	}
	err = a.store.CreateRecord(ctx, store.KindBootstrap, a.devMark, []byte(a.now().UTC().Format(time.RFC3339)))
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("mark the development bootstrap done: %w", err)
	}
	msg := "development API key (all roles, tenant dev) is in the file named here; present it as x-api-key"
	if created {
		msg = "created a development API key (all roles, tenant dev) in the file named here; present it as x-api-key"
	}
	a.log.Info(msg, slog.String("file", path))
	return nil
}

// devBootstrapped reports whether the store holds the mark of the development bootstrap for the
// data directory's key.
func (a *App) devBootstrapped(ctx context.Context) (bool, error) {
	_, err := a.store.GetRecord(ctx, store.KindBootstrap, a.devMark)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("read the development bootstrap mark: %w", err)
	}
}

// devMarkID names the bootstrap mark of a development API key: a digest, since record ids are
// listed and the key is a secret.
func devMarkID(key string) string {
	h := sha256.Sum256([]byte("tokenauthority development bootstrap\x00" + key))
	return "dev-" + hex.EncodeToString(h[:16])
}

// loadOrCreateKey reads the API key in path, tightening the file's mode to 0600 if it is looser,
// or creates one there with config.CreateSecretFile (0600, in a 0700 directory).
func (a *App) loadOrCreateKey(path string) (value string, created bool, err error) {
	fi, err := os.Lstat(path)
	if err == nil {
		if !fi.Mode().IsRegular() {
			return "", false, fmt.Errorf("development API key %s is not a regular file", path)
		}
		if perm := fi.Mode().Perm(); perm&^devKeyFilePerm != 0 {
			if err := os.Chmod(path, devKeyFilePerm); err != nil {
				return "", false, fmt.Errorf("development API key %s has permissions %04o, want %04o: %w",
					path, uint32(perm), uint32(devKeyFilePerm), err)
			}
			a.log.Warn("tightened permissions of the development API key file",
				slog.String("file", path), slog.String("from", fmt.Sprintf("%04o", uint32(perm))),
				slog.String("to", fmt.Sprintf("%04o", uint32(devKeyFilePerm))))
		}
		raw, err := os.ReadFile(path) //nolint:gosec // G304: the operator chooses the data directory
		if err != nil {
			return "", false, fmt.Errorf("read %s: %w", path, err)
		}
		return strings.TrimSpace(string(raw)), false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	value = tenant.NewAPIKeyValue()
	// The writer of every development secret: synced, and never replacing a key file that
	// another process created meanwhile.
	created, err = config.CreateSecretFile(filepath.Dir(path), filepath.Base(path), []byte(value+"\n"))
	if err != nil {
		return "", false, fmt.Errorf("create %s: %w", path, err)
	}
	if !created {
		// Another process created it first: use its key, as it does.
		raw, err := os.ReadFile(path) //nolint:gosec // G304: the operator chooses the data directory
		if err != nil {
			return "", false, fmt.Errorf("read %s: %w", path, err)
		}
		return strings.TrimSpace(string(raw)), false, nil
	}
	return value, true, nil
}
