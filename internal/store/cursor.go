package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a position in a subject's session list, which runs newest first (creation time
// descending, then session id descending). Both stores use it as their page token.
type Cursor struct {
	// CreatedMillis and SessionID are those of the last session of the previous page.
	CreatedMillis int64
	SessionID     string
}

// Covers reports whether the session (created, id) is at or before c in list order, so that the
// next page skips it.
func (c *Cursor) Covers(created int64, id string) bool {
	return created > c.CreatedMillis || created == c.CreatedMillis && id >= c.SessionID
}

// Encode returns c as an opaque page token.
func (c Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedMillis, 10) + ":" + c.SessionID))
}

// DecodeCursor parses a page token; "" is the start of the list (nil). A token this server did
// not make is an error wrapping ErrInvalidArgument.
func DecodeCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	malformed := fmt.Errorf("%w: malformed page token", ErrInvalidArgument)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, malformed
	}
	created, id, ok := strings.Cut(string(raw), ":")
	if !ok || !ValidSessionID(id) {
		return nil, malformed
	}
	ms, err := strconv.ParseInt(created, 10, 64)
	if err != nil {
		return nil, malformed
	}
	return &Cursor{CreatedMillis: ms, SessionID: id}, nil
}

// DecodeSubjectCursor is DecodeCursor for the list of subject's sessions in tenant: a token whose
// session is of another subject or tenant (session ids carry their subject's tag) came from
// another list and is an error wrapping ErrInvalidArgument, rather than a position in this one.
func DecodeSubjectCursor(s, tenant, subject string) (*Cursor, error) {
	c, err := DecodeCursor(s)
	if err != nil || c == nil {
		return c, err
	}
	if tag, _ := SessionTag(c.SessionID); tag != SubjectTag(tenant, subject) {
		return nil, fmt.Errorf("%w: page token of another subject's list", ErrInvalidArgument)
	}
	return c, nil
}
