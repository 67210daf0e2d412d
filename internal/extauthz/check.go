package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/authn"
)

// Config is what a Server needs.
type Config struct {
	// Verifier checks tokens: authn.NewLocal in the sidecar, the authority's own token service in
	// the authority. It should accept any audience of the tenant; the route's audience is checked
	// here.
	Verifier authn.Verifier
	// Policy maps routes to what a token needs there.
	Policy *Policy
	// Logger records denials (never a token); nowhere when nil.
	Logger *slog.Logger
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	verifier authn.Verifier
	policy   *Policy
	log      *slog.Logger
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New returns a Server.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Verifier == nil {
		errs = append(errs, errors.New("extauthz: no verifier"))
	}
	if cfg.Policy == nil {
		errs = append(errs, errors.New("extauthz: no policy"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{verifier: cfg.Verifier, policy: cfg.Policy, log: log}, nil
}

// Register registers s on srv.
func (s *Server) Register(srv grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(srv, s) }

// maxTokenLen matches the authority's and the interceptors' bound on a token (8 KiB).
const maxTokenLen = 8 << 10

// Check decides one request. It always answers with a CheckResponse, denials and the cases where
// it cannot decide included, so that Envoy's failure_mode_allow never comes into play: an answer
// it could not reach is a 503 with Status Unavailable, never an allow.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return deny(codes.InvalidArgument, 403, "", "the check request carries no HTTP request attributes"), nil
	}
	path := requestPath(h.GetPath())
	if !normalised(path) {
		return deny(codes.PermissionDenied, 403, "", "the request path is not normalised (dot segments or encoded dots or slashes); enable normalize_path in Envoy"), nil
	}
	route := s.policy.match(h.GetHost(), path)
	if route == nil {
		return deny(codes.PermissionDenied, 403, "", "no route of the authorization policy covers this request"), nil
	}
	tok, present := bearer(header(h, "authorization"))
	if !present {
		// RFC 6750 section 3.1: a request without a bearer token gets the challenge, no error code.
		return deny(codes.Unauthenticated, 401, `Bearer`, "a bearer token is required"), nil
	}
	if tok == "" {
		return invalidToken("malformed token"), nil
	}
	// The verifier checks a binding against the certificate of the request Envoy describes, not
	// against Envoy's own connection to this server.
	presented := peerThumbprint(req)
	c, err := s.verifier.Verify(authn.WithPresentedThumbprint(ctx, presented), tok)
	if err != nil {
		return s.verifyDenial(ctx, err), nil
	}
	if !c.HasAudience(route.Audience) {
		return invalidToken("token not issued for this audience"), nil
	}
	if !c.HasAllScopes(route.Scopes...) {
		return deny(codes.PermissionDenied, 403,
			fmt.Sprintf(`Bearer error="insufficient_scope", error_description="token lacks a required scope", scope="%s"`, strings.Join(route.Scopes, " ")),
			"token lacks a required scope"), nil
	}
	return s.allow(c), nil
}

// verifyDenial answers a token the verifier refused.
func (s *Server) verifyDenial(ctx context.Context, err error) *authv3.CheckResponse {
	if ctx.Err() != nil {
		return deny(codes.Unavailable, 503, "", "the check was cancelled before a decision")
	}
	// StatusError names the reason without the token or the internals behind an unavailable
	// answer: the same words the interceptors give a Go caller.
	reason := status.Convert(authn.StatusError(ctx, err)).Message()
	switch {
	case errors.Is(err, authn.ErrInsufficientScope):
		return deny(codes.PermissionDenied, 403, `Bearer error="insufficient_scope"`, reason)
	case errors.Is(err, authn.ErrPermissionDenied), errors.Is(err, authn.ErrInvalidToken):
		// A token for another audience is, for this resource, "invalid for other reasons"
		// (RFC 6750 section 3.1).
		return invalidToken(reason)
	}
	// Unavailable, stale, or anything unexpected: fail closed, and say it is not the token.
	s.log.LogAttrs(ctx, slog.LevelWarn, "ext_authz cannot decide", slog.String("error", err.Error()))
	return deny(codes.Unavailable, 503, "", reason)
}

func invalidToken(reason string) *authv3.CheckResponse {
	return deny(codes.Unauthenticated, 401, fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, reason), reason)
}

// deny builds a denial with an HTTP status, an optional WWW-Authenticate challenge and a body.
func deny(code codes.Code, httpCode typev3.StatusCode, challenge, msg string) *authv3.CheckResponse {
	d := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: httpCode},
		Body:   msg + "\n",
		Headers: []*corev3.HeaderValueOption{
			set("content-type", "text/plain; charset=utf-8"),
			set("cache-control", "no-store"),
		},
	}
	if challenge != "" {
		d.Headers = append(d.Headers, set("www-authenticate", challenge))
	}
	if code == codes.Unavailable {
		d.Headers = append(d.Headers, set("retry-after", "1"))
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code), Message: msg},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: d},
	}
}

// allow lets the request through with the token's facts for the upstream. Every header it owns is
// either overwritten or removed, so that a client cannot pass one of its own to the upstream.
func (s *Server) allow(c *authn.Claims) *authv3.CheckResponse {
	hn := s.policy.Headers
	ok := &authv3.OkHttpResponse{}
	put := func(name, value string) {
		if value == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
			return
		}
		ok.Headers = append(ok.Headers, set(name, value))
	}
	put(hn.Subject, c.Subject)
	put(hn.Scopes, strings.Join(c.Scopes, " "))
	put(hn.Session, c.SessionID)
	put(hn.Actors, strings.Join(actorsOf(c), ","))
	if !hn.KeepAuthorization {
		ok.HeadersToRemove = append(ok.HeadersToRemove, "authorization")
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

func set(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// header returns a request header by its lowercase name, from the headers map or, when Envoy
// sends raw headers (encode_raw_headers), from header_map. Repeated headers come joined with ",".
func header(h *authv3.AttributeContext_HttpRequest, name string) string {
	if v, ok := h.GetHeaders()[name]; ok {
		return v
	}
	var vals []string
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), name) {
			v := hv.GetValue()
			if v == "" {
				v = string(hv.GetRawValue())
			}
			vals = append(vals, v)
		}
	}
	return strings.Join(vals, ",")
}

// bearer extracts the token of an Authorization header. present is false when there is no bearer
// credential at all; tok is "" when there is one that cannot be a token (two of them, a bad
// character, too long).
func bearer(v string) (tok string, present bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" || len(rest) > maxTokenLen {
		return "", true
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		// RFC 6750 b64token, which a JWS compact serialisation fits.
		b64token := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0
		if !b64token {
			return "", true
		}
	}
	return rest, true
}

// normalised reports whether a request path (requestPath: no query) has no dot segment and no
// encoded dot, slash or backslash, which could make a path prefix match a path the upstream reads
// differently.
func normalised(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.Contains(p, `\`) {
		return false
	}
	lp := strings.ToLower(p)
	if strings.Contains(lp, "%2e") || strings.Contains(lp, "%2f") || strings.Contains(lp, "%5c") {
		return false
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
