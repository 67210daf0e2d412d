package app

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

// tlsServer is an authority serving TLS with certificates the test made.
type tlsServer struct {
	*running
	httpAddr string
	ca       *tlstest.CA
	dir      string
	// admin is the client certificate of the test's own connection (r.conn).
	admin *tlstest.Cert
}

// startTLS starts an in-memory authority over TLS; clientAuth is "" (no client certificates
// asked for), config.ClientAuthOptional or config.ClientAuthRequire.
func startTLS(t testing.TB, clientAuth string) *tlsServer {
	t.Helper()
	s := &tlsServer{ca: tlstest.NewCA(t, "test CA"), dir: t.TempDir()}
	cfg := testConfig(t, "")
	cfg.TLSCertFile, cfg.TLSKeyFile = s.ca.Server(t).Write(t, s.dir)
	if clientAuth != "" {
		cfg.TLSClientCAFile = filepath.Join(s.dir, "client-ca.pem")
		tlstest.WriteFile(t, cfg.TLSClientCAFile, s.ca.PEM)
		cfg.TLSClientAuth = clientAuth
	}
	s.admin = s.ca.Client(t, "test-admin")
	creds := credentials.NewTLS(tlstest.ClientConfig(s.ca, s.admin))
	s.running, s.httpAddr = startWithCreds(t, cfg, nil, func(log *slog.Logger) (*App, error) { return New(cfg, log) }, creds)
	return s
}

