package revocation_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store/memory"
)

const tenant = "acme"

// watch runs a watch in the background and returns its messages and its result.
type watch struct {
	msgs   chan revocation.Message
	done   chan error
	cancel context.CancelFunc
}

func startWatch(t *testing.T, hub *revocation.Hub, cursor string) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{msgs: make(chan revocation.Message, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- hub.Watch(ctx, tenant, cursor, func(m revocation.Message) error {
			w.msgs <- m
			return nil
		})
	}()
	t.Cleanup(cancel)
	return w
}

// next returns the next message, skipping heartbeats when skipMarkers is set.
func (w *watch) next(t *testing.T, skipMarkers bool) revocation.Message {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-w.msgs:
			if skipMarkers && m.Event.Kind == 0 && !m.Resync {
				continue
			}
			return m
		case err := <-w.done:
			t.Fatalf("watch ended: %v", err)
		case <-deadline:
			t.Fatalf("no message within 10s")
		}
	}
}

// events reads n events (skipping markers) and returns their values.
func (w *watch) events(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		m := w.next(t, true)
		if m.Resync {
			t.Fatalf("unexpected resync")
		}
		out = append(out, m.Event.Value)
	}
	return out
}

func newHub(t *testing.T, limit int) (*revocation.Hub, *memory.Events) {
	t.Helper()
	log := memory.NewEvents(nil, time.Hour, limit)
	hub := revocation.NewHub(log, 10*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	go hub.Run(ctx)
	t.Cleanup(cancel)
	return hub, log
}

func appendTokens(t *testing.T, log revocation.Log, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := log.Append(context.Background(), tenant, revocation.Event{Kind: revocation.KindToken, Value: v,
			ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
}

func TestWatchFromNowSendsAMarkerThenNewEvents(t *testing.T) {
	hub, log := newHub(t, 0)
	appendTokens(t, log, "old")
	w := startWatch(t, hub, "")
	m := w.next(t, false)
	if m.Event.Kind != 0 || m.Resync || m.Event.Cursor == revocation.Start {
		t.Fatalf("first message = %+v, want a marker at the log's head", m)
	}
	appendTokens(t, log, "new")
	if got := w.events(t, 1); got[0] != "new" {
		t.Errorf("event = %q, want the one appended after the watch began", got[0])
	}
}

func TestWatchReplaysFromStartAndResumesAfterACursor(t *testing.T) {
	hub, log := newHub(t, 0)
	values := make([]string, 600) // More than one read batch.
	for i := range values {
		values[i] = fmt.Sprintf("j%d", i)
	}
	appendTokens(t, log, values...)
	w := startWatch(t, hub, revocation.Start)
	var cursors []string
	for i := range values {
		m := w.next(t, false)
		if m.Event.Value != values[i] {
			t.Fatalf("event %d = %+v, want %q", i, m, values[i])
		}
		cursors = append(cursors, m.Event.Cursor)
	}
	if m := w.next(t, false); m.Event.Kind != 0 || m.Event.Cursor != cursors[len(cursors)-1] {
		t.Errorf("after the replay: %+v, want a marker at the last cursor", m)
	}
	w.cancel()

	resumed := startWatch(t, hub, cursors[597])
	if got := resumed.events(t, 2); got[0] != "j598" || got[1] != "j599" {
		t.Errorf("resumed after j597: %q", got)
	}
}

func TestWatchBehindTrimmedEventsIsToldToResync(t *testing.T) {
	hub, log := newHub(t, 0)
	ctx := context.Background()
	var first string
	for _, v := range []string{"a", "b"} { // Expired: trimmed by the next append.
		if err := log.Append(ctx, tenant, revocation.Event{Kind: revocation.KindToken, Value: v, ExpiresAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if v == "a" {
			first, _ = log.Head(ctx, tenant)
		}
	}
	appendTokens(t, log, "c", "d")
	w := startWatch(t, hub, first)
	if m := w.next(t, false); !m.Resync {
		t.Fatalf("first message = %+v, want a resync order", m)
	}
	if got := w.events(t, 2); got[0] != "c" || got[1] != "d" {
		t.Errorf("replay after the resync = %q, want [c d]", got)
	}
}

func TestWatchSendsHeartbeats(t *testing.T) {
	hub, _ := newHub(t, 0)
	w := startWatch(t, hub, "")
	for range 3 {
		if m := w.next(t, false); m.Event.Kind != 0 || m.Resync {
			t.Fatalf("idle stream sent %+v, want markers", m)
		}
	}
}

func TestWatchBeyondTheNewestEventIsToldToResync(t *testing.T) {
	hub, log := newHub(t, 0)
	appendTokens(t, log, "a")
	head, _ := log.Head(context.Background(), tenant)
	id, err := revocation.ParseCursor(head)
	if err != nil {
		t.Fatal(err)
	}
	// A cursor from the future: waiting after it would never deliver what is appended until then.
	w := startWatch(t, hub, revocation.ID{MS: id.MS + 3_600_000}.String())
	if m := w.next(t, false); !m.Resync {
		t.Fatalf("first message = %+v, want a resync order", m)
	}
	if got := w.events(t, 1); got[0] != "a" {
		t.Errorf("replay after the resync = %q, want [a]", got)
	}
	appendTokens(t, log, "b")
	if got := w.events(t, 1); got[0] != "b" {
		t.Errorf("event after the resync = %q, want b", got)
	}
}

func TestWatchRejectsBadCursors(t *testing.T) {
	hub, _ := newHub(t, 0)
	for _, c := range []string{"x", "1", "-", "1-1-1", "00-1", "18446744073709551615-18446744073709551615"} {
		// Bounded, so that a cursor taken for a good one fails the test instead of watching on.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := hub.Watch(ctx, tenant, c, func(revocation.Message) error { return nil })
		cancel()
		if !errors.Is(err, revocation.ErrBadCursor) {
			t.Errorf("Watch(%q) = %v, want ErrBadCursor", c, err)
		}
	}
}

func TestCloseEndsEveryWatch(t *testing.T) {
	hub, _ := newHub(t, 0)
	ws := []*watch{startWatch(t, hub, ""), startWatch(t, hub, revocation.Start)}
	for _, w := range ws {
		w.next(t, false)
	}
	if n := hub.Watches(); n != 2 {
		t.Errorf("Watches = %d, want 2", n)
	}
	hub.Close()
	for _, w := range ws {
		select {
		case err := <-w.done:
			if !errors.Is(err, revocation.ErrClosed) {
				t.Errorf("watch ended with %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a watch outlived Close")
		}
	}
	if n := hub.Watches(); n != 0 {
		t.Errorf("Watches after Close = %d", n)
	}
	if err := hub.Watch(context.Background(), tenant, "", func(revocation.Message) error { return nil }); !errors.Is(err, revocation.ErrClosed) {
		t.Errorf("Watch after Close = %v, want ErrClosed", err)
	}
}

// failingLog is a log whose reads fail.
type failingLog struct{ revocation.Log }

var errDown = errors.New("store down")

func (failingLog) Read(context.Context, string, string, int) ([]revocation.Event, bool, error) {
	return nil, false, errDown
}

func TestWatchEndsWhenTheLogCannotBeRead(t *testing.T) {
	hub := revocation.NewHub(failingLog{memory.NewEvents(nil, time.Hour, 0)}, time.Millisecond)
	err := hub.Watch(context.Background(), tenant, revocation.Start, func(revocation.Message) error { return nil })
	if !errors.Is(err, errDown) {
		t.Errorf("Watch = %v, want the log's error", err)
	}
}

func TestWatchEndsWhenSendFails(t *testing.T) {
	hub, _ := newHub(t, 0)
	errGone := errors.New("client gone")
	err := hub.Watch(context.Background(), tenant, "", func(revocation.Message) error { return errGone })
	if !errors.Is(err, errGone) {
		t.Errorf("Watch = %v, want the send error", err)
	}
}
