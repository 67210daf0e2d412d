package grpcserver

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// bindingOf returns the certificate thumbprint an IssueToken request binds its session to, or ""
// for none.
func bindingOf(ctx context.Context, req *tokenauthorityv1.IssueTokenRequest) (string, error) {
	given := req.GetCertificateThumbprint()
	switch {
	case req.GetBindClientCertificate() && given != "":
		return "", status.Error(codes.InvalidArgument, "bind_client_certificate and certificate_thumbprint are exclusive")
	case req.GetBindClientCertificate():
		tp := authn.PresentedThumbprint(ctx)
		if tp == "" {
			return "", status.Error(codes.FailedPrecondition,
				"bind_client_certificate needs a client certificate on the connection (mutual TLS)")
		}
		return tp, nil
	}
	// The token service checks how a given thumbprint is spelled.
	return given, nil
}
