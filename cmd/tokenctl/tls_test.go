package main

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tlsfiles"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

// TestTLSFlags: -cacert, -cert and -cert-key reach a server that requires client certificates;
// issue -bind-cert and verify -cert-thumbprint send the binding fields.
func TestTLSFlags(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t).Write(t, dir)
	caFile := filepath.Join(dir, "ca.pem")
	tlstest.WriteFile(t, caFile, ca.PEM)
	files, err := tlsfiles.Load(tlsfiles.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{requests: map[string]proto.Message{}, overrides: map[string]proto.Message{}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(files.GRPC())))
	tokenauthorityv1.RegisterTokenServiceServer(s, &fakeTokenService{rec: rec})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	addr := lis.Addr().String()
	clientDir := t.TempDir()
	clientCert, clientKey := ca.Client(t, "operator").Write(t, clientDir)

	mtls := []string{"-cacert", caFile, "-cert", clientCert, "-cert-key", clientKey, "-timeout", "5s"}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"mutual TLS", append(withServer(addr, mtls...), "issue", "-subject", "a", "-bind-cert"), exitOK, ""},
		{"verify with a thumbprint", append(withServer(addr, mtls...), "verify", "-token", "t", "-cert-thumbprint", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"), exitOK, ""},
		{"no client certificate", append(withServer(addr, "-cacert", caFile, "-timeout", "2s"), "issue", "-subject", "a"), exitRPC, "Unavailable"},
		{"system roots", append(withServer(addr, "-tls", "-timeout", "2s"), "issue", "-subject", "a"), exitRPC, "Unavailable"},
		{"plaintext", append(withServer(addr, "-timeout", "2s"), "issue", "-subject", "a"), exitRPC, "Unavailable"},
		{"cert without key", append(withServer(addr, "-cert", clientCert), "issue", "-subject", "a"), exitUsage, "-cert and -cert-key go together"},
		{"CA file not PEM", append(withServer(addr, "-cacert", clientKey), "issue", "-subject", "a"), exitUsage, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, nil, tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
	_, reqs, _ := rec.snapshot()
	if got, ok := reqs["IssueToken"].(*tokenauthorityv1.IssueTokenRequest); !ok || !got.GetBindClientCertificate() {
		t.Errorf("IssueToken request = %v, want bind_client_certificate", reqs["IssueToken"])
	}
	if got, ok := reqs["VerifyToken"].(*tokenauthorityv1.VerifyTokenRequest); !ok || got.GetCertificateThumbprint() == "" {
		t.Errorf("VerifyToken request = %v, want certificate_thumbprint", reqs["VerifyToken"])
	}
}
