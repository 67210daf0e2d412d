package storetest

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
)

// EventsRetention and EventsCap are the retention and cap of the logs that RunEvents asks for.
const (
	EventsRetention = time.Hour
	EventsCap       = 4
)

// RunEvents runs the conformance suite of revocation logs. newLog returns a log with no events for
// any tenant, that keeps events for EventsRetention, has room for EventsCap per tenant and reads
// the time from clock.
func RunEvents(t *testing.T, newLog func(t *testing.T, clock *Clock) revocation.Log) {
	for _, tt := range eventTests {
		t.Run(tt.name, func(t *testing.T) {
			clock := NewClock(time.Now().Truncate(time.Millisecond).UTC())
			tt.run(t, &eventFixture{ctx: context.Background(), log: newLog(t, clock), clock: clock})
		})
	}
}

type eventFixture struct {
	ctx   context.Context
	log   revocation.Log
	clock *Clock
}

func (f *eventFixture) append(t *testing.T, tenantID string, ev revocation.Event) {
	t.Helper()
	if err := f.log.Append(f.ctx, tenantID, ev); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// appendN appends n token events with values "j0".."jn-1" and returns them as Read returns them.
func (f *eventFixture) appendN(t *testing.T, tenantID string, n int) []revocation.Event {
	t.Helper()
	for i := range n {
		f.append(t, tenantID, tokenEvent(f.clock, "j"+string(rune('0'+i))))
	}
	evs, resync := f.read(t, tenantID, revocation.Start, 100)
	if resync {
		t.Fatalf("Read from Start ordered a resync")
	}
	return evs
}

func (f *eventFixture) read(t *testing.T, tenantID, after string, limit int) ([]revocation.Event, bool) {
	t.Helper()
	evs, resync, err := f.log.Read(f.ctx, tenantID, after, limit)
	if err != nil {
		t.Fatalf("Read(%q): %v", after, err)
	}
	return evs, resync
}

func (f *eventFixture) head(t *testing.T, tenantID string) string {
	t.Helper()
	h, err := f.log.Head(f.ctx, tenantID)
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

func tokenEvent(clock *Clock, jti string) revocation.Event {
	return eventExpiring(jti, clock.Now().Add(15*time.Minute))
}

// eventExpiring is the revocation of a token that stops mattering at exp.
func eventExpiring(jti string, exp time.Time) revocation.Event {
	return revocation.Event{Kind: revocation.KindToken, Value: jti, ExpiresAt: exp}
}

func values(evs []revocation.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.Value)
	}
	return out
}

func wantValues(t *testing.T, what string, evs []revocation.Event, want ...string) {
	t.Helper()
	if got := values(evs); !reflect.DeepEqual(got, want) && (len(got) != 0 || len(want) != 0) {
		t.Errorf("%s: events %q, want %q", what, got, want)
	}
}

