package tlsfiles_test

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

// serve accepts TLS connections on a loopback port with cfg, completing each handshake, until
// the test ends. It returns the address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				// TLS 1.3 reports a refused client certificate on the client's first read.
				_, _ = c.Write([]byte("ok"))
			}()
		}
	}()
	return lis.Addr().String()
}

// dial completes a handshake and reads the server's greeting; it returns the server's leaf.
func dial(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

type setup struct {
	ca, otherCA *tlstest.CA
	dir         string
	files       *tlsfiles.Files
}

func newSetup(t *testing.T, clientCA bool, require bool) *setup {
	t.Helper()
	s := &setup{ca: tlstest.NewCA(t, "test CA"), otherCA: tlstest.NewCA(t, "other CA"), dir: t.TempDir()}
	certFile, keyFile := s.ca.Server(t).Write(t, s.dir)
	cfg := tlsfiles.Config{CertFile: certFile, KeyFile: keyFile, RequireClientCert: require}
	if clientCA {
		cfg.ClientCAFile = filepath.Join(s.dir, "ca.pem")
		tlstest.WriteFile(t, cfg.ClientCAFile, s.ca.PEM)
	}
	var err error
	if s.files, err = tlsfiles.Load(cfg); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandshakes(t *testing.T) {
	valid := func(s *setup) *tlstest.Cert { return s.ca.Client(t, "orders") }
	expired := func(s *setup) *tlstest.Cert { return s.ca.ExpiredClient(t, "orders") }
	foreign := func(s *setup) *tlstest.Cert { return s.otherCA.Client(t, "orders") }
	tests := []struct {
		name              string
		clientCA, require bool
		cert              func(*setup) *tlstest.Cert
		wrongTrust        bool
		ok                bool
	}{
		{name: "TLS", ok: true},
		{name: "TLS, client presents a certificate it is not asked for", cert: valid, ok: true},
		{name: "client trusts another CA", wrongTrust: true},
		{name: "optional mTLS, no certificate", clientCA: true, ok: true},
		{name: "optional mTLS, valid certificate", clientCA: true, cert: valid, ok: true},
		{name: "optional mTLS, expired certificate", clientCA: true, cert: expired},
		{name: "optional mTLS, certificate of another CA", clientCA: true, cert: foreign},
		{name: "required mTLS, no certificate", clientCA: true, require: true},
		{name: "required mTLS, valid certificate", clientCA: true, require: true, cert: valid, ok: true},
		{name: "required mTLS, expired certificate", clientCA: true, require: true, cert: expired},
		{name: "required mTLS, certificate of another CA", clientCA: true, require: true, cert: foreign},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSetup(t, tt.clientCA, tt.require)
			addr := serve(t, s.files.GRPC())
			trust := s.ca
			if tt.wrongTrust {
				trust = s.otherCA
			}
			var cert *tlstest.Cert
			if tt.cert != nil {
				cert = tt.cert(s)
			}
			cfg := tlstest.ClientConfig(trust, cert)
			cfg.NextProtos = []string{"h2"}
			_, err := dial(addr, cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("handshake error = %v, want success %v", err, tt.ok)
			}
		})
	}
}