// dial returns a connection to the gRPC port with the given TLS configuration.
func (s *tlsServer) dial(t testing.TB, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(s.conn.Target(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func checkHealth(ctx context.Context, c *grpc.ClientConn, opts ...grpc.CallOption) error {
	_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
	return err
}

// TestTLSHandshakes: what a client can and cannot connect with, on a port without client
// certificates and on one that requires them.
func TestTLSHandshakes(t *testing.T) {
	plain := startTLS(t, "")
	mtls := startTLS(t, config.ClientAuthRequire)
	otherCA := tlstest.NewCA(t, "another CA")
	tests := []struct {
		name   string
		server *tlsServer
		creds  func(s *tlsServer) credentials.TransportCredentials
		ok     bool
	}{
		{"TLS, trusted CA", plain, func(s *tlsServer) credentials.TransportCredentials {
			return credentials.NewTLS(tlstest.ClientConfig(s.ca, nil))
		}, true},
		{"TLS, plaintext client", plain, func(*tlsServer) credentials.TransportCredentials { return insecure.NewCredentials() }, false},
		{"TLS, client trusts another CA", plain, func(*tlsServer) credentials.TransportCredentials {
			return credentials.NewTLS(tlstest.ClientConfig(otherCA, nil))
		}, false},
		{"mTLS, valid client certificate", mtls, func(s *tlsServer) credentials.TransportCredentials {
			return credentials.NewTLS(tlstest.ClientConfig(s.ca, s.ca.Client(t, "orders")))
		}, true},
		{"mTLS, no client certificate", mtls, func(s *tlsServer) credentials.TransportCredentials {
			return credentials.NewTLS(tlstest.ClientConfig(s.ca, nil))
		}, false},
		{"mTLS, expired client certificate", mtls, func(s *tlsServer) credentials.TransportCredentials {
			return credentials.NewTLS(tlstest.ClientConfig(s.ca, s.ca.ExpiredClient(t, "orders")))
		}, false},
		{"mTLS, client certificate of another CA", mtls, func(s *tlsServer) credentials.TransportCredentials {
			return credentials.NewTLS(tlstest.ClientConfig(s.ca, otherCA.Client(t, "orders")))
		}, false},
		{"mTLS, plaintext client", mtls, func(*tlsServer) credentials.TransportCredentials { return insecure.NewCredentials() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := checkHealth(ctx, tt.server.dial(t, tt.creds(tt.server)))
			if tt.ok && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !tt.ok && codeOf(err) != codes.Unavailable {
				t.Fatalf("Check: %v, want Unavailable (no connection)", err)
			}
		})
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }

// TestTLSHTTPPort: the HTTP port serves the JWKS and health over TLS, and a plaintext request
// gets no answer of the service.
func TestTLSHTTPPort(t *testing.T) {
	s := startTLS(t, "")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlstest.ClientConfig(s.ca, nil), ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + s.httpAddr + "/.well-known/jwks.json?tenant=dev")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("JWKS over TLS: %s %s %s", resp.Proto, resp.Status, body)
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	if resp, err := plain.Get("http://" + s.httpAddr + "/.well-known/jwks.json?tenant=dev"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a plaintext request to the TLS port was served")
		}
	}
}

// TestTLSCertificateReloadUnderLoad: the certificate files are replaced while clients call the
// server, over long-lived connections and over new ones: every call succeeds, connections made
// after the reload see the new serial, and the long-lived ones carry on.
func TestTLSCertificateReloadUnderLoad(t *testing.T) {
	s := startTLS(t, config.ClientAuthOptional)
	creds := credentials.NewTLS(tlstest.ClientConfig(s.ca, s.ca.Client(t, "load")))
	ts := tokenauthorityv1.NewTokenServiceClient(s.conn)
	issued := must(ts.IssueToken(withKey(s.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "alice"}))
	oldSerial := s.app.tls.Leaf().SerialNumber

	var failed, calls atomic.Int64
	var newSerialSeen atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	verify := func(c *grpc.ClientConn) *big.Int {
		var p peer.Peer
		v, err := tokenauthorityv1.NewTokenServiceClient(c).VerifyToken(withKey(s.devKey),
			&tokenauthorityv1.VerifyTokenRequest{Token: issued.GetAccessToken()}, grpc.Peer(&p))
		calls.Add(1)
		if err != nil || !v.GetActive() {
			failed.Add(1)
			t.Errorf("call during the reload: %v %v", v, err)
			return nil
		}
		return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber
	}
	// Long-lived connections.
	for range 2 {
		c := s.dial(t, creds)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if serial := verify(c); serial != nil && serial.Cmp(oldSerial) != 0 {
					t.Errorf("a long-lived connection changed certificate without reconnecting")
				}
			}
		})
	}
	// New connections, one per call.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := grpc.NewClient(s.conn.Target(), grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Error(err)
				return
			}
			if serial := verify(c); serial != nil && serial.Cmp(oldSerial) != 0 {
				newSerialSeen.Store(true)
			}
			_ = c.Close()
		}
	})
	// Some load before the reload.
	for calls.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	next := s.ca.Server(t)
	next.Write(t, s.dir)
	// The test reloads itself rather than waiting for the poll; the poll may also get there first.
	if _, err := s.app.tls.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := s.app.tls.Leaf().SerialNumber; got.Cmp(next.Leaf.SerialNumber) != 0 {
		t.Fatalf("serving serial %v after the reload, want %v", got, next.Leaf.SerialNumber)
	}
	// Load after the reload, until a new connection has seen the new certificate.
	deadline := time.Now().Add(30 * time.Second)
	for !newSerialSeen.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	after := calls.Load()
	for calls.Load() < after+50 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if !newSerialSeen.Load() {
		t.Error("no new connection saw the new certificate")
	}
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed during the reload", failed.Load(), calls.Load())
	}
	t.Logf("%d calls, none failed", calls.Load())
}