var eventTests = []eventTest{
	{"EmptyLog", func(t *testing.T, f *eventFixture) {
		if h := f.head(t, acme); h != revocation.Start {
			t.Errorf("Head of an empty log = %q, want %q", h, revocation.Start)
		}
		if evs, resync := f.read(t, acme, revocation.Start, 10); resync || len(evs) != 0 {
			t.Errorf("Read(Start) of an empty log = %v, resync %v; want nothing", evs, resync)
		}
		// A cursor other than Start names an entry of a log that does not exist (any more).
		if _, resync := f.read(t, acme, "1700000000000-3", 10); !resync {
			t.Errorf("Read(cursor) of an empty log did not order a resync")
		}
	}},
	{"RoundTripsEveryField", func(t *testing.T, f *eventFixture) {
		cut := f.clock.Now().Add(-time.Second)
		exp := f.clock.Now().Add(time.Hour)
		in := []revocation.Event{
			{Kind: revocation.KindToken, Value: "sid.jti", ExpiresAt: exp},
			{Kind: revocation.KindSession, Value: "sid", ExpiresAt: exp},
			{Kind: revocation.KindSubjectCutoff, Value: "alice@example.com", Cutoff: cut, ExpiresAt: exp},
			{Kind: revocation.KindTenantCutoff, Cutoff: cut, ExpiresAt: exp},
		}
		for _, ev := range in {
			f.append(t, acme, ev)
		}
		got, resync := f.read(t, acme, revocation.Start, 10)
		if resync || len(got) != len(in) {
			t.Fatalf("Read(Start) = %d events, resync %v; want %d", len(got), resync, len(in))
		}
		for i, ev := range got {
			want := in[i]
			if ev.Kind != want.Kind || ev.Value != want.Value || !ev.Cutoff.Equal(want.Cutoff) ||
				!ev.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("event %d = %+v, want %+v", i, ev, want)
			}
			if _, err := revocation.ParseCursor(ev.Cursor); err != nil || ev.Cursor == revocation.Start {
				t.Errorf("event %d has cursor %q", i, ev.Cursor)
			}
		}
		if h := f.head(t, acme); h != got[len(got)-1].Cursor {
			t.Errorf("Head = %q, want the last event's cursor %q", h, got[len(got)-1].Cursor)
		}
	}},
	{"CursorsFollowTheClockAndIncrease", func(t *testing.T, f *eventFixture) {
		evs := f.appendN(t, acme, 3) // All in one millisecond of the clock.
		f.clock.Advance(5 * time.Millisecond)
		evs = append(evs, f.appendN(t, acme, 1)...)
		evs = evs[len(evs)-4:]
		var prev revocation.ID
		for i, ev := range evs {
			id, err := revocation.ParseCursor(ev.Cursor)
			if err != nil {
				t.Fatalf("cursor %q: %v", ev.Cursor, err)
			}
			if i > 0 && prev.Compare(id) >= 0 {
				t.Errorf("cursor %q does not follow %q", ev.Cursor, prev)
			}
			prev = id
		}
		if last, _ := revocation.ParseCursor(evs[3].Cursor); last.MS != uint64(f.clock.Now().UnixMilli()) {
			t.Errorf("cursor %q is not at the clock's millisecond %d", evs[3].Cursor, f.clock.Now().UnixMilli())
		}
	}},
	{"ReadsAfterACursorInPages", func(t *testing.T, f *eventFixture) {
		evs := f.appendN(t, acme, 4)
		page, _ := f.read(t, acme, revocation.Start, 2)
		wantValues(t, "first page", page, "j0", "j1")
		page, _ = f.read(t, acme, page[1].Cursor, 2)
		wantValues(t, "second page", page, "j2", "j3")
		page, resync := f.read(t, acme, evs[3].Cursor, 2)
		wantValues(t, "after the last", page)
		if resync {
			t.Errorf("Read after the newest entry ordered a resync")
		}
	}},
	{"TenantsAreSeparate", func(t *testing.T, f *eventFixture) {
		f.appendN(t, acme, 2)
		if evs, _ := f.read(t, globex, revocation.Start, 10); len(evs) != 0 {
			t.Errorf("globex sees acme's events: %v", values(evs))
		}
		if h := f.head(t, globex); h != revocation.Start {
			t.Errorf("Head of globex = %q", h)
		}
	}},
	{"CursorFromBeforeTheLogResyncs", func(t *testing.T, f *eventFixture) {
		// A cursor older than the log's first entry is from a log that was lost.
		old := revocation.ID{MS: uint64(f.clock.Now().Add(-time.Minute).UnixMilli())}.String()
		f.appendN(t, acme, 1)
		if _, resync := f.read(t, acme, old, 10); !resync {
			t.Errorf("Read(%q) from before the log did not order a resync", old)
		}
	}},
	{"TrimsByAge", func(t *testing.T, f *eventFixture) {
		// Events that matter longer than the retention: only their age trims them.
		long := func(jti string) revocation.Event { return eventExpiring(jti, f.clock.Now().Add(2*EventsRetention)) }
		f.append(t, acme, long("j0"))
		first := f.head(t, acme)
		f.clock.Advance(EventsRetention / 2)
		f.append(t, acme, long("k1"))
		f.clock.Advance(EventsRetention/2 + time.Second)
		f.append(t, acme, long("k2"))
		evs, _ := f.read(t, acme, revocation.Start, 10)
		wantValues(t, "after the retention", evs, "k1", "k2")
		// The watcher that saw the trimmed event misses nothing.
		evs, resync := f.read(t, acme, first, 10)
		if resync {
			t.Errorf("Read after the last trimmed entry ordered a resync")
		}
		wantValues(t, "after the trimmed entry", evs, "k1", "k2")
	}},
	{"TrimsByExpiryAndResyncsThoseBehind", func(t *testing.T, f *eventFixture) {
		t0 := f.clock.Now()
		var cursors []string
		for _, ev := range []revocation.Event{
			eventExpiring("j0", t0.Add(time.Minute)), eventExpiring("j1", t0.Add(2*time.Minute)),
			eventExpiring("j2", t0.Add(30*time.Minute)),
		} {
			f.append(t, acme, ev)
			cursors = append(cursors, f.head(t, acme))
		}
		f.clock.Advance(2 * time.Minute) // j0 and j1 stop mattering; j2 still does.
		f.append(t, acme, tokenEvent(f.clock, "k"))
		evs, _ := f.read(t, acme, revocation.Start, 10)
		wantValues(t, "after j0 and j1 expired", evs, "j2", "k")
		if _, resync := f.read(t, acme, cursors[0], 10); !resync {
			t.Errorf("Read behind a trimmed entry did not order a resync")
		}
		evs, resync := f.read(t, acme, cursors[1], 10)
		if resync {
			t.Errorf("Read after the last trimmed entry ordered a resync")
		}
		wantValues(t, "after the last trimmed entry", evs, "j2", "k")
	}},
	{"TrimsOnlyFromTheOldestEnd", func(t *testing.T, f *eventFixture) {
		// An expired event behind one that still matters waits for it: a watcher behind the
		// expired one must not be told it missed nothing while the live one is kept.
		t0 := f.clock.Now()
		f.append(t, acme, eventExpiring("j0", t0.Add(30*time.Minute)))
		f.append(t, acme, eventExpiring("j1", t0.Add(time.Minute)))
		f.clock.Advance(2 * time.Minute)
		f.append(t, acme, tokenEvent(f.clock, "k"))
		evs, _ := f.read(t, acme, revocation.Start, 10)
		wantValues(t, "after j1 expired behind j0", evs, "j0", "j1", "k")
	}},
	{"NeverTrimsALiveEventToMakeRoom", func(t *testing.T, f *eventFixture) {
		f.append(t, acme, tokenEvent(f.clock, "genuine"))
		first := f.head(t, acme)
		var want []string
		for i := range EventsCap + 2 {
			v := "j" + string(rune('0'+i))
			f.append(t, acme, tokenEvent(f.clock, v))
			want = append(want, v)
		}
		evs, _ := f.read(t, acme, revocation.Start, 100)
		wantValues(t, "beyond the cap", evs, append([]string{"genuine"}, want...)...)
		evs, resync := f.read(t, acme, first, 100)
		if resync {
			t.Errorf("Read after the first entry ordered a resync though nothing was trimmed")
		}
		wantValues(t, "after the first entry", evs, want...)
	}},
	{"RoomRefusesWhenFullOfLiveEvents", func(t *testing.T, f *eventFixture) {
		if err := f.log.Room(f.ctx, acme); err != nil {
			t.Fatalf("Room of a log that does not exist = %v", err)
		}
		var cursors []string
		for i := range EventsCap {
			if err := f.log.Room(f.ctx, acme); err != nil {
				t.Fatalf("Room with %d live events (cap %d) = %v", i, EventsCap, err)
			}
			f.append(t, acme, eventExpiring("j"+string(rune('0'+i)), f.clock.Now().Add(time.Minute)))
			cursors = append(cursors, f.head(t, acme))
		}
		if err := f.log.Room(f.ctx, acme); !errors.Is(err, revocation.ErrFull) {
			t.Fatalf("Room with the cap of live events = %v, want ErrFull", err)
		}
		if err := f.log.Room(f.ctx, globex); err != nil {
			t.Errorf("Room of another tenant = %v", err)
		}
		// Cut-offs and key events are appended all the same, and trim nothing that matters.
		f.append(t, acme, revocation.Event{Kind: revocation.KindTenantCutoff, Cutoff: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Hour)})
		f.append(t, acme, revocation.Event{Kind: revocation.KindKeyWithdrawn, Value: "kid", ExpiresAt: f.clock.Now().Add(time.Hour)})
		evs, _ := f.read(t, acme, revocation.Start, 100)
		wantValues(t, "beyond the cap", evs, "j0", "j1", "j2", "j3", "", "kid")
		if err := f.log.Room(f.ctx, acme); !errors.Is(err, revocation.ErrFull) {
			t.Errorf("Room beyond the cap = %v, want ErrFull", err)
		}
		// Once they stop mattering, Room itself trims them, with the same floor rules.
		f.clock.Advance(time.Minute)
		if err := f.log.Room(f.ctx, acme); err != nil {
			t.Errorf("Room once the events expired = %v", err)
		}
		evs, _ = f.read(t, acme, revocation.Start, 100)
		wantValues(t, "after Room trimmed", evs, "", "kid")
		if _, resync := f.read(t, acme, cursors[2], 100); !resync {
			t.Errorf("Read behind an entry that Room trimmed did not order a resync")
		}
		if _, resync := f.read(t, acme, cursors[3], 100); resync {
			t.Errorf("Read after the last entry that Room trimmed ordered a resync")
		}
	}},
	{"TrimsABoundedBatchPerCall", func(t *testing.T, f *eventFixture) {
		const left = EventsCap + 1
		n := revocation.TrimBatch + left
		var want []string
		for i := range n {
			f.append(t, acme, eventExpiring("j"+strconv.Itoa(i), f.clock.Now().Add(time.Minute)))
			if i >= n-left {
				want = append(want, "j"+strconv.Itoa(i))
			}
		}
		f.clock.Advance(time.Minute)
		// One call trims one batch: more than the cap is left, but the oldest stopped mattering.
		if err := f.log.Room(f.ctx, acme); err != nil {
			t.Errorf("Room with expired events left to trim = %v", err)
		}
		evs, _ := f.read(t, acme, revocation.Start, 1000)
		wantValues(t, "after one call", evs, want...)
		if err := f.log.Room(f.ctx, acme); err != nil {
			t.Errorf("Room = %v", err)
		}
		evs, _ = f.read(t, acme, revocation.Start, 1000)
		wantValues(t, "after the second call (the newest stays)", evs, want[left-1])
	}},
	{"CursorBeyondTheNewestResyncs", func(t *testing.T, f *eventFixture) {
		evs := f.appendN(t, acme, 2)
		newest, err := revocation.ParseCursor(evs[1].Cursor)
		if err != nil {
			t.Fatal(err)
		}
		if _, resync := f.read(t, acme, newest.String(), 10); resync {
			t.Errorf("Read after the newest entry ordered a resync")
		}
		for _, c := range []revocation.ID{
			{MS: newest.MS, Seq: newest.Seq + 1},
			{MS: newest.MS + 60_000},
			{MS: revocation.MaxCursorPart, Seq: revocation.MaxCursorPart},
		} {
			if got, resync := f.read(t, acme, c.String(), 10); !resync || len(got) != 0 {
				t.Errorf("Read(%v) beyond the newest entry = %v, resync %v; want a resync", c, values(got), resync)
			}
		}
	}},
	{"RejectsMalformedCursors", func(t *testing.T, f *eventFixture) {
		f.appendN(t, acme, 1)
		for _, c := range []string{"x", "1-", "-1", "01-1", "1-1-1", "+", "-", "(1-1", "1-1 ", "99999999999999999999999-0",
			// Well formed, but beyond any id a log hands out; the greatest has no successor.
			"18446744073709551615-18446744073709551615", "9007199254740992-0", "1-9007199254740992"} {
			if _, _, err := f.log.Read(f.ctx, acme, c, 10); !errors.Is(err, revocation.ErrBadCursor) {
				t.Errorf("Read(%q) = %v, want ErrBadCursor", c, err)
			}
		}
	}},
	{"AnnouncesAppends", func(t *testing.T, f *eventFixture) {
		announces(t, f, tokenEvent(f.clock, "j"), false)
	}},
	{"AnnouncesKeyEventsAsSuch", func(t *testing.T, f *eventFixture) {
		announces(t, f, revocation.Event{Kind: revocation.KindKeyWithdrawn, Value: "kid-1", ExpiresAt: f.clock.Now().Add(time.Hour)}, true)
	}},
}

// eventTest is one subtest of the revocation-log suite.
type eventTest struct {
	name string
	run  func(t *testing.T, f *eventFixture)
}

// announces appends ev to acme's log until an announcement arrives, and checks that its notice
// names acme, as a signing-key event or not (key).
func announces(t *testing.T, f *eventFixture, ev revocation.Event, key bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	notes := f.log.Notifications(ctx)
	// A subscription may take a moment to start: append until an announcement arrives.
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case n := <-notes:
			if tenantID, isKey := revocation.ParseNotice(n); tenantID != acme || isKey != key {
				t.Fatalf("announcement %q: tenant %q, key event %v; want %q, %v", n, tenantID, isKey, acme, key)
			}
			cancel()
			for range notes { // Closes once ctx has ended.
			}
			return
		case <-tick.C:
			f.append(t, acme, ev)
		case <-deadline:
			t.Fatalf("no announcement of an append within 10s")
		}
	}
}
