package tenant

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

// ErrPageToken reports a page token that this server did not return for the list asked for: made
// up, or from another list (another tenant's, another kind's).
var ErrPageToken = errors.New("page_token is not one this server returned for this list")

// principalPagePrefix starts the plaintext of a principal page token, so that a token of another
// list never reads as one.
const principalPagePrefix = "principals/v1/"

// maxPageToken bounds a presented page token before it is decoded. Tokens this server makes are
// at most about 430 characters (a tenant id of 63 bytes and an identifier of 256).
const maxPageToken = 512

// ListPrincipals returns up to limit (at least 1) of the tenant's principals, ordered by
// identifier, from the position of pageToken ("" for the first page), and the token of the next
// page ("" on the last). A token this server did not return for the tenant's list is
// ErrPageToken. It reads the page's principals only, however many the tenant and others hold.
func (s *Service) ListPrincipals(ctx context.Context, tenantID string, limit int, pageToken string) ([]*Principal, string, error) {
	after, err := decodePrincipalPage(tenantID, pageToken)
	if err != nil {
		return nil, "", err
	}
	prefix := principalID(tenantID, "")
	from := ""
	if after != "" {
		from = principalID(tenantID, after)
	}
	recs, next, err := s.store.ListRecordsPage(ctx, store.KindPrincipal, prefix, from, limit)
	if err != nil {
		return nil, "", err
	}
	out := make([]*Principal, 0, len(recs))
	for _, r := range recs {
		var p Principal
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return nil, "", fmt.Errorf("decode principal: %w", err)
		}
		out = append(out, &p)
	}
	if next == "" {
		return out, "", nil
	}
	return out, encodePrincipalPage(tenantID, strings.TrimPrefix(next, prefix)), nil
}

// encodePrincipalPage returns the page token that continues the tenant's principal list after
// identifier. It is opaque to callers; it names the tenant, so that another tenant's list refuses it.
func encodePrincipalPage(tenantID, identifier string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(principalPagePrefix + principalID(tenantID, identifier)))
}

// decodePrincipalPage returns the identifier after which the page of token starts ("" for the
// first page), or ErrPageToken.
func decodePrincipalPage(tenantID, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	if len(token) > maxPageToken {
		return "", ErrPageToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", ErrPageToken
	}
	rest, ok := strings.CutPrefix(string(raw), principalPagePrefix)
	if !ok {
		return "", ErrPageToken
	}
	owner, identifier, ok := strings.Cut(rest, "/")
	if !ok || owner != tenantID || validatePrincipal(&Principal{Identifier: identifier}) != nil {
		return "", ErrPageToken
	}
	return identifier, nil
}
