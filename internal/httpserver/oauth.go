package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// OAuth runs introspection and revocation for a presented API key; the gRPC server's (the same
// policy, rate limits and answers as VerifyToken and RevokeToken). Errors are gRPC statuses.
type OAuth interface {
	Introspect(ctx context.Context, credential, token string) (*tokenauthorityv1.VerifyTokenResponse, error)
	Revoke(ctx context.Context, credential, token string) error
}

// maxFormSize bounds a request body: an 8 KiB token, its hint and the form's overhead.
const maxFormSize = 16 << 10

// apiKeyHeader carries the API key, as in gRPC metadata.
const apiKeyHeader = "X-Api-Key" //nolint:gosec // G101: a header name, not a credential

// introspection is an RFC 7662 answer. An inactive token gets {"active": false} alone, so that the
// answer tells an unauthorised party nothing more.
type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Nbf       int64    `json:"nbf,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Sid       string   `json:"sid,omitempty"`
}

func oauthHandlers(mux *http.ServeMux, o OAuth, log *slog.Logger) {
	mux.HandleFunc("POST /oauth2/introspect", func(w http.ResponseWriter, r *http.Request) {
		cred, tok, ok := oauthRequest(w, r)
		if !ok {
			return
		}
		v, err := o.Introspect(r.Context(), cred, tok)
		if err != nil {
			oauthError(w, r, log, err)
			return
		}
		out := introspection{Active: v.GetActive()}
		if c := v.GetClaims(); out.Active && c != nil {
			out.Scope = strings.Join(c.GetScopes(), " ")
			out.TokenType = "Bearer"
			out.Exp, out.Iat = c.GetExpireTime().GetSeconds(), c.GetIssueTime().GetSeconds()
			if c.GetNotBeforeTime() != nil {
				out.Nbf = c.GetNotBeforeTime().GetSeconds()
			}
			out.Sub, out.Aud, out.Iss, out.Jti, out.Sid = c.GetSubject(), c.GetAudience(), c.GetIssuer(), c.GetJti(), c.GetSessionId()
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /oauth2/revoke", func(w http.ResponseWriter, r *http.Request) {
		cred, tok, ok := oauthRequest(w, r)
		if !ok {
			return
		}
		if err := o.Revoke(r.Context(), cred, tok); err != nil {
			oauthError(w, r, log, err)
			return
		}
		// RFC 7009 section 2.2: 200 whether or not the token was known (no oracle).
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	})
}

// oauthRequest reads the credential and the token of a form-encoded request, or answers the
// request itself and returns false.
func oauthRequest(w http.ResponseWriter, r *http.Request) (cred, tok string, ok bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		oauthFail(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return "", "", false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		oauthFail(w, http.StatusBadRequest, "invalid_request", "the form does not parse, or is larger than 16 KiB")
		return "", "", false
	}
	tokens := r.PostForm["token"]
	if len(tokens) != 1 || tokens[0] == "" || r.URL.RawQuery != "" {
		oauthFail(w, http.StatusBadRequest, "invalid_request", "exactly one token parameter is required, in the body")
		return "", "", false
	}
	cred, why := credential(r)
	if why != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="tokenauthority"`)
		oauthFail(w, http.StatusUnauthorized, "invalid_client", why)
		return "", "", false
	}
	return cred, tokens[0], true
}

// credential returns the API key of a request: its X-Api-Key header, or HTTP Basic with the key's
// id (with or without the tak_ prefix) as user and its secret as password, each form-encoded as
// RFC 6749 section 2.3.1 asks. Exactly one of them.
func credential(r *http.Request) (string, string) {
	header := r.Header.Values(apiKeyHeader)
	user, pass, basic := r.BasicAuth()
	switch {
	case len(header) > 1 || len(header) == 1 && basic:
		return "", "present one credential: X-Api-Key or HTTP Basic"
	case len(header) == 1:
		return header[0], ""
	case !basic:
		return "", "an API key is required: X-Api-Key, or HTTP Basic with its id and secret"
	}
	id, err1 := url.QueryUnescape(user)
	secret, err2 := url.QueryUnescape(pass)
	if err1 != nil || err2 != nil || id == "" || secret == "" {
		return "", "malformed HTTP Basic credentials"
	}
	return tenant.APIKeyPrefix + strings.TrimPrefix(id, tenant.APIKeyPrefix) + "." + secret, ""
}

// oauthError answers a failed call with the RFC 6749 section 5.2 error of its status.
func oauthError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unauthenticated:
		w.Header().Set("WWW-Authenticate", `Basic realm="tokenauthority"`)
		oauthFail(w, http.StatusUnauthorized, "invalid_client", st.Message())
	case codes.PermissionDenied:
		oauthFail(w, http.StatusForbidden, "unauthorized_client", st.Message())
	case codes.InvalidArgument:
		oauthFail(w, http.StatusBadRequest, "invalid_request", st.Message())
	case codes.ResourceExhausted:
		w.Header().Set("Retry-After", "1")
		oauthFail(w, http.StatusTooManyRequests, "slow_down", st.Message())
	default:
		if ctxErr := r.Context().Err(); errors.Is(ctxErr, context.Canceled) {
			return
		}
		log.LogAttrs(r.Context(), slog.LevelWarn, "oauth endpoint unavailable", slog.String("path", r.URL.Path), slog.String("code", st.Code().String()))
		w.Header().Set("Retry-After", "1")
		// Unavailable and anything else: the store could not answer, so no token is reported
		// active (RFC 7009 section 2.2.1 names 503 for this).
		oauthFail(w, http.StatusServiceUnavailable, "temporarily_unavailable", "token service unavailable; retry later")
	}
}

func oauthFail(w http.ResponseWriter, code int, errCode, desc string) {
	writeJSON(w, code, map[string]string{"error": errCode, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
