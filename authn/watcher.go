package authn

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
)

// revocationSink receives what the watcher reads, from the watcher's goroutine only.
type revocationSink interface {
	// apply handles one event (any kind but unspecified).
	apply(ev *tokenauthorityv1.WatchRevocationsResponse)
	// resync drops every state derived from events: the server replays what it retains next.
	resync()
	// tick runs on every marker or heartbeat, for periodic work such as pruning.
	tick(now time.Time)
}

// Stream timing. The authority sends a heartbeat about every second while idle.
const (
	minIdleTimeout = 3 * time.Second
	maxIdleTimeout = 30 * time.Second
)

// watcher follows WatchRevocations: it reconnects with jittered exponential backoff, resumes after
// the last cursor it saw (starting with "0", so the first replay is complete), hands events to a
// sink, and records when it was last known to be caught up, for the staleness bound.
type watcher struct {
	client      tokenauthorityv1.TokenServiceClient
	conn        grpc.ClientConnInterface
	apiKey      string
	sink        revocationSink
	cfg         *config
	idleTimeout time.Duration

	// lastFresh is the clock's time (Unix nanoseconds) of the last message read while caught up
	// with the live stream; 0 while never caught up since the start or the last resync.
	lastFresh atomic.Int64

	mu     sync.Mutex
	liveCh chan struct{} // closed, and replaced, whenever lastFresh advances

	// cursor is read and written by the run goroutine only.
	cursor string

	cancel context.CancelFunc
	done   chan struct{}
}

func startWatcher(conn grpc.ClientConnInterface, apiKey string, sink revocationSink, cfg *config) *watcher {
	w := &watcher{
		client: tokenauthorityv1.NewTokenServiceClient(conn), conn: conn, apiKey: apiKey, sink: sink, cfg: cfg,
		// A silent stream is reopened well before it turns stale, but not on every lost heartbeat.
		idleTimeout: min(max(cfg.staleness/2, minIdleTimeout), maxIdleTimeout),
		liveCh:      make(chan struct{}),
		cursor:      "0",
		done:        make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx)
	return w
}

// fresh reports whether the watcher was caught up within the staleness bound before now.
func (w *watcher) fresh(now time.Time) bool {
	last := w.lastFresh.Load()
	return last != 0 && now.UnixNano()-last <= int64(w.cfg.staleness)
}

func (w *watcher) markFresh() {
	w.lastFresh.Store(max(w.cfg.now().UnixNano(), 1))
	w.mu.Lock()
	close(w.liveCh)
	w.liveCh = make(chan struct{})
	w.mu.Unlock()
}

// waitLive returns once the watcher is fresh, or ctx's error.
func (w *watcher) waitLive(ctx context.Context) error {
	for {
		w.mu.Lock()
		ch := w.liveCh
		w.mu.Unlock()
		if w.fresh(w.cfg.now()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return ErrStale
		}
	}
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	backoff := w.cfg.backoffMin
	for {
		wasLive, err := w.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if wasLive {
			backoff = w.cfg.backoffMin
		}
		if !retryAfter(ctx, w.conn, w.cfg.logger, "authn: revocation stream ended; reconnecting", err, backoff) {
			return
		}
		backoff = min(backoff*2, w.cfg.backoffMax)
	}
}

// follow reads one stream until it fails, and reports whether it caught up with the live stream.
func (w *watcher) follow(ctx context.Context) (caughtUp bool, _ error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", w.apiKey)
	stream, err := w.client.WatchRevocations(ctx, &tokenauthorityv1.WatchRevocationsRequest{Cursor: w.cursor})
	if err != nil {
		return false, err
	}
	// A stream that says nothing, not even a heartbeat, is as good as down.
	idle := time.AfterFunc(w.idleTimeout, cancel)
	defer idle.Stop()
	live := false
	for {
		msg, err := stream.Recv()
		if err != nil {
			return caughtUp, err
		}
		idle.Reset(w.idleTimeout)
		switch {
		case msg.GetResync():
			// Events were lost: forget everything they built and fail closed until the replay
			// that follows on this stream has caught up.
			w.lastFresh.Store(0)
			w.sink.resync()
			w.cursor, live = "0", false
			w.cfg.logger.WarnContext(ctx, "authn: revocation stream asked for a resync; state dropped")
			continue
		case msg.GetKind() == tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED:
			live, caughtUp = true, true
		default:
			w.sink.apply(msg)
		}
		if c := msg.GetCursor(); c != "" {
			w.cursor = c
		}
		// Before the marker the stream is replaying what was missed: only messages after it
		// show that the state is current.
		if live {
			w.markFresh()
			if msg.GetKind() == tokenauthorityv1.RevocationKind_REVOCATION_KIND_UNSPECIFIED {
				w.sink.tick(w.cfg.now())
			}
		}
	}
}

// retryAfter waits out one step of a reconnect schedule: a jittered delay over the upper half of
// backoff (so that many clients do not retry in step), logged with msg and the error that caused
// it. It returns false when ctx ends first. Before returning true it resets conn's own connection
// backoff: a *grpc.ClientConn waits out its own (up to two minutes) before it dials again, failing
// every call meanwhile, while this schedule is shorter.
func retryAfter(ctx context.Context, conn grpc.ClientConnInterface, log *slog.Logger, msg string, cause error, backoff time.Duration) bool {
	wait := backoff/2 + rand.N(backoff/2+1) //nolint:gosec // G404: jitter needs no secrecy
	log.WarnContext(ctx, msg, "err", cause, "in", wait)
	t := time.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
	}
	if cc, ok := conn.(interface{ ResetConnectBackoff() }); ok {
		cc.ResetConnectBackoff()
	}
	return true
}