// TestCertificateBoundTokens: tokens bound to the client certificate of the IssueToken
// connection, or to a given thumbprint, over real mutual TLS.
func TestCertificateBoundTokens(t *testing.T) {
	s := startTLS(t, config.ClientAuthOptional)
	certA, certB := s.ca.Client(t, "workload-a"), s.ca.Client(t, "workload-b")
	tpA := accesstoken.Thumbprint(certA.Leaf.Raw)
	connA := s.dial(t, credentials.NewTLS(tlstest.ClientConfig(s.ca, certA)))
	connB := s.dial(t, credentials.NewTLS(tlstest.ClientConfig(s.ca, certB)))
	connNone := s.dial(t, credentials.NewTLS(tlstest.ClientConfig(s.ca, nil)))
	ctx := withKey(s.devKey)
	tsA, tsB, tsNone := tokenauthorityv1.NewTokenServiceClient(connA), tokenauthorityv1.NewTokenServiceClient(connB), tokenauthorityv1.NewTokenServiceClient(connNone)

	bound, err := tsA.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "workload-a", BindClientCertificate: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tsNone.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "x", BindClientCertificate: true})
	wantCode(t, "binding without a client certificate", err, codes.FailedPrecondition)
	_, err = tsA.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "x", BindClientCertificate: true, CertificateThumbprint: tpA})
	wantCode(t, "both ways of binding", err, codes.InvalidArgument)
	_, err = tsA.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "x", CertificateThumbprint: "abc"})
	wantCode(t, "malformed thumbprint", err, codes.InvalidArgument)
	// A caller issuing on a workload's behalf, over its own connection.
	onBehalf, err := tsNone.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "workload-a", CertificateThumbprint: tpA})
	if err != nil {
		t.Fatal(err)
	}

	for _, tok := range []string{bound.GetAccessToken(), onBehalf.GetAccessToken()} {
		for _, tt := range []struct {
			name      string
			presented string
			want      tokenauthorityv1.InactiveReason
		}{
			{"right certificate", tpA, tokenauthorityv1.InactiveReason_INACTIVE_REASON_UNSPECIFIED},
			{"another certificate", accesstoken.Thumbprint(certB.Leaf.Raw), tokenauthorityv1.InactiveReason_INACTIVE_REASON_CERTIFICATE_MISMATCH},
			{"no certificate", "", tokenauthorityv1.InactiveReason_INACTIVE_REASON_CERTIFICATE_MISMATCH},
		} {
			v := must(tsNone.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: tok, CertificateThumbprint: tt.presented}))
			if v.GetReason() != tt.want || v.GetActive() != (tt.want == 0) {
				t.Errorf("verify with %s: %v", tt.name, v)
			}
			if v.GetActive() && v.GetClaims().GetCertificateThumbprint() != tpA {
				t.Errorf("claims show binding %q, want %q", v.GetClaims().GetCertificateThumbprint(), tpA)
			}
		}
	}
	_, err = tsNone.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: bound.GetAccessToken(), CertificateThumbprint: "not one"})
	wantCode(t, "verify with a malformed thumbprint", err, codes.InvalidArgument)

	// Refresh only over the bound certificate; refusals cost nothing.
	_, err = tsB.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: bound.GetRefreshToken()})
	wantCode(t, "refresh over another certificate", err, codes.Unauthenticated)
	_, err = tsNone.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: bound.GetRefreshToken()})
	wantCode(t, "refresh without a certificate", err, codes.Unauthenticated)
	next, err := tsA.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: bound.GetRefreshToken()})
	if err != nil {
		t.Fatalf("refresh over the bound certificate after refusals: %v", err)
	}
	v := must(tsNone.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: next.GetAccessToken(), CertificateThumbprint: tpA}))
	if !v.GetActive() {
		t.Errorf("refreshed token: %v", v)
	}
}

// TestTenantRequiresCertificateBinding: a tenant that requires binding refuses to issue an
// unbound token.
func TestTenantRequiresCertificateBinding(t *testing.T) {
	s := startTLS(t, config.ClientAuthOptional)
	admin := tokenauthorityv1.NewAdminServiceClient(s.conn)
	created := must(admin.CreateTenant(withKey(s.master), &tokenauthorityv1.CreateTenantRequest{Tenant: &tokenauthorityv1.Tenant{
		TenantId: "bound", Issuer: "https://bound.example", RequireCertificateBinding: true}}))
	if !created.GetTenant().GetRequireCertificateBinding() {
		t.Error("the created tenant does not show require_certificate_binding")
	}
	key := must(admin.CreateApiKey(withKey(created.GetAdminApiKey()), &tokenauthorityv1.CreateApiKeyRequest{TenantId: "bound",
		Roles: []tokenauthorityv1.Role{tokenauthorityv1.Role_ROLE_ISSUE, tokenauthorityv1.Role_ROLE_VERIFY}}))
	ts := tokenauthorityv1.NewTokenServiceClient(s.conn)
	ctx := withKey(key.GetSecret())
	_, err := ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice"})
	wantCode(t, "unbound token of a tenant requiring binding", err, codes.InvalidArgument)
	p := must(ts.IssueToken(ctx, &tokenauthorityv1.IssueTokenRequest{Subject: "alice", BindClientCertificate: true}))
	tp := accesstoken.Thumbprint(s.admin.Leaf.Raw)
	if v := must(ts.VerifyToken(ctx, &tokenauthorityv1.VerifyTokenRequest{Token: p.GetAccessToken(), CertificateThumbprint: tp})); !v.GetActive() {
		t.Errorf("bound token of a tenant requiring binding: %v", v)
	}
}
