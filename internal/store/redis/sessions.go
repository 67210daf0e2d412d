package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

const (
	// defaultPageSize is the page size of ListSessions when the caller sets none.
	defaultPageSize = 50
	// listScanSlack is how many index entries beyond a page (and the one after it) one
	// ListSessions call may read: entries of sessions that expired or ended without a cut-off.
	// It bounds the work of a call, at the price of a short page, when many sit in a row.
	listScanSlack = 256
	// listPruneMax bounds how many index entries of sessions ended by a cut-off one ListSessions
	// call, or one subject cut-off, removes, so that neither blocks Redis for long.
	listPruneMax = 1000
	// maxGeneration bounds the refresh generations the scripts compare: Lua numbers are doubles,
	// exact up to 2^53. A presented generation beyond it cannot be current.
	maxGeneration = 1 << 53
)

// errUnexpectedReply reports a script reply of an unexpected shape.
var errUnexpectedReply = errors.New("unexpected script reply")

// CreateSession stores a new session, expiring at sess.ExpiresAt, and indexes it under its
// subject, in one script call (sent in a pipeline shared with concurrent calls, see batcher). It
// returns store.ErrExists when a live session has the same id, unless that session has sess's
// refresh hash: then it is this call's own, created by an attempt whose reply was lost before the
// client sent the script again.
func (s *Store) CreateSession(ctx context.Context, sess *store.Session) error {
	tag, ok := store.SessionTag(sess.ID)
	if !ok || tag != store.SubjectTag(sess.Tenant, sess.Subject) {
		return fmt.Errorf("redis store: create session: %w: session id is not one of the subject", store.ErrInvalidArgument)
	}
	args := []any{
		sess.ID, millis(sess.ExpiresAt), millis(sess.CreatedAt),
		fieldTenant, sess.Tenant,
		fieldSubject, sess.Subject,
		fieldAudience, encodeStrings(sess.Audience),
		fieldScopes, encodeStrings(sess.Scopes),
		fieldMetadata, encodeMetadata(sess.Metadata),
		fieldCreated, millis(sess.CreatedAt),
		fieldExpires, millis(sess.ExpiresAt),
		fieldAccessTTL, strconv.FormatInt(sess.AccessTTL.Milliseconds(), 10),
		fieldGeneration, strconv.FormatUint(sess.Generation, 10),
		fieldHash, sess.RefreshHash,
		fieldRotated, millis(sess.RotatedAt),
	}
	if sess.Extra != nil {
		args = append(args, fieldExtra, sess.Extra)
	}
	if sess.CertThumbprint != "" {
		args = append(args, fieldCertBound, sess.CertThumbprint)
	}
	var create *goredis.Cmd
	s.batch.do(ctx, &batchCall{queue: func(p goredis.Pipeliner, byDigest bool) {
		create = runScript(ctx, p, createScript, byDigest, []string{sessionKey(tag, sess.ID), indexKey(tag)}, args...)
	}})
	created, err := create.Int()
	if err != nil {
		return unavailable("create session", err)
	}
	if created == 0 {
		return fmt.Errorf("redis store: create session: %w", store.ErrExists)
	}
	return nil
}

// CheckAccess reads the session's tenant and creation time, the jti's revocation mark, the subject
// cut-off and the tenant cut-off: three plain reads (the jti mark and the subject cut-off share a
// slot, so one MGET reads both) in one pipeline (one round trip), shared with
// concurrent calls (batcher). Reads need no script: any interleaving with a concurrent revocation
// is the same as the check happening just before or just after it. A malformed session id, or a
// jti that is not of the session, is unknown.
func (s *Store) CheckAccess(ctx context.Context, tenantID, sessionID, jti string) (store.AccessState, error) {
	tag, ok := store.JTIOf(sessionID, jti)
	if !ok {
		return store.AccessState{}, nil
	}
	var (
		sess, subject *goredis.SliceCmd
		tenantCut     *goredis.StringCmd
	)
	s.batch.do(ctx, &batchCall{queue: func(p goredis.Pipeliner, _ bool) {
		sess = p.HMGet(ctx, sessionKey(tag, sessionID), fieldTenant, fieldCreated)
		subject = p.MGet(ctx, revokedKey(tag, jti), subjectCutoffKey(tag))
		tenantCut = p.Get(ctx, tenantCutoffKey(tenantID))
	}})
	if err := cmdErr(sess, subject, tenantCut); err != nil {
		return store.AccessState{}, unavailable("check access", err)
	}
	st, err := readAccess(tenantID, sess, subject, tenantCut)
	if err != nil {
		return store.AccessState{}, fmt.Errorf("redis store: check access: %w", err)
	}
	return st, nil
}

