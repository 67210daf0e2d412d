package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/keys"
)

// resealInterval is how often a replica given previous key-encryption keys looks for key sets
// still sealed under one of them: a replica not yet given the new key may write some during a
// rolling change, and they move within this interval (the first pass runs at start).
const resealInterval = 30 * time.Second

// logKEKs logs the ids of the key-encryption keys (never a key), so that an operator can match
// them with the ids that errors and records name.
func logKEKs(log *slog.Logger, cfg *config.Config) {
	ids := make([]string, 0, len(cfg.PreviousKeyEncryptionKeys))
	for _, k := range cfg.PreviousKeyEncryptionKeys {
		ids = append(ids, keys.KEKID(k))
	}
	log.Info("key-encryption keys", slog.String("current_id", keys.KEKID(cfg.KeyEncryptionKey)),
		slog.Any("previous_ids", ids))
}

// resealKeys moves the key sets sealed under a previous key-encryption key (or written before
// records named their key) to the current key: a pass at start, then, while previous keys are
// configured or a pass failed, one every interval until ctx is done. A pass interrupted by the
// store leaves every set whole and the next one resumes.
func (a *App) resealKeys(ctx context.Context, interval time.Duration) {
	announced := false
	for {
		st, err := a.keys.Reseal(ctx, a.store)
		if ctx.Err() != nil {
			return
		}
		attrs := []slog.Attr{
			slog.String("current_id", a.keys.CurrentKEKID()), slog.Int("resealed", st.Resealed),
			slog.Int("current", st.Current), slog.Int("previous", st.Previous), slog.Int("unknown", st.Unknown),
		}
		switch {
		case err != nil:
			// The error names tenants and key ids only.
			a.log.LogAttrs(ctx, slog.LevelWarn, "re-sealing key sets under the current key-encryption key is incomplete; retrying",
				append(attrs, slog.String("error", err.Error()))...)
		case st.Resealed > 0:
			a.log.LogAttrs(ctx, slog.LevelInfo, "re-sealed key sets under the current key-encryption key", attrs...)
		}
		if err == nil && st.Previous == 0 && a.keys.HasPreviousKEKs() && !announced {
			announced = true
			a.log.LogAttrs(ctx, slog.LevelInfo, "every key set is sealed under the current key-encryption key: "+
				"the previous keys can be removed once no replica writes under them", attrs...)
		}
		if err == nil && !a.keys.HasPreviousKEKs() {
			return
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
