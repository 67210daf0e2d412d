package grpcserver

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

const errThumbprintSyntax = "certificate_thumbprint must be the unpadded base64url of a SHA-256 (43 characters), as in x5t#S256"

// PeerThumbprint returns the x5t#S256 thumbprint of the client certificate presented on the
// call's connection, or "" when the connection is not TLS or the client presented none. The
// handshake proved that the client holds the certificate's private key; whether the chain was
// verified against the client CA is the listener's policy (TOKENAUTHORITY_TLS_CLIENT_CA_FILE).
func PeerThumbprint(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	return token.CertificateThumbprint(info.State.PeerCertificates[0].Raw)
}

// bindingOf returns the certificate thumbprint an IssueToken request binds its session to, or ""
// for none.
func bindingOf(ctx context.Context, req *tokenauthorityv1.IssueTokenRequest) (string, error) {
	given := req.GetCertificateThumbprint()
	switch {
	case req.GetBindClientCertificate() && given != "":
		return "", status.Error(codes.InvalidArgument, "bind_client_certificate and certificate_thumbprint are exclusive")
	case req.GetBindClientCertificate():
		tp := PeerThumbprint(ctx)
		if tp == "" {
			return "", status.Error(codes.FailedPrecondition,
				"bind_client_certificate needs a client certificate on the connection (mutual TLS)")
		}
		return tp, nil
	case given != "" && !token.ValidThumbprint(given):
		return "", status.Error(codes.InvalidArgument, errThumbprintSyntax)
	}
	return given, nil
}