// readAccess decodes the replies of CheckAccess: subject holds the jti's revocation mark (any
// value: the key's existence is the mark) and the subject cut-off.
func readAccess(tenantID string, sess, subject *goredis.SliceCmd, tenantCut *goredis.StringCmd) (store.AccessState, error) {
	var st store.AccessState
	var err error
	if st.TenantCutoff, err = readMillis(tenantCut); err != nil {
		return st, err
	}
	v := sess.Val()
	if len(v) != 2 {
		return st, errUnexpectedReply
	}
	if t, _ := v[0].(string); t != tenantID {
		return st, nil // unknown, expired, or another tenant's
	}
	created, _ := v[1].(string)
	if st.SessionCreatedAt, err = parseMillis(created); err != nil {
		return st, err
	}
	sv := subject.Val()
	if len(sv) != 2 {
		return st, errUnexpectedReply
	}
	if cut, ok := sv[1].(string); ok {
		if st.SubjectCutoff, err = parseMillis(cut); err != nil {
			return st, err
		}
	}
	st.SessionFound = true
	st.TokenRevoked = sv[0] != nil
	return st, nil
}

// GetSession returns a live session of the tenant: it reads the session and the subject cut-off
// (one slot) and the tenant cut-off in one pipeline, and treats a session that a cut-off ended as
// not found.
func (s *Store) GetSession(ctx context.Context, tenantID, sessionID string) (*store.Session, error) {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return nil, store.ErrNotFound
	}
	var (
		fields                *goredis.MapStringStringCmd
		subjectCut, tenantCut *goredis.StringCmd
	)
	err := s.pipelined(ctx, func(p goredis.Pipeliner) {
		fields = p.HGetAll(ctx, sessionKey(tag, sessionID))
		subjectCut = p.Get(ctx, subjectCutoffKey(tag))
		tenantCut = p.Get(ctx, tenantCutoffKey(tenantID))
	})
	if err != nil {
		return nil, unavailable("get session", err)
	}
	f := fields.Val()
	if f[fieldTenant] != tenantID {
		return nil, store.ErrNotFound
	}
	sess, err := decodeSession(sessionID, f)
	if err != nil {
		return nil, fmt.Errorf("redis store: get session: %w", err)
	}
	cutoffs, err := readCutoffs(subjectCut, tenantCut)
	if err != nil {
		return nil, fmt.Errorf("redis store: get session: %w", err)
	}
	if cutoffs.ended(sess) {
		return nil, store.ErrNotFound
	}
	return sess, nil
}

// RotateRefresh runs the rotation script on the subject's slot and reads the tenant cut-off in one
// pipeline (shared with concurrent calls, see batcher). A session created before the tenant cut-off is reported RotateInvalid, even when the
// script rotated or deleted it.
func (s *Store) RotateRefresh(ctx context.Context, req store.RotateRequest) (store.RotateResult, error) {
	tag, ok := store.SessionTag(req.SessionID)
	if !ok || req.Generation >= maxGeneration {
		return store.RotateResult{Outcome: store.RotateInvalid}, nil
	}
	var (
		rotate    *goredis.Cmd
		tenantCut *goredis.StringCmd
	)
	s.batch.do(ctx, &batchCall{queue: func(p goredis.Pipeliner, byDigest bool) {
		tenantCut = p.Get(ctx, tenantCutoffKey(req.Tenant))
		rotate = runScript(ctx, p, rotateScript, byDigest,
			[]string{sessionKey(tag, req.SessionID), indexKey(tag), subjectCutoffKey(tag)},
			req.Tenant, req.SessionID,
			strconv.FormatUint(req.Generation, 10), req.Hash, req.NewHash,
			millis(req.Now), strconv.FormatInt(req.Grace.Milliseconds(), 10),
			strconv.FormatUint(req.Generation+1, 10))
	}})
	if err := cmdErr(tenantCut, rotate); err != nil {
		return store.RotateResult{}, unavailable("rotate refresh token", err)
	}
	res, err := readRotate(req.SessionID, rotate, tenantCut)
	if err != nil {
		return store.RotateResult{}, fmt.Errorf("redis store: rotate refresh token: %w", err)
	}
	return res, nil
}