// TestALPN: the gRPC port offers h2 only, the HTTP port h2 and http/1.1; TLS 1.1 is refused.
func TestALPN(t *testing.T) {
	s := newSetup(t, false, false)
	for _, tt := range []struct {
		name   string
		cfg    *tls.Config
		offer  string
		wantOK bool
	}{
		{"gRPC h2", s.files.GRPC(), "h2", true},
		{"gRPC http/1.1", s.files.GRPC(), "http/1.1", false},
		{"HTTP h2", s.files.HTTP(), "h2", true},
		{"HTTP http/1.1", s.files.HTTP(), "http/1.1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.cfg)
			cfg := tlstest.ClientConfig(s.ca, nil)
			cfg.NextProtos = []string{tt.offer}
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				if tt.wantOK {
					t.Fatal(err)
				}
				return
			}
			defer c.Close()
			if got := c.ConnectionState().NegotiatedProtocol; (got == tt.offer) != tt.wantOK {
				t.Errorf("negotiated %q offering %q", got, tt.offer)
			}
		})
	}
	addr := serve(t, s.files.GRPC())
	old := tlstest.ClientConfig(s.ca, nil)
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := dial(addr, old); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// TestReload: a replaced certificate (or client CA bundle) is used by the next handshake, a
// connection made before keeps working, and a half-replaced pair keeps the old material.
func TestReload(t *testing.T) {
	s := newSetup(t, true, true)
	addr := serve(t, s.files.GRPC())
	clientCfg := tlstest.ClientConfig(s.ca, s.ca.Client(t, "orders"))
	before, err := dial(addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	held, err := tls.Dial("tcp", addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	if changed, err := s.files.Reload(); changed || err != nil {
		t.Fatalf("Reload of unchanged files = %v, %v; want false, nil", changed, err)
	}
	next := s.ca.Server(t)
	certFile, keyFile := filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem")
	// The certificate first, its key not yet: the pair does not match, the old one stays.
	tlstest.WriteFile(t, certFile, next.CertPEM)
	if changed, err := s.files.Reload(); changed || err == nil {
		t.Fatalf("Reload of a half-replaced pair = %v, %v; want false and an error", changed, err)
	}
	if got, err := dial(addr, clientCfg); err != nil || got.SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatalf("after a failed reload: serial %v, %v; want the old %v", got.SerialNumber, err, before.SerialNumber)
	}
	tlstest.WriteFile(t, keyFile, next.KeyPEM)
	if changed, err := s.files.Reload(); !changed || err != nil {
		t.Fatalf("Reload = %v, %v; want true, nil", changed, err)
	}
	got, err := dial(addr, clientCfg)
	if err != nil || got.SerialNumber.Cmp(next.Leaf.SerialNumber) != 0 {
		t.Fatalf("after the reload: serial %v, %v; want the new %v", got.SerialNumber, err, next.Leaf.SerialNumber)
	}
	if held.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Error("the connection made before the reload changed certificate")
	}
	buf := make([]byte, 2)
	if _, err := held.Read(buf); err != nil {
		t.Errorf("the connection made before the reload was cut: %v", err)
	}

	// The client CA bundle is replaced by another CA's: the old clients are refused, new ones
	// accepted.
	other := tlstest.NewCA(t, "rotated client CA")
	tlstest.WriteFile(t, filepath.Join(s.dir, "ca.pem"), other.PEM)
	if changed, err := s.files.Reload(); !changed || err != nil {
		t.Fatalf("Reload of the CA bundle = %v, %v", changed, err)
	}
	if _, err := dial(addr, clientCfg); err == nil {
		t.Error("a client of the replaced CA was accepted")
	}
	if _, err := dial(addr, tlstest.ClientConfig(s.ca, other.Client(t, "orders"))); err != nil {
		t.Errorf("a client of the new CA was refused: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t).Write(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	tlstest.WriteFile(t, notPEM, []byte("hello"))
	for _, tt := range []struct {
		name string
		cfg  tlsfiles.Config
		want string
	}{
		{"missing key", tlsfiles.Config{CertFile: certFile}, "a certificate file and a key file are required"},
		{"unreadable", tlsfiles.Config{CertFile: filepath.Join(dir, "none"), KeyFile: keyFile}, "none"},
		{"key is a certificate", tlsfiles.Config{CertFile: certFile, KeyFile: certFile}, certFile},
		{"CA not PEM", tlsfiles.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: notPEM}, "holds no PEM certificate"},
		{"require without CA", tlsfiles.Config{CertFile: certFile, KeyFile: keyFile, RequireClientCert: true}, "needs a client CA file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tlsfiles.Load(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:50051":   true,
		"[::1]:50051":       true,
		"localhost:50051":   true,
		"10.0.0.1:50051":    false,
		"authority:50051":   false,
		"not an address":    false,
		"127.0.0.1.example": false,
	} {
		if got := tlsfiles.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestClientConfigCertificateAndKeyGoTogether: a client certificate without its key (or the
// reverse) is refused with words that say so, not with an error about an unnamed file.
func TestClientConfigCertificateAndKeyGoTogether(t *testing.T) {
	t.Parallel()
	for _, files := range [][2]string{{"client.crt", ""}, {"", "client.key"}} {
		if _, err := tlsfiles.ClientConfig("", files[0], files[1]); err == nil || !strings.Contains(err.Error(), "go together") {
			t.Errorf("ClientConfig(cert %q, key %q) = %v; want the two named together", files[0], files[1], err)
		}
	}
}
