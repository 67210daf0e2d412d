package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

const (
	// defaultPageSize is the page size of ListSessions when the caller sets none.
	defaultPageSize = 50
	// sweepEvery is the least number of writes between two sweeps of expired entries; a store with
	// more entries waits for half as many writes as it has entries, so that a sweep, which visits
	// every entry, costs each write at most two visits however many sessions are live.
	sweepEvery = 512
)

// Store keeps sessions and records in memory. It is safe for concurrent use.
type Store struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*session          // by session id
	subjects map[string]map[string]bool   // subject tag -> session ids
	revoked  map[string]int64             // jti -> revoked until, unix ms
	notices  map[string]notice            // "j:<jti>" or "x:<session id>" -> its announcement
	subjCuts map[string]cutoff            // subject tag -> cut-off
	tenCuts  map[string]cutoff            // tenant -> cut-off
	records  map[string]map[string][]byte // kind -> id -> value
	owners   map[ownerKey]map[string]bool // kind and owner -> ids the owner lists
	writes   int                          // since the last sweep
}

// session is a stored session; times are unix milliseconds, as the Redis backend keeps them.
type session struct {
	tenant, subject  string
	audience, scopes []string
	extra            []byte
	metadata         store.Metadata
	created, expires int64
	accessTTL        int64 // ms
	generation       uint64
	hash             []byte
	rotated          int64
	certBound        string // x5t#S256 the tokens are bound to; "" when unbound
}

// ownerKey names an owner's list of records of one kind.
type ownerKey struct{ kind, owner string }

// notice is the announcement state of a jti's revocation mark or of an ended session's tombstone,
// kept as long as the mark or the tombstone.
type notice struct {
	tenant    string
	announced bool
	expires   int64 // unix ms
}

// cutoff is a subject or tenant cut-off, in unix milliseconds.
type cutoff struct {
	at, expires int64
}

// New returns an empty Store that reads the current time from now (time.Now when nil).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:      now,
		sessions: make(map[string]*session),
		subjects: make(map[string]map[string]bool),
		revoked:  make(map[string]int64),
		notices:  make(map[string]notice),
		subjCuts: make(map[string]cutoff),
		tenCuts:  make(map[string]cutoff),
		records:  make(map[string]map[string][]byte),
		owners:   make(map[ownerKey]map[string]bool),
	}
}

// Ping reports that the store answers; it always does.
func (s *Store) Ping(context.Context) error { return nil }

