package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
)

var (
	//go:embed scripts/events_append.lua
	eventsAppendSrc    string
	eventsAppendScript = goredis.NewScript(eventsAppendSrc)
)

// eventsChannel is the pub/sub channel on which appends are announced, with their notice
// (revocation.Notice) as payload.
const eventsChannel = "ta:ev"

// Stream entry fields.
const (
	eventKind    = "k"
	eventValue   = "v"
	eventCutoff  = "c"
	eventExpires = "e"
)

// Events is the revocation log on Redis: one stream per tenant (eventsKey), trimmed by age and by
// its events' expiry, never by length, with its floor (eventsFloorKey); appends are announced on
// a pub/sub channel.
type Events struct {
	client    goredis.UniversalClient
	now       func() time.Time
	retention time.Duration
	limit     int
}

// NewEvents returns the log on client, keeping events for retention at most and admitting events
// of single tokens and sessions while a tenant has fewer than limit (revocation.DefaultCap when
// zero), reading the time from now (time.Now when nil). Entry ids and the events' expiry follow
// that clock; the expiry of a whole idle stream follows Redis's.
func NewEvents(client goredis.UniversalClient, now func() time.Time, retention time.Duration, limit int) *Events {
	if now == nil {
		now = time.Now
	}
	if limit <= 0 {
		limit = revocation.DefaultCap
	}
	return &Events{client: client, now: now, retention: retention, limit: limit}
}

// Append adds ev to the tenant's stream in one script: trimming, the floor and the announcement
// happen with it.
func (e *Events) Append(ctx context.Context, tenant string, ev revocation.Event) error {
	if !ev.Kind.Valid() {
		return fmt.Errorf("redis store: append revocation event: %w: kind %d", store.ErrInvalidArgument, ev.Kind)
	}
	var cutoff int64
	if !ev.Cutoff.IsZero() {
		cutoff = ev.Cutoff.UnixMilli()
	}
	err := e.run(ctx, tenant, int(ev.Kind), ev.Value, cutoff, ev.ExpiresAt.UnixMilli()).Err()
	if err != nil {
		return unavailable("append revocation event", err)
	}
	return nil
}

// Room trims the tenant's stream and reports revocation.ErrFull when it holds the cap of entries
// and the oldest still matters: the append script with kind 0.
func (e *Events) Room(ctx context.Context, tenant string) error {
	room, err := e.run(ctx, tenant, 0, "", 0, 0).Int()
	if err != nil {
		return unavailable("check the revocation log's room", err)
	}
	if room == 0 {
		return revocation.ErrFull
	}
	return nil
}

func (e *Events) run(ctx context.Context, tenant string, kind int, value string, cutoff, expires int64) *goredis.Cmd {
	return eventsAppendScript.Run(ctx, e.client, []string{eventsKey(tenant), eventsFloorKey(tenant)},
		e.now().UnixMilli(), e.retention.Milliseconds(), e.limit, kind, value, cutoff, expires,
		eventsChannel, revocation.Notice(tenant, revocation.Kind(kind)), revocation.TrimBatch)
}

// Read returns the events after the cursor, reading the floor, the newest entry and the entries in
// one transaction.
func (e *Events) Read(ctx context.Context, tenant, after string, limit int) ([]revocation.Event, bool, error) {
	from, err := revocation.ParseCursor(after)
	if err != nil {
		return nil, false, err
	}
	start := "-"
	if after != revocation.Start {
		start = "(" + after
	}
	var floorCmd *goredis.StringCmd
	var newestCmd, rangeCmd *goredis.XMessageSliceCmd
	_, err = e.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		floorCmd = p.Get(ctx, eventsFloorKey(tenant))
		newestCmd = p.XRevRangeN(ctx, eventsKey(tenant), "+", "-", 1)
		rangeCmd = p.XRangeN(ctx, eventsKey(tenant), start, "+", int64(limit))
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, false, unavailable("read revocation events", err)
	}
	if after != revocation.Start {
		floor, err := floorCmd.Result()
		if errors.Is(err, goredis.Nil) {
			return nil, true, nil // No stream: lost, expired, or never written.
		}
		f, perr := revocation.ParseCursor(floor)
		if err != nil || perr != nil || from.Compare(f) < 0 {
			return nil, true, nil
		}
		newest, err := newestCmd.Result()
		if err != nil {
			return nil, false, unavailable("read revocation events", err)
		}
		if len(newest) == 0 {
			return nil, true, nil
		}
		// The newest entry is never trimmed, so a cursor beyond it was not handed out by this
		// stream: waiting after it would skip the entries appended until the clock reaches it.
		if n, err := revocation.ParseCursor(newest[0].ID); err != nil || from.Compare(n) > 0 {
			return nil, true, nil
		}
	}
	msgs, err := rangeCmd.Result()
	if err != nil {
		return nil, false, unavailable("read revocation events", err)
	}
	events := make([]revocation.Event, 0, len(msgs))
	for _, m := range msgs {
		ev, ok := parseEvent(m)
		if !ok {
			continue // Written by something else: not ours to interpret.
		}
		events = append(events, ev)
	}
	return events, false, nil
}

func parseEvent(m goredis.XMessage) (revocation.Event, bool) {
	field := func(name string) string {
		s, _ := m.Values[name].(string)
		return s
	}
	kind, err := strconv.Atoi(field(eventKind))
	if err != nil || !revocation.Kind(kind).Valid() {
		return revocation.Event{}, false
	}
	ev := revocation.Event{Cursor: m.ID, Kind: revocation.Kind(kind), Value: field(eventValue)}
	if c, err := strconv.ParseInt(field(eventCutoff), 10, 64); err == nil && c > 0 {
		ev.Cutoff = time.UnixMilli(c)
	}
	if x, err := strconv.ParseInt(field(eventExpires), 10, 64); err == nil {
		ev.ExpiresAt = time.UnixMilli(x)
	}
	return ev, true
}

// Head returns the id of the tenant's newest entry.
func (e *Events) Head(ctx context.Context, tenant string) (string, error) {
	msgs, err := e.client.XRevRangeN(ctx, eventsKey(tenant), "+", "-", 1).Result()
	if err != nil {
		return "", unavailable("read revocation events", err)
	}
	if len(msgs) == 0 {
		return revocation.Start, nil
	}
	return msgs[0].ID, nil
}

// Notifications subscribes to the announcements and delivers their notices until ctx ends. The
// subscription reconnects on its own; announcements made while it is down are lost, which the
// watches' polling covers.
func (e *Events) Notifications(ctx context.Context) <-chan string {
	out := make(chan string)
	sub := e.client.Subscribe(ctx, eventsChannel)
	go func() {
		defer close(out)
		defer func() { _ = sub.Close() }()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				select {
				case out <- m.Payload:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
