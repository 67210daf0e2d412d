package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// Certificate-bound tokens (RFC 8705): a token whose `cnf` claim names a client certificate
// (x5t#S256) is accepted only on a connection that presented that certificate. The verifiers
// read the certificate from the incoming call's connection (mutual TLS), or, with
// WithForwardedClientCert, from the x-forwarded-client-cert header of a sidecar that terminated
// the mutual TLS.

// xfccHeader is Envoy's header naming the client certificate of the connection it terminated.
const xfccHeader = "x-forwarded-client-cert"

// WithForwardedClientCert makes the verifiers take the client certificate of a call from the
// `Hash` field of Envoy's x-forwarded-client-cert header (the last element: the one the nearest
// proxy added) instead of from the connection. Use it only behind a sidecar that terminates mutual
// TLS and sets the header itself (forward_client_cert_details SANITIZE_SET or APPEND_FORWARD):
// anyone who reaches the service directly could write the header. NewLocal, NewRemote, NewStatic.
func WithForwardedClientCert() Option {
	return verifierOption(func(c *config) { c.forwardedClientCert = true })
}

// PresentedThumbprint returns the x5t#S256 thumbprint of the client certificate on the incoming
// call's connection, or "" when there is none (plaintext, or TLS without a client certificate).
func PresentedThumbprint(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	return accesstoken.Thumbprint(info.State.PeerCertificates[0].Raw)
}

type presentedKey struct{}

// WithPresentedThumbprint returns ctx saying that the client certificate of the request being
// verified has the x5t#S256 thumbprint tp ("" for none). A verifier called for a request that did
// not arrive on ctx's own connection uses it instead of that connection's: an ext_authz server
// verifying the request Envoy describes, with the certificate Envoy forwards.
func WithPresentedThumbprint(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, presentedKey{}, tp)
}

// PresentedFromContext returns what WithPresentedThumbprint put in ctx, "" when nothing.
func PresentedFromContext(ctx context.Context) string {
	tp, _ := ctx.Value(presentedKey{}).(string)
	return tp
}

// presented returns the thumbprint of the client certificate of the incoming call, as c is
// configured to find it, or as WithPresentedThumbprint set it.
func (c *config) presented(ctx context.Context) string {
	if tp, ok := ctx.Value(presentedKey{}).(string); ok {
		return tp
	}
	if c.forwardedClientCert {
		return forwardedThumbprint(metadata.ValueFromIncomingContext(ctx, xfccHeader))
	}
	return PresentedThumbprint(ctx)
}

// forwardedThumbprint returns the x5t#S256 of the certificate whose SHA-256 (hex) the Hash field
// of the last element of an x-forwarded-client-cert header holds, or "" when there is none or it
// is not a SHA-256.
func forwardedThumbprint(values []string) string {
	if len(values) == 0 {
		return ""
	}
	elems := splitQuoted(strings.Join(values, ","), ',')
	for _, pair := range splitQuoted(elems[len(elems)-1], ';') {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(k, "Hash") {
			continue
		}
		sum, err := hex.DecodeString(strings.Trim(v, `"`))
		if err != nil || len(sum) != sha256.Size {
			return ""
		}
		return base64.RawURLEncoding.EncodeToString(sum)
	}
	return ""
}

// splitQuoted splits s at sep outside double quotes (Envoy quotes values holding , ; or =, and
// escapes a quote inside with a backslash).
func splitQuoted(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// bindingOK reports whether claims c may be used on a connection whose client certificate has
// the thumbprint presented: always for an unbound token.
func bindingOK(c *Claims, presented string) bool {
	return accesstoken.ThumbprintMatches(c.CertificateThumbprint, presented)
}
