package memory

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
)

// Events is the in-memory revocation log: one list of events per tenant, with the same cursors,
// trimming, room and resynchronisation rules as the Redis stream. It is safe for concurrent use.
type Events struct {
	now       func() time.Time
	retention time.Duration
	limit     int

	mu      sync.Mutex
	tenants map[string]*eventList
	subs    map[chan string]struct{}
}

// eventList is one tenant's log. Its floor is the cursor below which entries may be missing: the
// first entry's when the list was created (a cursor from before is from a lost log), then the last
// trimmed entry's.
type eventList struct {
	entries []entry
	last    revocation.ID
	floor   revocation.ID
	expires int64 // unix ms: the list goes when nothing was appended for the retention
}

type entry struct {
	id revocation.ID
	ev revocation.Event
}

// NewEvents returns an empty log that keeps events for retention at most and admits events of
// single tokens and sessions while a tenant has fewer than limit (revocation.DefaultCap when zero),
// reading the time from now (time.Now when nil).
func NewEvents(now func() time.Time, retention time.Duration, limit int) *Events {
	if now == nil {
		now = time.Now
	}
	if limit <= 0 {
		limit = revocation.DefaultCap
	}
	return &Events{now: now, retention: retention, limit: limit,
		tenants: make(map[string]*eventList), subs: make(map[chan string]struct{})}
}

// list returns the tenant's live list, nil when it has none; it drops an expired one. The caller
// holds e.mu.
func (e *Events) list(tenant string, nowMS int64) *eventList {
	l := e.tenants[tenant]
	if l != nil && l.expires <= nowMS {
		delete(e.tenants, tenant)
		return nil
	}
	return l
}

// Append adds ev to the tenant's list, then trims it.
func (e *Events) Append(_ context.Context, tenant string, ev revocation.Event) error {
	nowMS := e.now().UnixMilli()
	e.mu.Lock()
	l := e.list(tenant, nowMS)
	created := l == nil
	if created {
		l = &eventList{}
		e.tenants[tenant] = l
	}
	l.add(nowMS, ev)
	if created {
		l.floor = l.last
	}
	e.trim(l, nowMS)
	l.expires = nowMS + e.retention.Milliseconds()
	subs := make([]chan string, 0, len(e.subs))
	for ch := range e.subs {
		subs = append(subs, ch)
	}
	e.mu.Unlock()
	n := revocation.Notice(tenant, ev.Kind)
	for _, ch := range subs {
		select {
		case ch <- n:
		default: // Best effort: the watches poll as well.
		}
	}
	return nil
}

// Room trims the tenant's list and reports revocation.ErrFull when it holds the cap of entries and
// the oldest still matters.
func (e *Events) Room(_ context.Context, tenant string) error {
	nowMS := e.now().UnixMilli()
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.list(tenant, nowMS)
	if l == nil {
		return nil
	}
	e.trim(l, nowMS)
	if len(l.entries) >= e.limit && !e.dead(l.entries[0], nowMS) {
		return revocation.ErrFull
	}
	return nil
}

// trim drops, oldest first, the entries that stopped mattering, as the Redis script does: it stops
// at a live one, drops at most revocation.TrimBatch, and keeps the newest. The caller holds e.mu.
func (e *Events) trim(l *eventList, nowMS int64) {
	n := 0
	for n < len(l.entries)-1 && n < revocation.TrimBatch && e.dead(l.entries[n], nowMS) {
		n++
	}
	if n > 0 {
		l.floor = maxID(l.floor, l.entries[n-1].id)
		clear(l.entries[:n]) // The backing array outlives the slice until append moves it.
		l.entries = l.entries[n:]
	}
}

// dead reports whether an entry stopped mattering: older than the retention, or past its expiry.
func (e *Events) dead(en entry, nowMS int64) bool {
	return int64(en.id.MS) < nowMS-e.retention.Milliseconds() || en.ev.ExpiresAt.UnixMilli() <= nowMS
}

// add appends an entry with the next id at nowMS, as Redis does for "<ms>-*" (never going back).
func (l *eventList) add(nowMS int64, ev revocation.Event) {
	id := revocation.ID{MS: uint64(max(nowMS, 0))}
	if id.MS <= l.last.MS {
		id = revocation.ID{MS: l.last.MS, Seq: l.last.Seq + 1}
	}
	l.last = id
	ev.Cursor = id.String()
	l.entries = append(l.entries, entry{id: id, ev: ev})
}

func maxID(a, b revocation.ID) revocation.ID {
	if a.Compare(b) < 0 {
		return b
	}
	return a
}

// Read returns the events after the cursor.
func (e *Events) Read(_ context.Context, tenant, after string, limit int) ([]revocation.Event, bool, error) {
	from, err := revocation.ParseCursor(after)
	if err != nil {
		return nil, false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.list(tenant, e.now().UnixMilli())
	fromStart := after == revocation.Start
	if l == nil {
		return nil, !fromStart, nil
	}
	// Behind the floor, entries may be missing; beyond the newest entry (never trimmed), the cursor
	// was not handed out by this list, and entries appended later could sort before it.
	if !fromStart && (from.Compare(l.floor) < 0 || from.Compare(l.last) > 0) {
		return nil, true, nil
	}
	var out []revocation.Event
	i := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].id.Compare(from) > 0 })
	for _, en := range l.entries[i:] {
		if len(out) == limit {
			break
		}
		out = append(out, en.ev)
	}
	return out, false, nil
}

// Head returns the cursor of the tenant's newest entry.
func (e *Events) Head(_ context.Context, tenant string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.list(tenant, e.now().UnixMilli())
	if l == nil || len(l.entries) == 0 {
		return revocation.Start, nil
	}
	return l.entries[len(l.entries)-1].id.String(), nil
}

// Notifications delivers the notices (revocation.Notice) of appends, until ctx ends.
func (e *Events) Notifications(ctx context.Context) <-chan string {
	in := make(chan string, 64)
	out := make(chan string)
	e.mu.Lock()
	e.subs[in] = struct{}{}
	e.mu.Unlock()
	go func() {
		defer close(out)
		defer func() {
			e.mu.Lock()
			delete(e.subs, in)
			e.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case tenant := <-in:
				select {
				case out <- tenant:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
