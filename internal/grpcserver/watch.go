package grpcserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
)

// DefaultMaxWatchesPerKey bounds the concurrent WatchRevocations streams of one API key on one
// replica. An interceptor needs one; a fleet of services sharing a key needs one each.
const DefaultMaxWatchesPerKey = 256

// WatchObserver is told how long after its append each revocation event reached a live watcher,
// for metrics. It is called on the stream's goroutine, so it must be cheap.
type WatchObserver interface {
	RevocationDelivered(lag time.Duration)
}

// watchLimiter counts the open streams of each API key.
type watchLimiter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func (l *watchLimiter) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return false
	}
	if l.open == nil {
		l.open = make(map[string]int)
	}
	l.open[key]++
	return true
}

func (l *watchLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

func (s *tokenService) WatchRevocations(req *tokenauthorityv1.WatchRevocationsRequest, stream tokenauthorityv1.TokenService_WatchRevocationsServer) error {
	ctx := stream.Context()
	t, err := tenantOf(ctx)
	if err != nil {
		return err
	}
	if s.hub == nil {
		return status.Error(codes.Unimplemented, "revocation events are not enabled on this server")
	}
	c, _ := CallerFrom(ctx)
	if !s.watches.acquire(c.KeyID) {
		return status.Errorf(codes.ResourceExhausted, "this API key already has %d open revocation streams on this server", s.watches.max)
	}
	defer s.watches.release(c.KeyID)
	send := func(m revocation.Message) error { return stream.Send(messageToProto(m)) }
	if s.watchObs != nil {
		send = s.observeLag(send)
	}
	err = s.hub.Watch(ctx, t.ID, req.GetCursor(), send)
	switch {
	case errors.Is(err, revocation.ErrBadCursor):
		return status.Error(codes.InvalidArgument, "cursor: not a cursor this service returned; use \"\" (from now) or \"0\" (every retained event)")
	case errors.Is(err, revocation.ErrClosed):
		return status.Error(codes.Unavailable, "the server is shutting down; reconnect with the last cursor")
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok && err != nil {
		return err // From stream.Send: the stream is already broken.
	}
	return toStatus(ctx, s.log, err)
}

// observeLag wraps a watch's send so that each event sent once the watch has caught up reports its
// lag: the time since its append, which its cursor records in milliseconds. Events replayed from
// an older cursor, or after a resynchronisation, are not lag but history, and are left out: the
// watch is live from its first marker (an empty event) until a resynchronisation.
func (s *tokenService) observeLag(send func(revocation.Message) error) func(revocation.Message) error {
	live := false
	return func(m revocation.Message) error {
		if err := send(m); err != nil {
			return err
		}
		switch {
		case m.Resync:
			live = false
		case m.Event.Kind == 0:
			live = true
		case live:
			if id, err := revocation.ParseCursor(m.Event.Cursor); err == nil && id.MS > 0 {
				s.watchObs.RevocationDelivered(s.now().Sub(time.UnixMilli(int64(id.MS))))
			}
		}
		return nil
	}
}

func messageToProto(m revocation.Message) *tokenauthorityv1.WatchRevocationsResponse {
	ev := m.Event
	r := &tokenauthorityv1.WatchRevocationsResponse{
		Kind:   tokenauthorityv1.RevocationKind(ev.Kind),
		Cursor: ev.Cursor,
		Resync: m.Resync,
	}
	switch ev.Kind {
	case revocation.KindToken:
		r.Jti = ev.Value
	case revocation.KindSession:
		r.SessionId = ev.Value
	case revocation.KindSubjectCutoff:
		r.Subject = ev.Value
	case revocation.KindKeyWithdrawn, revocation.KindKeyPublished:
		r.Kid = ev.Value
	}
	if !ev.Cutoff.IsZero() {
		r.CutoffTime = timestamppb.New(ev.Cutoff)
	}
	if !ev.ExpiresAt.IsZero() {
		r.ExpireTime = timestamppb.New(ev.ExpiresAt)
	}
	return r
}
