// Package revocation carries revocation events from the replica that records a revocation to every
// watcher of WatchRevocations, on any replica. Events live in one bounded, ordered log per tenant,
// shared through the store (a Redis stream, or memory for the dev default); a best-effort
// notification wakes the watchers of a tenant as soon as an event is appended, and a poll every
// second covers a lost notification.
//
// A log keeps every event until it stops mattering (its ExpiresAt, and at most Retention, which
// covers the longest access-token lifetime): it never drops an event that still matters to make
// room, so a watcher that reconnects with its last cursor, or replays the log from its start,
// misses nothing still relevant. When the log cannot prove that, because entries after the cursor
// were trimmed, the cursor is beyond the log's newest entry, or the log itself was lost, the watcher
// is told to resynchronise: drop what it derived from events and replay the log from its oldest
// entry.
//
// A log's room is bounded per tenant (DefaultCap entries): when it holds that many events and the
// oldest still matters, a revocation of one token or session is refused before anything is
// recorded (ErrFull, see Log.Room), while cut-offs, which cover any number of sessions in one
// event, and key events are always appended.
package revocation

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind says what an event covers. The values match the RevocationKind enum of the API.
type Kind int

// The kinds of events.
const (
	// KindToken revokes one access token: Value is its jti.
	KindToken Kind = iota + 1
	// KindSession ends one session: Value is the session id.
	KindSession
	// KindSubjectCutoff ends every session of a subject opened at or before Cutoff: Value is the
	// subject.
	KindSubjectCutoff
	// KindTenantCutoff ends every session of the tenant opened at or before Cutoff.
	KindTenantCutoff
	// KindKeyWithdrawn withdraws a signing key: Value is its kid.
	KindKeyWithdrawn
	// KindKeyPublished publishes a signing key: Value is its kid.
	KindKeyPublished
)

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool { return k >= KindToken && k <= KindKeyPublished }

// Event is one entry of a tenant's log.
type Event struct {
	// Cursor is the event's position, set by the log.
	Cursor string
	Kind   Kind
	// Value is the jti, session id, subject or kid, by Kind. For KindTenantCutoff it is empty,
	// or TenantDeleted(incarnation) when the cut-off is the tenant's deletion.
	Value string
	// Cutoff is set for the cut-off kinds.
	Cutoff time.Time
	// ExpiresAt is when the event stops mattering: every token it covers has expired by then.
	ExpiresAt time.Time
}

// deletedPrefix starts the Value of a tenant cut-off that deletes the tenant.
const deletedPrefix = "deleted:"

// TenantDeleted is the Value of the KindTenantCutoff event that a tenant's deletion appends,
// naming the incarnation deleted. Since it is appended before the tenant's record goes, it comes
// before every event of a tenant created again under the same id: a watch of the deleted
// incarnation that stops at it never sees the next tenant's events. To a watcher it is a plain
// tenant cut-off.
func TenantDeleted(incarnation string) string { return deletedPrefix + incarnation }

// DeletedIncarnation returns the incarnation whose deletion ev records, if it records one.
func (ev Event) DeletedIncarnation() (string, bool) {
	if ev.Kind != KindTenantCutoff {
		return "", false
	}
	return strings.CutPrefix(ev.Value, deletedPrefix)
}

// Log is the tenants' event logs. Implementations are shared by every replica of the service.
//
// Entries are trimmed oldest first once they stop mattering: past their ExpiresAt or older than
// the log's retention. An entry that stopped mattering behind one that still matters waits for it
// (at most the retention). A call trims at most TrimBatch entries, and never the newest, so that
// no call's cost grows with the log's length.
type Log interface {
	// Append adds ev to the tenant's log, whatever its length (the caller asked Room first when ev
	// may be refused), and trims it.
	Append(ctx context.Context, tenant string, ev Event) error
	// Room trims the tenant's log and reports whether it can take one more event of one token or
	// session: ErrFull when it holds its cap of entries and the oldest still matters. Concurrent
	// callers may all be told there is room: the cap is exceeded by at most their number.
	Room(ctx context.Context, tenant string) error
	// Read returns at most limit events after the cursor (Start for the oldest retained entry),
	// oldest first. resync is true, with no events, when entries after the cursor may have been
	// lost: trimmed, or the log was lost (or never existed, for a cursor other than Start); and when
	// the cursor is beyond the newest entry, since entries appended later could sort before it.
	Read(ctx context.Context, tenant, after string, limit int) (events []Event, resync bool, err error)
	// Head returns the cursor of the tenant's newest entry, Start when the log is empty.
	Head(ctx context.Context, tenant string) (string, error)
	// Notifications delivers, best effort, a notice (Notice) for each append, until ctx ends.
	Notifications(ctx context.Context) <-chan string
}

