package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// load reads the files of dir: the CA as a pool, and the server and client pairs.
func load(t *testing.T, dir string) (*x509.CertPool, tls.Certificate, tls.Certificate) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, caCertFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	server, err := tls.LoadX509KeyPair(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.LoadX509KeyPair(filepath.Join(dir, clientCertFile), filepath.Join(dir, clientKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return pool, server, client
}

func serial(t *testing.T, dir, name string) string {
	t.Helper()
	c, err := readCert(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestCertificates checks what the compose service relies on: the server certificate names the
// service, localhost and 127.0.0.1 for server auth, the client certificate is for client auth,
// both chain to ca.crt, and the keys are readable by their owner only.
func TestCertificates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := run([]string{"-out", dir}, io.Discard, testNow); err != nil {
		t.Fatal(err)
	}
	pool, server, client := load(t, dir)

	for _, name := range []string{"tokenauthority", "localhost", "127.0.0.1", "::1"} {
		_, err := server.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: testNow,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "example.com", CurrentTime: testNow}); err == nil {
		t.Error("server certificate valid for example.com")
	}
	if _, err := client.Leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := client.Leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testNow,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("the client certificate is valid for server auth")
	}
	if got, want := server.Leaf.NotAfter.Sub(testNow), 365*24*time.Hour; got != want {
		t.Errorf("server certificate valid for %v after now, want %v", got, want)
	}

	for name, want := range map[string]os.FileMode{caCertFile: 0o444, serverCertFile: 0o444, clientCertFile: 0o444, serverKeyFile: 0o400, clientKeyFile: 0o400} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%d files in the directory, want %d (no CA key, no temporary file): %v", len(entries), len(files), entries)
	}
}

// TestHandshake is a real mutual-TLS handshake with the files, as the service (client
// certificates optional, verified against ca.crt) and a client trusting ca.crt make it.
func TestHandshake(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"-out", dir}, io.Discard, time.Now()); err != nil {
		t.Fatal(err)
	}
	pool, server, client := load(t, dir)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{server}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peers := make(chan string, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err != nil {
				peers <- "handshake: " + err.Error()
			} else if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
				peers <- pc[0].Subject.CommonName
			} else {
				peers <- ""
			}
			_ = c.Close()
		}
	}()
	tests := []struct {
		name, serverName string
		client           []tls.Certificate
		wantPeer         string
	}{
		{name: "service name with client certificate", serverName: "tokenauthority", client: []tls.Certificate{client}, wantPeer: "tokenauthority-dev-client"},
		{name: "localhost without client certificate", serverName: "localhost"},
		{name: "loopback address", serverName: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: tt.serverName, Certificates: tt.client, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
			if got := <-peers; got != tt.wantPeer {
				t.Errorf("the server saw client %q, want %q", got, tt.wantPeer)
			}
		})
	}
}

// TestKeepsGoodFiles checks when a run keeps the files (so that the CA a client trusts survives a
// restart of compose) and when it makes them anew.
func TestKeepsGoodFiles(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, dir string)
		args    []string
		at      time.Time
		renewed bool
	}{
		{name: "unchanged", at: testNow.Add(24 * time.Hour)},
		{name: "near expiry", at: testNow.Add(336 * 24 * time.Hour), renewed: true},
		{name: "other names", args: []string{"-dns", "tokenauthority,localhost,ta.example"}, at: testNow, renewed: true},
		{name: "forced", args: []string{"-force"}, at: testNow, renewed: true},
		{
			name: "a file missing", at: testNow, renewed: true,
			change: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, clientKeyFile)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			// What a run cut short after writing ca.crt leaves.
			name: "certificates of another CA", at: testNow, renewed: true,
			change: func(t *testing.T, dir string) {
				other := t.TempDir()
				if err := run([]string{"-out", other}, io.Discard, testNow); err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(filepath.Join(other, caCertFile))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(dir, caCertFile)); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, caCertFile), b, 0o444); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := run([]string{"-out", dir}, io.Discard, testNow); err != nil {
				t.Fatal(err)
			}
			before := serial(t, dir, serverCertFile)
			if tt.change != nil {
				tt.change(t, dir)
			}
			var out strings.Builder
			if err := run(append([]string{"-out", dir}, tt.args...), &out, tt.at); err != nil {
				t.Fatal(err)
			}
			if renewed := serial(t, dir, serverCertFile) != before; renewed != tt.renewed {
				t.Fatalf("renewed %v, want %v (%s)", renewed, tt.renewed, out.String())
			}
			pool, server, _ := load(t, dir)
			if _, err := server.Leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: tt.at}); err != nil {
				t.Errorf("after the run the server certificate does not chain to ca.crt: %v", err)
			}
		})
	}
}

func TestFlagsRejected(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{args: nil, want: "-out is required"},
		{args: []string{"-out", "x", "-ip", "localhost"}, want: "not an IP address"},
		{args: []string{"-out", "x", "-dns", "", "-ip", ""}, want: "name nothing"},
		{args: []string{"-out", "x", "-owner", "65532"}, want: "want uid:gid"},
		{args: []string{"-out", "x", "-valid-for", "24h"}, want: "must be longer than -renew-before"},
		{args: []string{"-out", "x", "extra"}, want: "unexpected argument"},
	}
	for _, tt := range tests {
		err := run(tt.args, io.Discard, testNow)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}
