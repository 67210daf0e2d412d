package extauthz

import (
	"encoding/pem"
	"net/url"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenauthority/tokenauthority/authn"
	"github.com/tokenauthority/tokenauthority/internal/accesstoken"
)

// actorsOf returns a delegated token's actor chain (its nested act claims), outermost first: the
// service presenting the token, then the one it got the token from, and so on; nil for a token
// that was not exchanged.
func actorsOf(c *authn.Claims) []string {
	if len(c.Actor) == 0 {
		return nil
	}
	out := make([]string, len(c.Actor))
	for i, a := range c.Actor {
		out[i] = a.Subject
	}
	return out
}

// peerThumbprint returns the x5t#S256 thumbprint (base64url of the SHA-256 of the DER) of the
// client certificate Envoy forwards in source.certificate (URL-encoded PEM, sent when the
// listener's ext_authz filter has include_peer_certificate), or "" when there is none or it does
// not decode.
func peerThumbprint(req *authv3.CheckRequest) string {
	enc := req.GetAttributes().GetSource().GetCertificate()
	if enc == "" {
		return ""
	}
	raw, err := url.QueryUnescape(enc)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode([]byte(raw))
	if block == nil || block.Type != "CERTIFICATE" {
		return ""
	}
	return accesstoken.Thumbprint(block.Bytes)
}
