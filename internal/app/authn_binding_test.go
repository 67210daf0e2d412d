package app

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/config"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
	"github.com/tokenauthority/tokenauthority/internal/tlstest"
)

// serveGuarded serves the health service behind the authn interceptor with v, over mutual TLS
// (client certificates of ca asked for, not required) when ca is not nil, over plaintext
// otherwise. It returns the address.
func serveGuarded(t *testing.T, v authn.Verifier, ca *tlstest.CA) string {
	t.Helper()
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(authn.UnaryServerInterceptor(v, authn.Policy{Scopes: map[string][]string{healthpb.Health_Check_FullMethodName: {}}}))}
	if ca != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(),
			ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12,
		})))
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// callGuarded calls the guarded health service at addr over creds with tok and the extra
// metadata, and returns the status code.
func callGuarded(t *testing.T, addr string, creds credentials.TransportCredentials, tok string, md ...string) codes.Code {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, append([]string{"authorization", "Bearer " + tok}, md...)...)
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return status.Code(err)
}

// xfcc returns an x-forwarded-client-cert value as Envoy writes it for cert.
func xfcc(cert *tlstest.Cert) string {
	sum := sha256.Sum256(cert.Leaf.Raw)
	return `By=spiffe://example.org/orders;Hash=` + hex.EncodeToString(sum[:]) + `;Subject="CN=` + cert.Leaf.Subject.CommonName + `,O=Example";URI=`
}

// TestInterceptorCertificateBinding: the interceptor, in local and remote mode, accepts a
// certificate-bound token only from a connection presenting that certificate, or through the
// forwarded header of a sidecar when the service opted in.
func TestInterceptorCertificateBinding(t *testing.T) {
	s := startTLS(t, config.ClientAuthOptional)
	certA, certB := s.ca.Client(t, "workload-a"), s.ca.Client(t, "workload-b")
	ts := tokenauthorityv1.NewTokenServiceClient(s.dial(t, credentials.NewTLS(tlstest.ClientConfig(s.ca, certA))))
	bound := must(ts.IssueToken(withKey(s.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "workload-a", Audience: []string{"orders"},
		BindClientCertificate: true})).GetAccessToken()
	unbound := must(ts.IssueToken(withKey(s.devKey), &tokenauthorityv1.IssueTokenRequest{Subject: "alice", Audience: []string{"orders"}})).GetAccessToken()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	verifiers := map[string]func(opts ...authn.Option) authn.Verifier{
		"local": func(opts ...authn.Option) authn.Verifier {
			v, err := authn.NewLocal(ctx, s.conn, s.devKey, append(opts, authn.WithAudience("orders"))...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			return v
		},
		"remote": func(opts ...authn.Option) authn.Verifier {
			v, err := authn.NewRemote(s.conn, s.devKey, append(opts, authn.WithAudience("orders"))...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(v.Close)
			return v
		},
	}
	withCert := func(c *tlstest.Cert) credentials.TransportCredentials {
		return credentials.NewTLS(tlstest.ClientConfig(s.ca, c))
	}
	plain := insecure.NewCredentials()
	for mode, newVerifier := range verifiers {
		t.Run(mode, func(t *testing.T) {
			mtlsAddr := serveGuarded(t, newVerifier(), s.ca)
			sidecarAddr := serveGuarded(t, newVerifier(authn.WithForwardedClientCert()), nil)
			noOptInAddr := serveGuarded(t, newVerifier(), nil)
			tests := []struct {
				name  string
				addr  string
				creds credentials.TransportCredentials
				tok   string
				md    []string
				want  codes.Code
			}{
				{"bound, right certificate", mtlsAddr, withCert(certA), bound, nil, codes.OK},
				// Twice: a refusal to another certificate must not spoil a cached answer.
				{"bound, another certificate", mtlsAddr, withCert(certB), bound, nil, codes.Unauthenticated},
				{"bound, right certificate again", mtlsAddr, withCert(certA), bound, nil, codes.OK},
				{"bound, no certificate", mtlsAddr, withCert(nil), bound, nil, codes.Unauthenticated},
				{"unbound, any certificate", mtlsAddr, withCert(certB), unbound, nil, codes.OK},
				{"forwarded, opted in, right certificate", sidecarAddr, plain, bound, []string{"x-forwarded-client-cert", xfcc(certA)}, codes.OK},
				{"forwarded, opted in, appended after another hop", sidecarAddr, plain, bound,
					[]string{"x-forwarded-client-cert", xfcc(certB) + "," + xfcc(certA)}, codes.OK},
				{"forwarded, opted in, another certificate", sidecarAddr, plain, bound, []string{"x-forwarded-client-cert", xfcc(certB)}, codes.Unauthenticated},
				{"forwarded, opted in, no header", sidecarAddr, plain, bound, nil, codes.Unauthenticated},
				{"forwarded, not opted in", noOptInAddr, plain, bound, []string{"x-forwarded-client-cert", xfcc(certA)}, codes.Unauthenticated},
				{"forwarded, not opted in, unbound token", noOptInAddr, plain, unbound, nil, codes.OK},
			}
			for _, tt := range tests {
				if got := callGuarded(t, tt.addr, tt.creds, tt.tok, tt.md...); got != tt.want {
					t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
				}
			}
		})
	}
}

// TestTokenSourceOverMutualTLS: a TokenSource on a mutual TLS connection obtains bound tokens,
// refreshes them over the same identity, and a service over mutual TLS with the same
// certificate accepts them.
func TestTokenSourceOverMutualTLS(t *testing.T) {
	s := startTLS(t, config.ClientAuthRequire)
	cert := s.ca.Client(t, "workload-a")
	creds := credentials.NewTLS(tlstest.ClientConfig(s.ca, cert))
	clock := storetest.NewClock(time.Now())
	src, err := authn.NewTokenSource(s.dial(t, creds), s.devKey, authn.TokenRequest{Subject: "workload-a", Audience: []string{"orders"},
		BindClientCertificate: true}, authn.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	v, err := authn.NewLocal(ctx, s.conn, s.devKey, authn.WithAudience("orders"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	addr := serveGuarded(t, v, s.ca)
	first, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := callGuarded(t, addr, creds, first); got != codes.OK {
		t.Fatalf("first token over the bound certificate: %v", got)
	}
	// Past the renewal point: the source refreshes, over the same connection and certificate.
	clock.Advance(14 * time.Minute)
	second, err := src.Token(ctx)
	if err != nil || second == first {
		t.Fatalf("renewed token: %v (same as before: %v)", err, second == first)
	}
	claims, err := v.Verify(ctx, second)
	if err == nil || claims != nil {
		t.Errorf("the renewed bound token verified without a connection: %v", claims)
	}
	if got := callGuarded(t, addr, creds, second); got != codes.OK {
		t.Errorf("renewed token over the bound certificate: %v", got)
	}
	if got := callGuarded(t, addr, credentials.NewTLS(tlstest.ClientConfig(s.ca, s.ca.Client(t, "workload-b"))), second); got != codes.Unauthenticated {
		t.Errorf("renewed token over another certificate: %v", got)
	}
}
