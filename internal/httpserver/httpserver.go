package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// PublicKeys lists a tenant's published keys.
type PublicKeys interface {
	PublicKeys(ctx context.Context, tenant string) ([]*keys.Key, error)
}

// Config holds what the HTTP server serves.
type Config struct {
	Keys     PublicKeys
	Gatherer prometheus.Gatherer
	// Ready reports whether the service can answer (its store is reachable).
	Ready  func() bool
	Logger *slog.Logger
	// JWKSMaxAge is the Cache-Control max-age of the JWKS.
	JWKSMaxAge time.Duration
	// OAuth serves POST /oauth2/introspect (RFC 7662) and /oauth2/revoke (RFC 7009); they are
	// not served when nil.
	OAuth OAuth
}

// New returns the HTTP handler.
func New(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !cfg.Ready() {
			http.Error(w, "not ready: token store unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	if cfg.OAuth != nil {
		oauthHandlers(mux, cfg.OAuth, cfg.Logger)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("tenant")
		if !tenant.ValidID(id) {
			http.Error(w, "the tenant query parameter must name a tenant", http.StatusBadRequest)
			return
		}
		ks, err := cfg.Keys.PublicKeys(r.Context(), id)
		switch {
		case errors.Is(err, keys.ErrNoKeys):
			http.Error(w, "unknown tenant", http.StatusNotFound)
			return
		case err != nil:
			cfg.Logger.LogAttrs(r.Context(), slog.LevelWarn, "jwks unavailable", slog.String("error", err.Error()))
			http.Error(w, "keys unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(cfg.JWKSMaxAge.Seconds())))
		_ = json.NewEncoder(w).Encode(keys.ToJWKS(ks))
	})
	return mux
}
