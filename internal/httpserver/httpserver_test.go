package httpserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenauthority/tokenauthority/internal/httpserver"
	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

const (
	devTenant   = "dev"
	probeMetric = "httpserver_test_probe_total"
	jwksPath    = "/.well-known/jwks.json"
)

var (
	t0   = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	kek  = bytes.Repeat([]byte{0x5A}, 32)
	kek2 = bytes.Repeat([]byte{0xA5}, 32)
)

// server is the handler over a real key manager and memory store, with tenant "dev" ensured.
type server struct {
	handler http.Handler
	keys    *keys.Manager
	store   *memory.Store
	ready   *atomic.Bool
	clock   *storetest.Clock
}

func newServer(t *testing.T) *server {
	t.Helper()
	clock := storetest.NewClock(t0)
	s := memory.New(clock.Now)
	km, err := keys.NewManager(s, kek, clock.Now)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	if err := km.Ensure(context.Background(), devTenant, keys.EdDSA); err != nil {
		t.Fatalf("Ensure(%q): %v", devTenant, err)
	}
	reg := prometheus.NewRegistry()
	probe := prometheus.NewCounter(prometheus.CounterOpts{Name: probeMetric, Help: "A metric the test registers."})
	reg.MustRegister(probe)
	probe.Add(3)

	ready := new(atomic.Bool)
	ready.Store(true)
	return &server{
		handler: newHandler(km, reg, ready),
		keys:    km, store: s, ready: ready, clock: clock,
	}
}

func newHandler(pk httpserver.PublicKeys, g prometheus.Gatherer, ready *atomic.Bool) http.Handler {
	return httpserver.New(httpserver.Config{
		Keys:       pk,
		Gatherer:   g,
		Ready:      ready.Load,
		Logger:     slog.New(slog.DiscardHandler),
		JWKSMaxAge: 5 * time.Minute,
	})
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestHealthzIsAlwaysOK(t *testing.T) {
	s := newServer(t)
	for _, ready := range []bool{true, false} {
		s.ready.Store(ready)
		if rec := serve(s.handler, http.MethodGet, "/healthz"); rec.Code != http.StatusOK {
			t.Errorf("GET /healthz with ready=%v = %d, want 200", ready, rec.Code)
		}
	}
}

func TestReadyzFollowsReady(t *testing.T) {
	tests := []struct {
		ready bool
		want  int
	}{
		{true, http.StatusOK},
		{false, http.StatusServiceUnavailable},
	}
	s := newServer(t)
	for _, tt := range tests {
		s.ready.Store(tt.ready)
		if rec := serve(s.handler, http.MethodGet, "/readyz"); rec.Code != tt.want {
			t.Errorf("GET /readyz with Ready()=%v = %d, want %d", tt.ready, rec.Code, tt.want)
		}
	}
}

// hasMember reports whether name is a member of any object in the decoded JSON value v.
func hasMember(v any, name string) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == name || hasMember(x, name) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasMember(x, name) {
				return true
			}
		}
	}
	return false
}

func TestJWKSPublishesTenantsPublicKey(t *testing.T) {
	s := newServer(t)
	signer, err := s.keys.SigningKey(context.Background(), devTenant)
	if err != nil {
		t.Fatalf("SigningKey: %v", err)
	}

	rec := serve(s.handler, http.MethodGet, jwksPath+"?tenant="+devTenant)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET jwks = %d %q, want 200", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type = %q, want application/jwk-set+json", ct)
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=300") {
		t.Errorf("Cache-Control = %q, want max-age=300", cc)
	}

	body := rec.Body.Bytes()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("body %s is not a JWKS: %v", body, err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), body)
	}
	if k := set.Keys[0]; k["kty"] != "OKP" || k["kid"] != signer.ID {
		t.Errorf("JWKS key = %v, want kty OKP and kid %q", k, signer.ID)
	}

	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if hasMember(doc, "d") {
		t.Errorf("JWKS has a private member \"d\": %s", body)
	}
	seed := signer.SignKey.(ed25519.PrivateKey).Seed()
	if bytes.Contains(body, []byte(base64.RawURLEncoding.EncodeToString(seed))) {
		t.Error("JWKS contains the private key's seed")
	}
}

func TestJWKSOfHS256TenantIsEmpty(t *testing.T) {
	s := newServer(t)
	if err := s.keys.Ensure(context.Background(), "hmac", keys.HS256); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	rec := serve(s.handler, http.MethodGet, jwksPath+"?tenant=hmac")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"keys":[]}` {
		t.Errorf("GET jwks of an HS256 tenant = %d %q, want 200 {\"keys\":[]}", rec.Code, rec.Body)
	}
}

func TestJWKSRejectsBadTenant(t *testing.T) {
	tests := []struct {
		name   string
		target string
		want   int
	}{
		{"Missing", jwksPath, http.StatusBadRequest},
		{"Empty", jwksPath + "?tenant=", http.StatusBadRequest},
		{"UpperCase", jwksPath + "?tenant=DEV", http.StatusBadRequest},
		{"PathTraversal", jwksPath + "?tenant=../x", http.StatusBadRequest},
		{"Unknown", jwksPath + "?tenant=nope", http.StatusNotFound},
	}
	s := newServer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(s.handler, http.MethodGet, tt.target)
			if rec.Code != tt.want {
				t.Errorf("GET %s = %d, want %d", tt.target, rec.Code, tt.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct == "application/jwk-set+json" {
				t.Errorf("GET %s answers an error as a JWKS", tt.target)
			}
		})
	}
}

func TestJWKSIsUnavailableWhenKeysCannotBeOpened(t *testing.T) {
	s := newServer(t)
	wrong, err := keys.NewManager(s.store, kek2, s.clock.Now)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	h := newHandler(wrong, prometheus.NewRegistry(), s.ready)
	if rec := serve(h, http.MethodGet, jwksPath+"?tenant="+devTenant); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET jwks with a wrong key-encryption key = %d, want 503", rec.Code)
	}
}

func TestMetricsServesRegisteredMetric(t *testing.T) {
	s := newServer(t)
	rec := serve(s.handler, http.MethodGet, "/metrics")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), probeMetric+" 3") {
		t.Errorf("GET /metrics does not report %s 3:\n%s", probeMetric, body)
	}
}

func TestWrongMethodIsMethodNotAllowed(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		method, target string
	}{
		{http.MethodPost, "/healthz"},
		{http.MethodPut, "/healthz"},
		{http.MethodDelete, "/readyz"},
		{http.MethodPost, "/metrics"},
		{http.MethodPost, jwksPath + "?tenant=" + devTenant},
	}
	for _, tt := range tests {
		rec := serve(s.handler, tt.method, tt.target)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s = %d, want 405", tt.method, tt.target, rec.Code)
		}
		if allow := rec.Header().Get("Allow"); !strings.Contains(allow, http.MethodGet) {
			t.Errorf("%s %s: Allow = %q, want it to list GET", tt.method, tt.target, allow)
		}
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	s := newServer(t)
	if rec := serve(s.handler, http.MethodGet, "/nope"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", rec.Code)
	}
}

// TestServesOverHTTP exercises the handler through a real listener, as a client sees it.
func TestServesOverHTTP(t *testing.T) {
	s := newServer(t)
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)

	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed},
		{http.MethodGet, jwksPath + "?tenant=" + devTenant, http.StatusOK},
		{http.MethodGet, jwksPath + "?tenant=nope", http.StatusNotFound},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(context.Background(), tt.method, srv.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.want)
		}
	}
}
