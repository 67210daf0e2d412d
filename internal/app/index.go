package app

import (
	"context"
	"log/slog"
	"time"
)

// indexAPIKeys lists the stored API keys under their tenants (tenant.Service.IndexAPIKeys), for
// keys stored before per-tenant lists existed or by a replica of that version since: until it has
// run, ListApiKeys and DeleteTenant miss them. It runs once per start, as soon as the store
// answers, retrying every retry until it has; ctx ending stops it.
func (a *App) indexAPIKeys(ctx context.Context, retry time.Duration) {
	failed := false
	for {
		listed, skipped, err := a.tenants.IndexAPIKeys(ctx)
		if err == nil {
			if listed > 0 || skipped > 0 {
				a.log.Info("listed stored API keys under their tenants", slog.Int("listed", listed), slog.Int("undecodable", skipped))
			}
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !failed {
			a.log.Warn("listing stored API keys under their tenants failed; retrying", slog.String("error", err.Error()))
			failed = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}
