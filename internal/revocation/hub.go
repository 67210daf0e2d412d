package revocation

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultHeartbeat is how often an idle watch polls its log and tells the watcher it is alive.
const DefaultHeartbeat = time.Second

// readBatch is how many events one read of the log returns at most.
const readBatch = 256

// ErrClosed ends the watches of a Hub that is shutting down; watchers reconnect elsewhere.
var ErrClosed = errors.New("revocation hub closed")

// Message is one message to a watcher: an event, or a marker (Event.Kind 0) that carries the
// current cursor (sent once the watch has caught up, then as a heartbeat), or a resynchronisation
// order (Resync).
type Message struct {
	Event  Event
	Resync bool
}

// Hub runs this replica's watches: it wakes those of a tenant when the tenant's log grows.
type Hub struct {
	log       Log
	heartbeat time.Duration
	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	signals map[string]*signal // by tenant, while it has watches
	watches int
}

// signal is closed, and replaced, each time a tenant's log grows.
type signal struct {
	ch   chan struct{}
	refs int
}

// NewHub returns a Hub over log; heartbeat is DefaultHeartbeat when zero.
func NewHub(log Log, heartbeat time.Duration) *Hub {
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeat
	}
	return &Hub{log: log, heartbeat: heartbeat, closed: make(chan struct{}), signals: make(map[string]*signal)}
}

// Run delivers the log's notifications to the watches until ctx ends.
func (h *Hub) Run(ctx context.Context) {
	for n := range h.log.Notifications(ctx) {
		tenant, _ := ParseNotice(n)
		h.mu.Lock()
		if s := h.signals[tenant]; s != nil {
			close(s.ch)
			s.ch = make(chan struct{})
		}
		h.mu.Unlock()
	}
}

// Close ends every watch, present and future, with ErrClosed.
func (h *Hub) Close() { h.closeOnce.Do(func() { close(h.closed) }) }

// Watches returns the number of running watches.
func (h *Hub) Watches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.watches
}

func (h *Hub) join(tenant string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.signals[tenant]
	if s == nil {
		s = &signal{ch: make(chan struct{})}
		h.signals[tenant] = s
	}
	s.refs++
	h.watches++
}

func (h *Hub) leave(tenant string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.signals[tenant]
	if s.refs--; s.refs == 0 {
		delete(h.signals, tenant)
	}
	h.watches--
}

func (h *Hub) wake(tenant string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.signals[tenant].ch
}

// Watch sends the tenant's events after cursor ("" for from now, Start for the whole retained log)
// to send, in order, until ctx ends, the Hub closes, send fails or the log cannot be read. It
// returns ErrBadCursor at once for a malformed cursor.
func (h *Hub) Watch(ctx context.Context, tenant, cursor string, send func(Message) error) error {
	if cursor != "" {
		if _, err := ParseCursor(cursor); err != nil {
			return err
		}
	}
	select {
	case <-h.closed:
		return ErrClosed
	default:
	}
	h.join(tenant)
	defer h.leave(tenant)
	if cursor == "" {
		head, err := h.log.Head(ctx, tenant)
		if err != nil {
			return err
		}
		cursor = head
	}
	tick := time.NewTicker(h.heartbeat)
	defer tick.Stop()
	live := false
	for {
		// Taken before reading, so that an append between the read and the wait still wakes us.
		wake := h.wake(tenant)
		var err error
		if cursor, err = h.drain(ctx, tenant, cursor, send); err != nil {
			return err
		}
		if !live {
			if err := send(Message{Event: Event{Cursor: cursor}}); err != nil {
				return err
			}
			live = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.closed:
			return ErrClosed
		case <-wake:
		case <-tick.C:
			if cursor, err = h.drain(ctx, tenant, cursor, send); err != nil {
				return err
			}
			if err := send(Message{Event: Event{Cursor: cursor}}); err != nil {
				return err
			}
		}
	}
}

// drain sends every event after cursor and returns the cursor of the last one sent. When the log
// orders a resynchronisation, it passes it on and replays the log from Start.
func (h *Hub) drain(ctx context.Context, tenant, cursor string, send func(Message) error) (string, error) {
	for {
		events, resync, err := h.log.Read(ctx, tenant, cursor, readBatch)
		if err != nil {
			return cursor, err
		}
		if resync {
			if cursor == Start {
				return cursor, errors.New("revocation log: resynchronisation ordered from the start")
			}
			if err := send(Message{Event: Event{Cursor: Start}, Resync: true}); err != nil {
				return cursor, err
			}
			cursor = Start
			continue
		}
		for _, ev := range events {
			if err := send(Message{Event: ev}); err != nil {
				return cursor, err
			}
			cursor = ev.Cursor
		}
		if len(events) < readBatch {
			return cursor, nil
		}
	}
}
