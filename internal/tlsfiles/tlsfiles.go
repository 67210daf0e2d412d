package tlsfiles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often Run looks at the files: cert-manager and SPIRE renew well
// before expiry, so a few seconds of delay cost nothing.
const DefaultPollInterval = 5 * time.Second

// Config names the files.
type Config struct {
	// CertFile holds the PEM certificate, followed by its chain if any; KeyFile its private key.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds the PEM CAs that client certificates must chain to; the
	// server then asks for client certificates.
	ClientCAFile string
	// RequireClientCert refuses handshakes without a verified client certificate; it needs
	// ClientCAFile.
	RequireClientCert bool
	// Logger receives the reloads and the failed attempts; slog.Default when nil.
	Logger *slog.Logger
}

// Files is the current TLS material of the listeners.
type Files struct {
	cfg Config
	log *slog.Logger
	// mu serialises reloads; current is read by every handshake without a lock.
	mu      sync.Mutex
	seen    []fileStamp // the files as they were at the last successful load
	current atomic.Pointer[material]
}

// material is what one load produced: the configurations handed to handshakes.
type material struct {
	grpc, http *tls.Config
	leaf       *x509.Certificate
}

// fileStamp is what Reload compares to tell that a file changed.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// Load reads the files once; it fails when they do not hold a certificate and its key, or when
// the CA file holds no certificate.
func Load(cfg Config) (*Files, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tls: a certificate file and a key file are required")
	}
	if cfg.RequireClientCert && cfg.ClientCAFile == "" {
		return nil, errors.New("tls: requiring client certificates needs a client CA file")
	}
	f := &Files{cfg: cfg, log: cfg.Logger}
	if f.log == nil {
		f.log = slog.Default()
	}
	if _, err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *Files) paths() []string {
	p := []string{f.cfg.CertFile, f.cfg.KeyFile}
	if f.cfg.ClientCAFile != "" {
		p = append(p, f.cfg.ClientCAFile)
	}
	return p
}

// stamps returns the size and modification time of each file.
func (f *Files) stamps() ([]fileStamp, error) {
	paths := f.paths()
	out := make([]fileStamp, len(paths))
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		out[i] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	}
	return out, nil
}

// Reload reads the files again if any of them changed since the last successful load, and
// reports whether it did. New material replaces the old only once all of it reads well: a
// certificate whose key is not written yet (two files are never replaced at once) keeps the
// old material, and the next call tries again.
func (f *Files) Reload() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stamps, err := f.stamps()
	if err != nil {
		return false, fmt.Errorf("tls: %w", err)
	}
	if f.current.Load() != nil && equalStamps(stamps, f.seen) {
		return false, nil
	}
	m, err := f.read()
	if err != nil {
		return false, err
	}
	f.current.Store(m)
	f.seen = stamps
	return true, nil
}

func equalStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].size != b[i].size || !a[i].modTime.Equal(b[i].modTime) {
			return false
		}
	}
	return true
}

// read loads the files into the configurations of one generation.
func (f *Files) read() (*material, error) {
	cert, err := tls.LoadX509KeyPair(f.cfg.CertFile, f.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", f.cfg.CertFile, f.cfg.KeyFile, err)
	}
	base := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if f.cfg.ClientCAFile != "" {
		pool, err := loadPool(f.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		base.ClientCAs = pool
		base.ClientAuth = tls.VerifyClientCertIfGiven
		if f.cfg.RequireClientCert {
			base.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	g := base.Clone()
	g.NextProtos = []string{"h2"}
	h := base.Clone()
	h.NextProtos = []string{"h2", "http/1.1"}
	return &material{grpc: g, http: h, leaf: cert.Leaf}, nil
}

// Leaf returns the certificate being served now.
func (f *Files) Leaf() *x509.Certificate {
	return f.current.Load().leaf
}

// GRPC returns the configuration of the gRPC listener (ALPN h2): every handshake takes the
// material current at its start.
func (f *Files) GRPC() *tls.Config {
	return f.config(func(m *material) *tls.Config { return m.grpc }, "h2")
}

// HTTP returns the configuration of the HTTP listener (ALPN h2 and http/1.1).
func (f *Files) HTTP() *tls.Config {
	return f.config(func(m *material) *tls.Config { return m.http }, "h2", "http/1.1")
}

func (f *Files) config(pick func(*material) *tls.Config, protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The outer configuration is what servers inspect (gRPC checks its ALPN list); the one
		// each handshake uses is the one current when it starts.
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return pick(f.current.Load()), nil
		},
	}
}

// Run polls the files every interval (DefaultPollInterval when not positive) until ctx is done,
// reloading them when they change. A failed reload is logged and keeps the material in use.
func (f *Files) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := f.Reload()
		switch {
		case err != nil && !failing:
			// Once per failure run: a half-written file is retried at the next tick.
			f.log.Warn("reloading the TLS files failed; serving the previous certificate", slog.String("error", err.Error()))
			failing = true
		case err == nil && changed:
			leaf := f.Leaf()
			f.log.Info("TLS files reloaded", slog.String("serial", leaf.SerialNumber.String()),
				slog.Time("not_after", leaf.NotAfter))
		}
		if err == nil {
			failing = false
		}
	}
}
