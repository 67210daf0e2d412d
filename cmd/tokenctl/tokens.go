package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

func bindIssue(fs *flag.FlagSet) prepareFunc {
	subject := fs.String("subject", "", "subject (sub) the caller asserts; the API key needs role issue")
	principal := fs.String("principal", "", "identifier of a principal that presents its own secret (-secret-file), instead of -subject")
	secret := secretVar(fs, "secret", "the principal's secret")
	audience := listVar(fs, "audience", "comma-separated `list` of audiences (aud), within the tenant's allowed ones")
	scopes := listVar(fs, "scopes", "comma-separated `list` of scopes, within the tenant's allowed ones")
	accessTTL := fs.Duration("access-ttl", 0, "access-token lifetime, e.g. 5m (the tenant's default when unset)")
	refreshTTL := fs.Duration("refresh-ttl", 0, "session and refresh-token lifetime, e.g. 24h (the tenant's default when unset)")
	claims := fs.String("claims", "", "extra claims of the access token, a `JSON` object such as '{\"plan\":\"pro\"}'")
	device := fs.String("device", "", "device name recorded with the session")
	userAgent := fs.String("user-agent", "", "user agent recorded with the session")
	ip := fs.String("ip", "", "client IP address recorded with the session")
	bind := fs.Bool("bind-cert", false, "bind the tokens to the client certificate of this connection (-cert; RFC 8705)")
	thumbprint := fs.String("cert-thumbprint", "", "bind the tokens to the certificate of this x5t#S256 `thumbprint` (base64url SHA-256 of its DER)")
	return func() (callFunc, error) {
		req := &tokenauthorityv1.IssueTokenRequest{Subject: *subject, Audience: *audience, Scopes: *scopes,
			BindClientCertificate: *bind, CertificateThumbprint: *thumbprint}
		switch {
		case (*subject == "") == (*principal == ""):
			return nil, usagef("exactly one of -subject or -principal is required")
		case *principal != "" && !secret.given():
			return nil, usagef("-principal needs the principal's secret: -secret-file FILE (- for the standard input) or -secret")
		case *subject != "" && secret.given():
			return nil, usagef("-secret and -secret-file go with -principal, not -subject")
		}
		if err := secret.check(); err != nil {
			return nil, err
		}
		var err error
		if req.AccessTtl, err = optionalDuration("access-ttl", *accessTTL); err != nil {
			return nil, err
		}
		if req.RefreshTtl, err = optionalDuration("refresh-ttl", *refreshTTL); err != nil {
			return nil, err
		}
		if *claims != "" {
			req.ExtraClaims = new(structpb.Struct)
			if err := protojson.Unmarshal([]byte(*claims), req.ExtraClaims); err != nil {
				return nil, usagef("-claims must be a JSON object: %v", err)
			}
		}
		if *device != "" || *userAgent != "" || *ip != "" {
			req.Metadata = &tokenauthorityv1.SessionMetadata{Device: *device, UserAgent: *userAgent, Ip: *ip}
		}
		return func(ctx context.Context, c *clients, p *printer) error {
			var sec string
			if *principal != "" {
				s, err := secret.read(p.in)
				if err != nil {
					return err
				}
				sec = s
				req.Principal = &tokenauthorityv1.PrincipalCredentials{Identifier: *principal, Secret: sec}
			}
			resp, err := c.token.IssueToken(ctx, req)
			if err != nil {
				return redactErr(err, sec)
			}
			return p.print(resp, func(w io.Writer) { writeTokenPair(w, resp) })
		}, nil
	}
}

func bindRefresh(fs *flag.FlagSet) prepareFunc {
	token := secretVar(fs, "refresh-token", "the refresh token")
	return func() (callFunc, error) {
		if !token.given() {
			return nil, usagef("one of -refresh-token-file FILE (- for the standard input) or -refresh-token is required")
		}
		if err := token.check(); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c *clients, p *printer) error {
			rt, err := token.read(p.in)
			if err != nil {
				return err
			}
			resp, err := c.token.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: rt})
			if err != nil {
				return redactErr(err, rt)
			}
			return p.print(resp, func(w io.Writer) { writeTokenPair(w, resp) })
		}, nil
	}
}

func bindExchange(fs *flag.FlagSet) prepareFunc {
	token := secretVar(fs, "subject-token", "the access token to exchange")
	audience := listVar(fs, "audience", "comma-separated `list` of audiences (aud) of the new token, within the key's target audiences (required)")
	scopes := listVar(fs, "scopes", "comma-separated `list` of scopes of the new token, each one the subject token has (none when unset)")
	accessTTL := fs.Duration("access-ttl", 0, "lifetime of the new token, e.g. 5m (the tenant's default when unset; never past the subject token's expiry)")
	return func() (callFunc, error) {
		if !token.given() {
			return nil, usagef("one of -subject-token-file FILE (- for the standard input) or -subject-token is required")
		}
		if err := token.check(); err != nil {
			return nil, err
		}
		if len(*audience) == 0 {
			return nil, usagef("-audience is required: name the service the new token is for")
		}
		ttl, err := optionalDuration("access-ttl", *accessTTL)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, c *clients, p *printer) error {
			st, err := token.read(p.in)
			if err != nil {
				return err
			}
			resp, err := c.token.ExchangeToken(ctx, &tokenauthorityv1.ExchangeTokenRequest{
				SubjectToken: st, Audience: *audience, Scopes: *scopes, AccessTtl: ttl})
			if err != nil {
				return redactErr(err, st)
			}
			return p.print(resp, func(w io.Writer) {
				fmt.Fprintf(w, "Access token:\t%s\n", display(resp.GetAccessToken()))
				fmt.Fprintf(w, "Access expires:\t%s\n", formatTime(resp.GetAccessExpiresAt()))
				fmt.Fprintf(w, "Token type:\t%s\n", display(resp.GetTokenType()))
			})
		}, nil
	}
}

// tokenPair is what IssueTokenResponse and RefreshTokenResponse have in common.
type tokenPair interface {
	GetAccessToken() string
	GetRefreshToken() string
	GetTokenType() string
	GetAccessExpiresAt() *timestamppb.Timestamp
	GetRefreshExpiresAt() *timestamppb.Timestamp
	GetSessionId() string
}

func writeTokenPair(w io.Writer, t tokenPair) {
	fmt.Fprintf(w, "Access token:\t%s\n", display(t.GetAccessToken()))
	fmt.Fprintf(w, "Access expires:\t%s\n", formatTime(t.GetAccessExpiresAt()))
	fmt.Fprintf(w, "Refresh token:\t%s\n", display(t.GetRefreshToken()))
	fmt.Fprintf(w, "Refresh expires:\t%s\n", formatTime(t.GetRefreshExpiresAt()))
	fmt.Fprintf(w, "Token type:\t%s\n", display(t.GetTokenType()))
	fmt.Fprintf(w, "Session:\t%s\n", display(t.GetSessionId()))
}
