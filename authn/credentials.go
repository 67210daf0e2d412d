package authn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// Principal is a principal's credentials, as AdminService.SetPrincipalSecret returned them.
type Principal struct {
	Identifier string
	Secret     string
}

// TokenRequest says which tokens a TokenSource asks for. Exactly one of Subject (with an API key of
// role issue) and Principal (with any API key of the tenant) is set.
type TokenRequest struct {
	Subject   string
	Principal *Principal
	// Audience and Scopes are the aud and scope of the tokens; each must be allowed.
	Audience []string
	Scopes   []string
	// AccessTTL is the access tokens' lifetime; zero for the tenant's default.
	AccessTTL time.Duration
	// Extra holds extra claims (JSON values) for the access tokens.
	Extra map[string]any
	// BindClientCertificate binds the tokens to the client certificate that conn presents to the
	// authority (mutual TLS, RFC 8705): services accept them only over connections presenting
	// the same certificate, so conn and the connections the tokens travel on must share it.
	// Refreshes go over conn, hence under the same identity.
	BindClientCertificate bool
}

type sourceConfig struct {
	now         func() time.Time
	logger      *slog.Logger
	callTimeout time.Duration
	insecure    bool
}

type sourceOption func(*sourceConfig)

func (o sourceOption) applySource(c *sourceConfig) { o(c) }

// AllowInsecureTransport lets the TokenSource's tokens travel over connections without transport
// security (RequireTransportSecurity returns false): for loopback and tests only, since anyone on
// the path could replay the tokens.
func AllowInsecureTransport() SourceOption {
	return sourceOption(func(c *sourceConfig) { c.insecure = true })
}

// Refresh timing: a token is renewed once less than a fifth of its lifetime, or less than
// refreshMargin, remains; but never before half of it has passed.
const refreshMargin = 30 * time.Second

// TokenSource obtains access tokens from the authority and attaches them to outgoing calls as
// `authorization: Bearer <token>`: it implements credentials.PerRPCCredentials, for
// grpc.WithPerRPCCredentials. It renews the token before it expires with RefreshToken, falling
// back to IssueToken when the session has ended. It is safe for concurrent use: however many calls
// find the token due for renewal, one renewal runs and the others wait for it.
type TokenSource struct {
	cfg    sourceConfig
	client tokenauthorityv1.TokenServiceClient
	apiKey string
	issue  *tokenauthorityv1.IssueTokenRequest

	cur    atomic.Pointer[tokenState]
	flight singleflight.Group
}

var _ credentials.PerRPCCredentials = (*TokenSource)(nil)

// tokenState is one access token and what renews it. Never modified once stored.
type tokenState struct {
	access    string
	refresh   string
	expires   time.Time
	refreshAt time.Time
}

// NewTokenSource returns a TokenSource that asks the authority reached through conn, presenting
// apiKey. It obtains no token until the first call.
func NewTokenSource(conn grpc.ClientConnInterface, apiKey string, req TokenRequest, opts ...SourceOption) (*TokenSource, error) {
	cfg := sourceConfig{now: time.Now, logger: slog.New(slog.DiscardHandler), callTimeout: DefaultCallTimeout}
	for _, o := range opts {
		if o != nil {
			o.applySource(&cfg)
		}
	}
	errs := []error{checkConn(conn, apiKey)}
	if (req.Subject == "") == (req.Principal == nil) {
		errs = append(errs, errors.New("set exactly one of Subject and Principal"))
	}
	if req.AccessTTL < 0 {
		errs = append(errs, errors.New("negative AccessTTL"))
	}
	if cfg.now == nil || cfg.logger == nil || cfg.callTimeout <= 0 {
		errs = append(errs, errors.New("nil clock or logger, or non-positive call timeout"))
	}
	issue := &tokenauthorityv1.IssueTokenRequest{Subject: req.Subject, Audience: req.Audience, Scopes: req.Scopes,
		BindClientCertificate: req.BindClientCertificate}
	if req.Principal != nil {
		issue.Principal = &tokenauthorityv1.PrincipalCredentials{Identifier: req.Principal.Identifier, Secret: req.Principal.Secret}
	}
	if req.AccessTTL > 0 {
		issue.AccessTtl = durationpb.New(req.AccessTTL)
	}
	if len(req.Extra) > 0 {
		extra, err := structpb.NewStruct(req.Extra)
		if err != nil {
			errs = append(errs, fmt.Errorf("extra claims: %w", err))
		}
		issue.ExtraClaims = extra
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("authn: NewTokenSource: %w", err)
	}
	return &TokenSource{cfg: cfg, client: tokenauthorityv1.NewTokenServiceClient(conn), apiKey: apiKey, issue: issue}, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (s *TokenSource) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok, err := s.Token(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: true unless
// AllowInsecureTransport was given.
func (s *TokenSource) RequireTransportSecurity() bool { return !s.cfg.insecure }

// Token returns a current access token, obtaining or renewing it first when due. When renewal
// fails while the current token is still valid, it returns the current token (and the next call
// tries again).
func (s *TokenSource) Token(ctx context.Context) (string, error) {
	st := s.cur.Load()
	if st != nil && s.cfg.now().Before(st.refreshAt) {
		return st.access, nil
	}
	ch := s.flight.DoChan("renew", func() (any, error) { return s.renew() })
	select {
	case <-ctx.Done():
		return "", status.FromContextError(ctx.Err()).Err()
	case r := <-ch:
		if r.Err == nil {
			ns, _ := r.Val.(*tokenState)
			return ns.access, nil
		}
		if st != nil && s.cfg.now().Before(st.expires) {
			s.cfg.logger.WarnContext(ctx, "authn: renewing the access token failed; using the current one", "err", r.Err)
			return st.access, nil
		}
		return "", r.Err
	}
}

// renew obtains a new token: by refresh when there is a refresh token, else by issue.
func (s *TokenSource) renew() (*tokenState, error) {
	st := s.cur.Load()
	if st != nil && s.cfg.now().Before(st.refreshAt) {
		return st, nil // renewed by the flight that just ended
	}
	// Shared by every waiting caller, so bound by its own timeout rather than one caller's.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-api-key", s.apiKey), s.cfg.callTimeout)
	defer cancel()
	if st != nil && st.refresh != "" {
		resp, err := s.client.RefreshToken(ctx, &tokenauthorityv1.RefreshTokenRequest{RefreshToken: st.refresh})
		if err == nil {
			return s.store(resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetAccessExpiresAt().AsTime()), nil
		}
		if status.Code(err) != codes.Unauthenticated {
			return nil, fmt.Errorf("authn: refresh token: %w", err)
		}
		// The session ended, or the refresh token was used: open a new session.
		s.cfg.logger.InfoContext(ctx, "authn: refresh refused; issuing a new token", "err", err)
	}
	resp, err := s.client.IssueToken(ctx, s.issue)
	if err != nil {
		return nil, fmt.Errorf("authn: issue token: %w", err)
	}
	return s.store(resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetAccessExpiresAt().AsTime()), nil
}

func (s *TokenSource) store(access, refresh string, expires time.Time) *tokenState {
	now := s.cfg.now()
	life := expires.Sub(now)
	window := min(max(life/5, refreshMargin), life/2)
	st := &tokenState{access: access, refresh: refresh, expires: expires, refreshAt: expires.Add(-window)}
	s.cur.Store(st)
	return st
}