// rotateOutcomes maps the outcome codes of rotate.lua.
var rotateOutcomes = map[int64]store.RotateOutcome{1: store.Rotated, 2: store.RotateRetry, 3: store.RotateReuse}

// readRotate decodes the replies of RotateRefresh.
func readRotate(sessionID string, rotate *goredis.Cmd, tenantCut *goredis.StringCmd) (store.RotateResult, error) {
	invalid := store.RotateResult{Outcome: store.RotateInvalid}
	reply, err := rotate.Slice()
	if err != nil {
		return invalid, err
	}
	code, ok := replyInt(reply, 0)
	if !ok {
		return invalid, errUnexpectedReply
	}
	if code == 0 {
		return invalid, nil
	}
	outcome, ok := rotateOutcomes[code]
	if !ok || len(reply) != 2 {
		return invalid, errUnexpectedReply
	}
	f, err := replyMap(reply[1])
	if err != nil {
		return invalid, err
	}
	sess, err := decodeSession(sessionID, f)
	if err != nil {
		return invalid, err
	}
	cut, err := readMillis(tenantCut)
	if err != nil {
		return invalid, err
	}
	if store.EndedBy(sess.CreatedAt, cut) {
		return invalid, nil
	}
	return store.RotateResult{Outcome: outcome, Session: sess}, nil
}

// RevokeToken marks jti revoked until the given time, with its announcement pending, if its
// session is a live session of the tenant; otherwise it reports whether an earlier mark of the
// tenant is still pending. A mark that ends later is kept. Nothing is written when until has passed.
func (s *Store) RevokeToken(ctx context.Context, tenantID, sessionID, jti string, until time.Time) (store.RevokeOutcome, error) {
	tag, ok := store.JTIOf(sessionID, jti)
	if !ok {
		return store.RevokeOutcome{}, nil
	}
	if !until.After(s.now()) {
		return store.RevokeOutcome{}, nil
	}
	reply, err := revokeScript.Run(ctx, s.client, []string{sessionKey(tag, sessionID), revokedKey(tag, jti)},
		tenantID, millis(until)).Int64Slice()
	if err != nil {
		return store.RevokeOutcome{}, unavailable("revoke token", err)
	}
	return revokeOutcome("revoke token", reply)
}

// EndSession deletes a session of the tenant, removes it from its subject's index and leaves its
// tombstone until the given time, in one script; or, for a session that is not there, reports
// whether a tombstone of the tenant is still pending.
func (s *Store) EndSession(ctx context.Context, tenantID, sessionID string, until time.Time) (store.RevokeOutcome, error) {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return store.RevokeOutcome{}, nil
	}
	reply, err := endScript.Run(ctx, s.client, []string{sessionKey(tag, sessionID), indexKey(tag), tombstoneKey(tag, sessionID)},
		tenantID, sessionID, millis(until)).Int64Slice()
	if err != nil {
		return store.RevokeOutcome{}, unavailable("end session", err)
	}
	return revokeOutcome("end session", reply)
}

func revokeOutcome(op string, reply []int64) (store.RevokeOutcome, error) {
	if len(reply) != 2 {
		return store.RevokeOutcome{}, fmt.Errorf("redis store: %s: %w", op, errUnexpectedReply)
	}
	return store.RevokeOutcome{Revoked: reply[0] == 1, Announce: reply[1] == 1}, nil
}