// keyNoticePrefix marks the notice of a signing-key event; tenant ids hold no colon.
const keyNoticePrefix = "k:"

// Notice is what a log announces when tenant's log grows by an event of kind: the tenant, marked
// when the event is about a signing key (published or withdrawn), the one kind that makes
// replicas re-read the tenant's key set at once.
func Notice(tenant string, kind Kind) string {
	if kind == KindKeyPublished || kind == KindKeyWithdrawn {
		return keyNoticePrefix + tenant
	}
	return tenant
}

// ParseNotice returns the tenant of a notice and whether its event was about a signing key.
func ParseNotice(n string) (tenant string, key bool) {
	if t, ok := strings.CutPrefix(n, keyNoticePrefix); ok {
		return t, true
	}
	return n, false
}

// Start is the cursor before every entry: reading after it replays the whole retained log.
const Start = "0"

// DefaultCap bounds the entries of a tenant's log that Room admits: beyond it, revocations of single
// tokens and sessions are refused (ErrFull) until entries stop mattering. About 90 bytes an entry
// in Redis (a 55-byte jti): some 9 MB per tenant at the cap.
const DefaultCap = 100_000

// TrimBatch bounds how many entries one call to a log trims.
const TrimBatch = 100

var (
	// ErrBadCursor is returned for a cursor that no log hands out.
	ErrBadCursor = errors.New("not a cursor this service returned")
	// ErrFull is returned by Log.Room when a tenant's log holds its cap of events that still matter.
	ErrFull = errors.New("the tenant's revocation log is full of events that still matter")
)

// ID is a parsed cursor: the position of an entry, ordered by (MS, Seq). Cursors are Redis stream
// entry ids, "<unix ms>-<sequence>", for both backends.
type ID struct {
	MS, Seq uint64
}

// maxCursorLen bounds a cursor: two 20-digit numbers and a dash.
const maxCursorLen = 41

// MaxCursorPart bounds both numbers of a cursor. No log hands out more: a millisecond clock reaches
// it in the year 287,396 and a sequence counts the entries of one millisecond; and the logs'
// scripts compute in Lua numbers, which are exact only below 2^53. The greatest stream id, which
// has no successor to read from, is thus refused.
const MaxCursorPart = 1<<53 - 1

// ParseCursor parses a cursor from outside: Start or "<ms>-<seq>" in decimal without signs or
// leading zeros, each at most MaxCursorPart.
func ParseCursor(s string) (ID, error) {
	if s == Start {
		return ID{}, nil
	}
	if len(s) > maxCursorLen {
		return ID{}, ErrBadCursor
	}
	ms, seq, ok := strings.Cut(s, "-")
	if !ok {
		return ID{}, ErrBadCursor
	}
	a, err1 := parseDecimal(ms)
	b, err2 := parseDecimal(seq)
	if err1 != nil || err2 != nil || a == 0 && b == 0 {
		return ID{}, ErrBadCursor // "0-0" is Start, which is spelt "0".
	}
	if a > MaxCursorPart || b > MaxCursorPart {
		return ID{}, ErrBadCursor
	}
	return ID{MS: a, Seq: b}, nil
}

func parseDecimal(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, ErrBadCursor
	}
	return strconv.ParseUint(s, 10, 64)
}

// String formats the id as a cursor.
func (id ID) String() string {
	if id == (ID{}) {
		return Start
	}
	return fmt.Sprintf("%d-%d", id.MS, id.Seq)
}

// Compare orders ids: -1, 0 or +1.
func (id ID) Compare(o ID) int {
	switch {
	case id.MS < o.MS:
		return -1
	case id.MS > o.MS:
		return 1
	case id.Seq < o.Seq:
		return -1
	case id.Seq > o.Seq:
		return 1
	}
	return 0
}

// Retention is how long a log must keep an event so that a reconnecting watcher misses nothing
// still relevant: the longest access-token lifetime plus the verification leeway and a margin.
func Retention(maxAccessTTL, leeway time.Duration) time.Duration {
	return maxAccessTTL + leeway + time.Minute
}