// CreateSession stores a new session and indexes it under its subject. It returns store.ErrExists
// when a live session has the same id.
func (s *Store) CreateSession(_ context.Context, sess *store.Session) error {
	tag, ok := store.SessionTag(sess.ID)
	if !ok || tag != store.SubjectTag(sess.Tenant, sess.Subject) {
		return fmt.Errorf("memory store: create session: %w: session id is not one of the subject", store.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	if cur := s.live(sess.ID, now); cur != nil {
		if bytes.Equal(cur.hash, sess.RefreshHash) {
			return nil // The same call again: its refresh hash, drawn at random, is its own.
		}
		return fmt.Errorf("memory store: create session: %w", store.ErrExists)
	}
	s.sessions[sess.ID] = &session{
		tenant:     sess.Tenant,
		subject:    sess.Subject,
		audience:   slices.Clone(sess.Audience),
		scopes:     slices.Clone(sess.Scopes),
		extra:      bytes.Clone(sess.Extra),
		metadata:   sess.Metadata,
		created:    sess.CreatedAt.UnixMilli(),
		expires:    sess.ExpiresAt.UnixMilli(),
		accessTTL:  sess.AccessTTL.Milliseconds(),
		generation: sess.Generation,
		hash:       append([]byte{}, sess.RefreshHash...),
		rotated:    sess.RotatedAt.UnixMilli(),
		certBound:  sess.CertThumbprint,
	}
	ids := s.subjects[tag]
	if ids == nil {
		ids = make(map[string]bool)
		s.subjects[tag] = ids
	}
	ids[sess.ID] = true
	s.wrote(now)
	return nil
}

// CheckAccess reads the session, the jti's revocation mark and both cut-offs. A malformed session
// id, or a jti that is not of the session, is unknown.
func (s *Store) CheckAccess(_ context.Context, tenantID, sessionID, jti string) (store.AccessState, error) {
	tag, ok := store.JTIOf(sessionID, jti)
	if !ok {
		return store.AccessState{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	st := store.AccessState{TenantCutoff: s.cutoff(s.tenCuts, tenantID, now)}
	sess := s.live(sessionID, now)
	if sess == nil || sess.tenant != tenantID {
		return st, nil
	}
	st.SessionFound = true
	st.SessionCreatedAt = fromMillis(sess.created)
	if until, ok := s.revoked[jti]; ok {
		if now < until {
			st.TokenRevoked = true
		} else {
			delete(s.revoked, jti)
		}
	}
	st.SubjectCutoff = s.cutoff(s.subjCuts, tag, now)
	return st, nil
}

// GetSession returns a live session of the tenant that no cut-off ended, or store.ErrNotFound.
func (s *Store) GetSession(_ context.Context, tenantID, sessionID string) (*store.Session, error) {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return nil, store.ErrNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	sess := s.live(sessionID, now)
	if sess == nil || sess.tenant != tenantID || s.ended(sess, tag, now) {
		return nil, store.ErrNotFound
	}
	return sess.export(sessionID), nil
}

// RotateRefresh performs one refresh attempt atomically. Session expiry follows the store's clock;
// the rotation time and the grace window follow req.Now.
func (s *Store) RotateRefresh(_ context.Context, req store.RotateRequest) (store.RotateResult, error) {
	invalid := store.RotateResult{Outcome: store.RotateInvalid}
	tag, ok := store.SessionTag(req.SessionID)
	if !ok {
		return invalid, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	sess := s.live(req.SessionID, now)
	if sess == nil || sess.tenant != req.Tenant || s.ended(sess, tag, now) {
		return invalid, nil
	}
	reqNow := req.Now.UnixMilli()
	switch g := sess.generation; {
	case req.Generation == g && bytes.Equal(req.Hash, sess.hash):
		sess.generation = g + 1
		sess.hash = append([]byte{}, req.NewHash...)
		sess.rotated = reqNow
		s.wrote(now)
		return store.RotateResult{Outcome: store.Rotated, Session: sess.export(req.SessionID)}, nil
	case g > 0 && req.Generation == g-1 && reqNow-sess.rotated <= req.Grace.Milliseconds():
		return store.RotateResult{Outcome: store.RotateRetry, Session: sess.export(req.SessionID)}, nil
	case req.Generation < g:
		s.deleteSession(req.SessionID, tag)
		s.wrote(now)
		return store.RotateResult{Outcome: store.RotateReuse, Session: sess.export(req.SessionID)}, nil
	}
	return invalid, nil
}

// RevokeToken marks jti revoked until the given time, with its announcement pending, if its
// session is a live session of the tenant; otherwise it reports whether an earlier mark of the
// tenant is still pending. A mark that ends later is kept. Nothing is written when until has passed.
func (s *Store) RevokeToken(_ context.Context, tenantID, sessionID, jti string, until time.Time) (store.RevokeOutcome, error) {
	if _, ok := store.JTIOf(sessionID, jti); !ok {
		return store.RevokeOutcome{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	u := until.UnixMilli()
	if u <= now {
		return store.RevokeOutcome{}, nil
	}
	key := "j:" + jti
	if sess := s.live(sessionID, now); sess == nil || sess.tenant != tenantID {
		return store.RevokeOutcome{Announce: s.pending(key, tenantID, now)}, nil
	}
	cur, marked := s.revoked[jti]
	marked = marked && now < cur
	n, noticed := s.notices[key]
	if !marked {
		s.revoked[jti] = u
		n = notice{tenant: tenantID, expires: u}
	} else if cur < u {
		s.revoked[jti] = u
		n.expires = u
	}
	if !marked || noticed {
		s.notices[key] = n
	}
	s.wrote(now)
	return store.RevokeOutcome{Revoked: !marked, Announce: !marked || s.pending(key, tenantID, now)}, nil
}

// EndSession deletes a session of the tenant and leaves its tombstone until the given time; or, for
// a session that is not there, reports whether a tombstone of the tenant is still pending.
func (s *Store) EndSession(_ context.Context, tenantID, sessionID string, until time.Time) (store.RevokeOutcome, error) {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return store.RevokeOutcome{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	key := "x:" + sessionID
	if sess := s.live(sessionID, now); sess == nil || sess.tenant != tenantID {
		return store.RevokeOutcome{Announce: s.pending(key, tenantID, now)}, nil
	}
	s.deleteSession(sessionID, tag)
	if u := until.UnixMilli(); u > now {
		s.notices[key] = notice{tenant: tenantID, expires: u}
	} else {
		delete(s.notices, key)
	}
	s.wrote(now)
	return store.RevokeOutcome{Revoked: true, Announce: true}, nil
}

// Announced marks the jti's revocation mark, or the session's tombstone when jti is "", announced.
func (s *Store) Announced(_ context.Context, tenantID, sessionID, jti string) error {
	key := "x:" + sessionID
	if jti != "" {
		if _, ok := store.JTIOf(sessionID, jti); !ok {
			return nil
		}
		key = "j:" + jti
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending(key, tenantID, s.nowMillis()) {
		n := s.notices[key]
		n.announced = true
		s.notices[key] = n
	}
	return nil
}

// pending reports whether the notice of key is the tenant's and not yet announced; it drops an
// expired one. The caller holds s.mu.
func (s *Store) pending(key, tenantID string, now int64) bool {
	n, ok := s.notices[key]
	if ok && now >= n.expires {
		delete(s.notices, key)
		return false
	}
	return ok && n.tenant == tenantID && !n.announced
}

// DeleteSession deletes a session of the tenant and reports whether there was one.
func (s *Store) DeleteSession(_ context.Context, tenantID, sessionID string) (bool, error) {
	tag, ok := store.SessionTag(sessionID)
	if !ok {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	if sess := s.live(sessionID, now); sess == nil || sess.tenant != tenantID {
		return false, nil
	}
	s.deleteSession(sessionID, tag)
	s.wrote(now)
	return true, nil
}

// SetSubjectCutoff raises the subject's cut-off to at and its expiry to at least ttl from now.
func (s *Store) SetSubjectCutoff(_ context.Context, tenantID, subject string, at time.Time, ttl time.Duration) error {
	return s.setCutoff("set subject cut-off", s.subjCuts, store.SubjectTag(tenantID, subject), at, ttl)
}

// SetTenantCutoff raises the tenant's cut-off to at and its expiry to at least ttl from now.
func (s *Store) SetTenantCutoff(_ context.Context, tenantID string, at time.Time, ttl time.Duration) error {
	return s.setCutoff("set tenant cut-off", s.tenCuts, tenantID, at, ttl)
}

func (s *Store) setCutoff(op string, cuts map[string]cutoff, key string, at time.Time, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("memory store: %s: %w: ttl must be positive", op, store.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowMillis()
	c := cutoff{at: at.UnixMilli(), expires: now + max(ttl.Milliseconds(), 1)}
	if cur, ok := cuts[key]; ok && now < cur.expires {
		c.at = max(c.at, cur.at)
		c.expires = max(c.expires, cur.expires)
	}
	cuts[key] = c
	s.wrote(now)
	return nil
}

// ListSessions returns the subject's live sessions newest first (ties broken by id, descending),
// skipping sessions a cut-off ended and sessions that end at or before now. Sessions a cut-off
// ended leave the subject's index (they stay readable until they expire, for CheckAccess), so
// that later calls do not visit them again.
func (s *Store) ListSessions(_ context.Context, tenantID, subject string, now time.Time, page store.Page) ([]*store.Session, string, error) {
	after, err := store.DecodeSubjectCursor(page.After, tenantID, subject)
	if err != nil {
		return nil, "", fmt.Errorf("memory store: list sessions: %w", err)
	}
	limit := page.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	tag := store.SubjectTag(tenantID, subject)
	s.mu.Lock()
	defer s.mu.Unlock()
	clock := s.nowMillis()
	type entry struct {
		id   string
		sess *session
	}
	var entries []entry
	ids := s.subjects[tag]
	for id := range ids {
		sess := s.live(id, clock)
		if sess != nil && s.ended(sess, tag, clock) {
			delete(ids, id)
			continue
		}
		if sess == nil || sess.tenant != tenantID || sess.expires <= now.UnixMilli() {
			continue
		}
		if after != nil && after.Covers(sess.created, id) {
			continue
		}
		entries = append(entries, entry{id, sess})
	}
	if ids != nil && len(ids) == 0 {
		delete(s.subjects, tag)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := cmp.Compare(b.sess.created, a.sess.created); c != 0 {
			return c
		}
		return strings.Compare(b.id, a.id)
	})
	next := ""
	if len(entries) > limit {
		last := entries[limit-1]
		next = store.Cursor{CreatedMillis: last.sess.created, SessionID: last.id}.Encode()
		entries = entries[:limit]
	}
	var out []*store.Session
	for _, e := range entries {
		out = append(out, e.sess.export(e.id))
	}
	return out, next, nil
}

// CreateRecord stores a record that must not exist yet.
func (s *Store) CreateRecord(_ context.Context, kind, id string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[kind][id]; ok {
		return fmt.Errorf("memory store: create %s record: %w", kind, store.ErrExists)
	}
	s.putRecord(kind, id, value)
	return nil
}

// PutRecord stores a record, replacing any previous value.
func (s *Store) PutRecord(_ context.Context, kind, id string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putRecord(kind, id, value)
	return nil
}

func (s *Store) putRecord(kind, id string, value []byte) {
	byID := s.records[kind]
	if byID == nil {
		byID = make(map[string][]byte)
		s.records[kind] = byID
	}
	byID[id] = append([]byte{}, value...)
}

// GetRecord returns a record, or store.ErrNotFound.
func (s *Store) GetRecord(_ context.Context, kind, id string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.records[kind][id]
	if !ok {
		return nil, fmt.Errorf("memory store: get %s record: %w", kind, store.ErrNotFound)
	}
	return append([]byte{}, v...), nil
}

// SwapRecord replaces a record's value with value if it is still old, and reports whether it
// did; a missing record is store.ErrNotFound.
func (s *Store) SwapRecord(_ context.Context, kind, id string, old, value []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.records[kind][id]
	if !ok {
		return false, fmt.Errorf("memory store: swap %s record: %w", kind, store.ErrNotFound)
	}
	if !bytes.Equal(cur, old) {
		return false, nil
	}
	s.putRecord(kind, id, value)
	return true, nil
}

// UpdateRecord is store.UpdateRecord on s: fn runs outside the store's lock, and its result is
// stored only if the record has not changed meanwhile.
func (s *Store) UpdateRecord(ctx context.Context, kind, id string, fn func(old []byte) ([]byte, error)) ([]byte, error) {
	return store.UpdateRecord(ctx, s, kind, id, fn)
}

// DeleteRecord deletes a record and reports whether it existed.
func (s *Store) DeleteRecord(_ context.Context, kind, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteRecord(kind, id), nil
}

// DeleteRecordIf deletes a record if it still holds value, and reports whether it did.
func (s *Store) DeleteRecordIf(_ context.Context, kind, id string, value []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.records[kind][id]
	if !ok || !bytes.Equal(cur, value) {
		return false, nil
	}
	return s.deleteRecord(kind, id), nil
}

// deleteRecord deletes a record and reports whether it existed. The caller holds s.mu.
func (s *Store) deleteRecord(kind, id string) bool {
	if _, ok := s.records[kind][id]; !ok {
		return false
	}
	delete(s.records[kind], id)
	if len(s.records[kind]) == 0 {
		delete(s.records, kind)
	}
	return true
}

// ListRecords returns every record of kind whose id starts with prefix, ordered by id.
func (s *Store) ListRecords(_ context.Context, kind, prefix string) ([]store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Record
	for id, v := range s.records[kind] {
		if strings.HasPrefix(id, prefix) {
			out = append(out, store.Record{ID: id, Value: append([]byte{}, v...)})
		}
	}
	slices.SortFunc(out, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ListRecordsPage returns up to limit records of kind whose id starts with prefix and sorts after
// after, ordered by id, and the after of the next page ("" on the last).
func (s *Store) ListRecordsPage(_ context.Context, kind, prefix, after string, limit int) ([]store.Record, string, error) {
	if limit < 1 {
		return nil, "", fmt.Errorf("memory store: list %s records: page limit %d is not positive", kind, limit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.records[kind] {
		if strings.HasPrefix(id, prefix) && id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > limit {
		ids = ids[:limit]
		next = ids[limit-1]
	}
	out := make([]store.Record, 0, len(ids))
	for _, id := range ids {
		out = append(out, store.Record{ID: id, Value: append([]byte{}, s.records[kind][id]...)})
	}
	return out, next, nil
}

// CreateOwnedRecord stores a record that must not exist yet and lists it under owner, unless
// owner lists limit records of kind already (limit > 0).
func (s *Store) CreateOwnedRecord(_ context.Context, kind, owner, id string, value []byte, limit int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[kind][id]; ok {
		return fmt.Errorf("memory store: create %s record: %w", kind, store.ErrExists)
	}
	if limit > 0 && len(s.owners[ownerKey{kind, owner}]) >= limit {
		return fmt.Errorf("memory store: create %s record: %d listed: %w", kind, limit, store.ErrLimit)
	}
	s.putRecord(kind, id, value)
	s.own(kind, owner, id)
	return nil
}

// PutOwnedRecord stores a record, replacing any previous value, and lists it under owner.
func (s *Store) PutOwnedRecord(_ context.Context, kind, owner, id string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putRecord(kind, id, value)
	s.own(kind, owner, id)
	return nil
}

// own lists kind/id under owner. The caller holds s.mu.
func (s *Store) own(kind, owner, id string) bool {
	k := ownerKey{kind, owner}
	ids := s.owners[k]
	if ids == nil {
		ids = make(map[string]bool)
		s.owners[k] = ids
	}
	if ids[id] {
		return false
	}
	ids[id] = true
	return true
}

// DeleteOwnedRecord deletes a record and owner's entry of it, and reports whether the record
// existed.
func (s *Store) DeleteOwnedRecord(_ context.Context, kind, owner, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ownerKey{kind, owner}
	delete(s.owners[k], id)
	if len(s.owners[k]) == 0 {
		delete(s.owners, k)
	}
	return s.deleteRecord(kind, id), nil
}

// ListOwnedRecords returns the records of kind that owner lists, ordered by id.
func (s *Store) ListOwnedRecords(_ context.Context, kind, owner string) ([]store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Record
	for id := range s.owners[ownerKey{kind, owner}] {
		if v, ok := s.records[kind][id]; ok {
			out = append(out, store.Record{ID: id, Value: append([]byte{}, v...)})
		}
	}
	slices.SortFunc(out, func(a, b store.Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// OwnRecords lists under owner those of the records kind/ids that exist, and returns how many it
// added.
func (s *Store) OwnRecords(_ context.Context, kind, owner string, ids []string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	added := 0
	for _, id := range ids {
		if _, ok := s.records[kind][id]; ok && s.own(kind, owner, id) {
			added++
		}
	}
	return added, nil
}

func (s *Store) nowMillis() int64 { return s.now().UnixMilli() }

// live returns the session if it exists and has not expired; an expired one is removed. The
// caller holds s.mu.
func (s *Store) live(id string, now int64) *session {
	sess, ok := s.sessions[id]
	if !ok {
		return nil
	}
	if now >= sess.expires {
		tag, _ := store.SessionTag(id)
		s.deleteSession(id, tag)
		return nil
	}
	return sess
}

// deleteSession removes a session and its index entry. The caller holds s.mu.
func (s *Store) deleteSession(id, tag string) {
	delete(s.sessions, id)
	if ids := s.subjects[tag]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(s.subjects, tag)
		}
	}
}

// cutoff returns the live cut-off of key, or the zero time. The caller holds s.mu.
func (s *Store) cutoff(cuts map[string]cutoff, key string, now int64) time.Time {
	c, ok := cuts[key]
	if !ok {
		return time.Time{}
	}
	if now >= c.expires {
		delete(cuts, key)
		return time.Time{}
	}
	return fromMillis(c.at)
}

// ended reports whether the subject's or the tenant's cut-off ended sess. The caller holds s.mu.
func (s *Store) ended(sess *session, tag string, now int64) bool {
	created := fromMillis(sess.created)
	return store.EndedBy(created, s.cutoff(s.subjCuts, tag, now)) || store.EndedBy(created, s.cutoff(s.tenCuts, sess.tenant, now))
}

// wrote counts a write and sweeps expired entries every sweepEvery writes, or every
// entries/2 writes when there are more entries. The caller holds s.mu.
func (s *Store) wrote(now int64) {
	s.writes++
	entries := len(s.sessions) + len(s.revoked) + len(s.notices) + len(s.subjCuts) + len(s.tenCuts)
	if s.writes < max(sweepEvery, entries/2) {
		return
	}
	s.writes = 0
	for id := range s.sessions {
		s.live(id, now)
	}
	for jti, until := range s.revoked {
		if now >= until {
			delete(s.revoked, jti)
		}
	}
	for key, n := range s.notices {
		if now >= n.expires {
			delete(s.notices, key)
		}
	}
	for _, cuts := range []map[string]cutoff{s.subjCuts, s.tenCuts} {
		for key := range cuts {
			s.cutoff(cuts, key, now)
		}
	}
}

// export returns a copy of the session as store.Session.
func (sess *session) export(id string) *store.Session {
	return &store.Session{
		ID:          id,
		Tenant:      sess.tenant,
		Subject:     sess.subject,
		Audience:    slices.Clone(sess.audience),
		Scopes:      slices.Clone(sess.scopes),
		Extra:       bytes.Clone(sess.extra),
		Metadata:    sess.metadata,
		CreatedAt:   fromMillis(sess.created),
		ExpiresAt:   fromMillis(sess.expires),
		AccessTTL:   time.Duration(sess.accessTTL) * time.Millisecond,
		Generation:  sess.generation,
		RefreshHash: append([]byte{}, sess.hash...),
		RotatedAt:   fromMillis(sess.rotated),

		CertThumbprint: sess.certBound,
	}
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