// Announced marks the jti's revocation mark, or the session's tombstone when jti is "", announced.
func (s *Store) Announced(ctx context.Context, tenantID, sessionID, jti string) error {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return nil
	}
	key := tombstoneKey(tag, sessionID)
	if jti != "" {
		if _, ok := store.JTIOf(sessionID, jti); !ok {
			return nil
		}
		key = revokedKey(tag, jti)
	}
	if err := announcedScript.Run(ctx, s.client, []string{key}, tenantID).Err(); err != nil {
		return unavailable("record an announcement", err)
	}
	return nil
}

// DeleteSession deletes a session of the tenant and removes it from its subject's index.
func (s *Store) DeleteSession(ctx context.Context, tenantID, sessionID string) (bool, error) {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return false, nil
	}
	n, err := deleteScript.Run(ctx, s.client, []string{sessionKey(tag, sessionID), indexKey(tag)},
		tenantID, sessionID).Int()
	if err != nil {
		return false, unavailable("delete session", err)
	}
	return n == 1, nil
}

// SetSubjectCutoff raises the subject's cut-off to at and its expiry to at least ttl from now. It
// also removes up to listPruneMax entries of the sessions the cut-off ended from the subject's
// index (ListSessions removes any left).
func (s *Store) SetSubjectCutoff(ctx context.Context, tenantID, subject string, at time.Time, ttl time.Duration) error {
	tag := store.SubjectTag(tenantID, subject)
	return s.setCutoff(ctx, "set subject cut-off", []string{subjectCutoffKey(tag), indexKey(tag)}, at, ttl)
}

// SetTenantCutoff raises the tenant's cut-off to at and its expiry to at least ttl from now. The
// subjects' indexes are in other slots: ListSessions prunes them as it reads them.
func (s *Store) SetTenantCutoff(ctx context.Context, tenantID string, at time.Time, ttl time.Duration) error {
	return s.setCutoff(ctx, "set tenant cut-off", []string{tenantCutoffKey(tenantID)}, at, ttl)
}

// setCutoff runs the cut-off script on keys: the cut-off, and for a subject cut-off the index.
func (s *Store) setCutoff(ctx context.Context, op string, keys []string, at time.Time, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("redis store: %s: %w: ttl must be positive", op, store.ErrInvalidArgument)
	}
	ttlMillis := max(ttl.Milliseconds(), 1)
	if err := cutoffScript.Run(ctx, s.client, keys, millis(at), strconv.FormatInt(ttlMillis, 10), listPruneMax).Err(); err != nil {
		return unavailable(op, err)
	}
	return nil
}

// ListSessions pages through the subject's index newest first from the page's cursor, reading
// index entries and sessions in batches (one script call and one pipeline each). Its work is
// bounded whatever the index holds: entries of sessions ended by a cut-off are never read (they
// score at or below the cut-off) and are removed, up to listPruneMax a call; entries whose session
// no longer exists are read, then removed; and a call reads at most listScanSlack entries beyond
// the page, after which it returns the sessions found so far (maybe none) with a cursor to go on.
func (s *Store) ListSessions(ctx context.Context, tenantID, subject string, now time.Time, page store.Page) ([]*store.Session, string, error) {
	pos, err := store.DecodeSubjectCursor(page.After, tenantID, subject)
	if err != nil {
		return nil, "", fmt.Errorf("redis store: list sessions: %w", err)
	}
	limit := page.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	tag := store.SubjectTag(tenantID, subject)
	var subjectCut, tenantCut *goredis.StringCmd
	err = s.pipelined(ctx, func(p goredis.Pipeliner) {
		subjectCut = p.Get(ctx, subjectCutoffKey(tag))
		tenantCut = p.Get(ctx, tenantCutoffKey(tenantID))
	})
	if err != nil {
		return nil, "", unavailable("list sessions", err)
	}
	cutoffs, err := readCutoffs(subjectCut, tenantCut)
	if err != nil {
		return nil, "", fmt.Errorf("redis store: list sessions: %w", err)
	}
	floor := ""
	if c := cutoffs.latest(); !c.IsZero() {
		floor = millis(c)
	}

	// One session beyond the page tells whether another page follows. The first batch is just
	// that; later ones, needed only past entries of dead sessions, double.
	budget := limit + 1 + listScanSlack
	batch := limit + 1
	prune := listPruneMax
	var out []*store.Session
	var stale []any
	read, exhausted := 0, false
	for len(out) <= limit && read < budget {
		n := min(batch, budget-read)
		entries, err := s.listFrom(ctx, tag, pos, floor, n, prune)
		if err != nil {
			return nil, "", err
		}
		prune = 0
		read += len(entries)
		ids := make([]string, len(entries))
		for i, e := range entries {
			ids[i] = e.SessionID
		}
		sessions, missing, err := s.readSessions(ctx, tag, ids)
		if err != nil {
			return nil, "", err
		}
		stale = append(stale, missing...)
		for _, sess := range sessions {
			if sess.Tenant == tenantID && sess.ExpiresAt.After(now) && !cutoffs.ended(sess) {
				out = append(out, sess)
			}
		}
		if len(entries) > 0 {
			pos = &entries[len(entries)-1]
		}
		if len(entries) < n {
			exhausted = true
			break
		}
		batch *= 2
	}
	if len(stale) > 0 {
		if err := s.client.ZRem(ctx, indexKey(tag), stale...).Err(); err != nil {
			return nil, "", unavailable("list sessions", err)
		}
	}
	switch {
	case len(out) > limit:
		last := out[limit-1]
		return out[:limit], store.Cursor{CreatedMillis: last.CreatedAt.UnixMilli(), SessionID: last.ID}.Encode(), nil
	case exhausted:
		return out, "", nil
	default:
		// The budget ran out among dead sessions: a short page, and the cursor of the last entry
		// read, past everything this call looked at.
		return out, pos.Encode(), nil
	}
}

// listFrom runs the list script: up to n index entries after pos (nil: from the newest) that
// score above floor ("": no cut-off), after removing up to prune entries at or below floor.
func (s *Store) listFrom(ctx context.Context, tag string, pos *store.Cursor, floor string, n, prune int) ([]store.Cursor, error) {
	score, member := "", ""
	if pos != nil {
		score, member = strconv.FormatInt(pos.CreatedMillis, 10), pos.SessionID
	}
	reply, err := listScript.Run(ctx, s.client, []string{indexKey(tag)}, score, member, floor, n, prune).StringSlice()
	if err != nil {
		return nil, unavailable("list sessions", err)
	}
	if len(reply)%2 != 0 {
		return nil, fmt.Errorf("redis store: list sessions: %w", errUnexpectedReply)
	}
	entries := make([]store.Cursor, 0, len(reply)/2)
	for i := 0; i < len(reply); i += 2 {
		ms, err := strconv.ParseFloat(reply[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("redis store: list sessions: %w", errUnexpectedReply)
		}
		entries = append(entries, store.Cursor{CreatedMillis: int64(ms), SessionID: reply[i]})
	}
	return entries, nil
}

// readSessions reads sessions of one subject in one pipeline. It returns the sessions that exist,
// in the order of ids, and the ids of those that do not.
func (s *Store) readSessions(ctx context.Context, tag string, ids []string) ([]*store.Session, []any, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	err := s.pipelined(ctx, func(p goredis.Pipeliner) {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, sessionKey(tag, id))
		}
	})
	if err != nil {
		return nil, nil, unavailable("list sessions", err)
	}
	var sessions []*store.Session
	var missing []any
	for i, c := range cmds {
		f := c.Val()
		if len(f) == 0 {
			missing = append(missing, ids[i])
			continue
		}
		sess, err := decodeSession(ids[i], f)
		if err != nil {
			return nil, nil, fmt.Errorf("redis store: list sessions: %w", err)
		}
		sessions = append(sessions, sess)
	}
	return sessions, missing, nil
}

// cutoffs are the subject and tenant cut-offs that apply to a session.
type cutoffs struct {
	subject, tenant time.Time
}

func readCutoffs(subject, tenant *goredis.StringCmd) (cutoffs, error) {
	var c cutoffs
	var err error
	if c.subject, err = readMillis(subject); err != nil {
		return c, err
	}
	if c.tenant, err = readMillis(tenant); err != nil {
		return c, err
	}
	return c, nil
}

// latest returns the later of the two cut-offs (zero: none): every session created at or before
// it is ended.
func (c cutoffs) latest() time.Time {
	if c.tenant.After(c.subject) {
		return c.tenant
	}
	return c.subject
}

// ended reports whether a cut-off ended sess.
func (c cutoffs) ended(sess *store.Session) bool {
	return store.EndedBy(sess.CreatedAt, c.subject) || store.EndedBy(sess.CreatedAt, c.tenant)
}

// encodeStrings returns the JSON array of v ("null" for nil, so that nil survives a round trip).
func encodeStrings(v []string) []byte {
	b, _ := json.Marshal(v) // A []string always marshals.
	return b
}

func encodeMetadata(m store.Metadata) []byte {
	b, _ := json.Marshal(m) // Metadata has only string fields: it always marshals.
	return b
}

// decodeSession decodes the fields of a session hash. Errors name the field, never its value.
func decodeSession(id string, f map[string]string) (*store.Session, error) {
	sess := &store.Session{ID: id, Tenant: f[fieldTenant], Subject: f[fieldSubject]}
	if err := json.Unmarshal([]byte(f[fieldAudience]), &sess.Audience); err != nil {
		return nil, corruptField(fieldAudience)
	}
	if err := json.Unmarshal([]byte(f[fieldScopes]), &sess.Scopes); err != nil {
		return nil, corruptField(fieldScopes)
	}
	if x, ok := f[fieldExtra]; ok {
		sess.Extra = []byte(x)
	}
	if err := json.Unmarshal([]byte(f[fieldMetadata]), &sess.Metadata); err != nil {
		return nil, corruptField(fieldMetadata)
	}
	for _, t := range []struct {
		field string
		dst   *time.Time
	}{
		{fieldCreated, &sess.CreatedAt},
		{fieldExpires, &sess.ExpiresAt},
		{fieldRotated, &sess.RotatedAt},
	} {
		ms, err := strconv.ParseInt(f[t.field], 10, 64)
		if err != nil {
			return nil, corruptField(t.field)
		}
		*t.dst = time.UnixMilli(ms).UTC()
	}
	accessTTL, err := strconv.ParseInt(f[fieldAccessTTL], 10, 64)
	if err != nil {
		return nil, corruptField(fieldAccessTTL)
	}
	sess.AccessTTL = time.Duration(accessTTL) * time.Millisecond
	if sess.Generation, err = strconv.ParseUint(f[fieldGeneration], 10, 64); err != nil {
		return nil, corruptField(fieldGeneration)
	}
	h, ok := f[fieldHash]
	if !ok {
		return nil, corruptField(fieldHash)
	}
	sess.RefreshHash = []byte(h)
	sess.CertThumbprint = f[fieldCertBound]
	return sess, nil
}

func corruptField(name string) error {
	return fmt.Errorf("corrupt session: field %q", name)
}

// replyInt returns the integer at index i of a script reply.
func replyInt(reply []any, i int) (int64, bool) {
	if i >= len(reply) {
		return 0, false
	}
	n, ok := reply[i].(int64)
	return n, ok
}

// replyMap converts the flat field/value array of a scripted HGETALL into a map.
func replyMap(v any) (map[string]string, error) {
	flat, ok := v.([]any)
	if !ok || len(flat)%2 != 0 {
		return nil, errUnexpectedReply
	}
	m := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, kok := flat[i].(string)
		val, vok := flat[i+1].(string)
		if !kok || !vok {
			return nil, errUnexpectedReply
		}
		m[k] = val
	}
	return m, nil
}
