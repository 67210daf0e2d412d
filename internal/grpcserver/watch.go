package grpcserver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
)

// DefaultMaxWatchesPerKey bounds the concurrent WatchRevocations streams of one API key on one
// replica. An interceptor needs one; a fleet of services sharing a key needs one each.
const DefaultMaxWatchesPerKey = 256

// DefaultMaxWatchesPerTenant bounds the concurrent WatchRevocations streams of one tenant, all
// its keys together, on one replica, so that a tenant with many keys cannot take the replica's
// memory from the others: each stream costs a few tens of KiB.
const DefaultMaxWatchesPerTenant = 2048

// DefaultWatchRecheck is how often a WatchRevocations stream re-checks its API key and tenant. A
// key deleted or rotated through this replica ends its streams at once; through another, within
// this period plus the life of this replica's key cache (tenant.DefaultCacheTTL).
const DefaultWatchRecheck = 2 * time.Second

// errTenantDeleted ends the revocation stream of a tenant that was deleted: whatever follows in
// the log belongs to a tenant created again under the same id.
var errTenantDeleted = status.Error(codes.Unauthenticated, "the tenant of this revocation stream was deleted")

// WatchObserver is told how long after its append each revocation event reached a live watcher,
// for metrics. It is called on the stream's goroutine, so it must be cheap.
type WatchObserver interface {
	RevocationDelivered(lag time.Duration)
}

// watchers counts the open revocation streams of each API key and of each tenant, and lets an
// admin call of this replica that ends a stream's credential have the stream re-check it at once.
type watchers struct {
	maxPerKey, maxPerTenant int

	mu        sync.Mutex
	perKey    map[string]int
	perTenant map[string]int
	open      map[*watch]struct{}
}

// watch is one open stream.
type watch struct {
	key, tenant string
	// recheck asks the stream to re-check its credential now; it holds one request at most.
	recheck chan struct{}
}

// acquire opens a stream of the key of tenant, or answers ResourceExhausted beyond a limit.
func (ws *watchers) acquire(key, tenant string) (*watch, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.perKey[key] >= ws.maxPerKey {
		return nil, status.Errorf(codes.ResourceExhausted, "this API key already has %d open revocation streams on this server", ws.maxPerKey)
	}
	if ws.perTenant[tenant] >= ws.maxPerTenant {
		return nil, status.Errorf(codes.ResourceExhausted, "this tenant already has %d open revocation streams on this server", ws.maxPerTenant)
	}
	if ws.open == nil {
		ws.perKey, ws.perTenant, ws.open = make(map[string]int), make(map[string]int), make(map[*watch]struct{})
	}
	ws.perKey[key]++
	ws.perTenant[tenant]++
	w := &watch{key: key, tenant: tenant, recheck: make(chan struct{}, 1)}
	ws.open[w] = struct{}{}
	return w, nil
}

func (ws *watchers) release(w *watch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	delete(ws.open, w)
	if ws.perKey[w.key]--; ws.perKey[w.key] <= 0 {
		delete(ws.perKey, w.key)
	}
	if ws.perTenant[w.tenant]--; ws.perTenant[w.tenant] <= 0 {
		delete(ws.perTenant, w.tenant)
	}
}

// recheckKey has the streams of the API key re-check their credential now.
func (ws *watchers) recheckKey(id string) { ws.recheck(func(w *watch) bool { return w.key == id }) }

// recheckTenant has the streams of the tenant re-check their credential now.
func (ws *watchers) recheckTenant(id string) {
	ws.recheck(func(w *watch) bool { return w.tenant == id })
}

func (ws *watchers) recheck(match func(*watch) bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.open {
		if match(w) {
			select {
			case w.recheck <- struct{}{}:
			default: // One is already pending.
			}
		}
	}
}

func (s *tokenService) WatchRevocations(req *tokenauthorityv1.WatchRevocationsRequest, stream tokenauthorityv1.TokenService_WatchRevocationsServer) error {
	streamCtx := stream.Context()
	t, err := tenantOf(streamCtx)
	if err != nil {
		return err
	}
	if s.hub == nil {
		return status.Error(codes.Unimplemented, "revocation events are not enabled on this server")
	}
	c, _ := CallerFrom(streamCtx)
	w, err := s.watches.acquire(c.KeyID, t.ID)
	if err != nil {
		return err
	}
	defer s.watches.release(w)
	// The call was admitted on this replica's cached key record, which may be up to its life
	// old: a stream lasts, so it starts from the store's current word, and is bound to the
	// incarnation of the tenant that the store holds now.
	if c, err = s.watchCaller(streamCtx, s.tenants.AuthenticateFromStore); err != nil {
		return err
	}
	if c.Tenant.ID != t.ID {
		return errTenantDeleted
	}
	t = c.Tenant
	// The stream outlives that check: the guard checks again while the stream runs, and ends the
	// stream, with the reason as its cause, when the credential no longer admits it.
	ctx, end := context.WithCancelCause(streamCtx)
	defer end(nil)
	go s.guardWatch(ctx, end, w, c)
	send := func(m revocation.Message) error {
		if err := stream.Send(messageToProto(m)); err != nil {
			return err
		}
		// The watcher has the deletion's cut-off; what follows belongs to the next tenant.
		if inc, ok := m.Event.DeletedIncarnation(); ok && inc == t.Incarnation {
			return errTenantDeleted
		}
		return nil
	}
	if s.watchObs != nil {
		send = s.observeLag(send)
	}
	err = s.hub.Watch(ctx, t.ID, req.GetCursor(), send)
	if ctx.Err() != nil && streamCtx.Err() == nil {
		return context.Cause(ctx) // The guard's reason.
	}
	switch {
	case errors.Is(err, revocation.ErrBadCursor):
		return status.Error(codes.InvalidArgument, "cursor: not a cursor this service returned; use \"\" (from now) or \"0\" (every retained event)")
	case errors.Is(err, revocation.ErrClosed):
		return status.Error(codes.Unavailable, "the server is shutting down; reconnect with the last cursor")
	case streamCtx.Err() != nil:
		return status.FromContextError(streamCtx.Err()).Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok && err != nil {
		return err // From stream.Send (the stream is already broken), or errTenantDeleted.
	}
	return toStatus(streamCtx, s.log, err)
}

// guardWatch checks the credential of the stream w, opened by the caller opened, every
// recheckEvery and whenever w.recheck asks, until ctx ends. When the credential no longer admits
// the stream, the guard ends it with the reason.
func (s *tokenService) guardWatch(ctx context.Context, end context.CancelCauseFunc, w *watch, opened *tenant.Caller) {
	ticks, stop := s.recheckTicker(s.recheckEvery)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		case <-w.recheck:
		}
		now, err := s.watchCaller(ctx, s.tenants.Authenticate)
		if err == nil && (now.Tenant.ID != opened.Tenant.ID || now.Tenant.Incarnation != opened.Tenant.Incarnation) {
			err = errTenantDeleted // and perhaps created again: another incarnation
		}
		if err == nil {
			continue
		}
		if ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelInfo, "revocation stream ended: its credential no longer admits it",
				slog.String("key_id", w.key), slog.String("tenant", w.tenant), slog.String("code", status.Code(err).String()))
			end(err)
		}
		return
	}
}

// watchCaller authenticates the credential of the revocation stream of ctx with authenticate, and
// returns the caller if the credential still admits the stream, or why it does not: the key
// deleted, rotated without overlap or past its overlap, its tenant deleted, or the store unable to
// say (fail closed: the watcher reconnects).
func (s *tokenService) watchCaller(ctx context.Context, authenticate func(context.Context, string) (*tenant.Caller, error)) (*tenant.Caller, error) {
	// One key's values, not a copy of every header.
	vals := metadata.ValueFromIncomingContext(ctx, APIKeyHeader)
	if len(vals) != 1 {
		return nil, status.Error(codes.Unauthenticated, "missing x-api-key metadata")
	}
	c, err := authenticate(ctx, vals[0])
	switch {
	case errors.Is(err, tenant.ErrUnauthenticated):
		return nil, status.Error(codes.Unauthenticated, "the API key of this revocation stream is no longer valid (deleted or rotated)")
	case err != nil:
		return nil, toStatus(ctx, s.log, err)
	case c.Tenant == nil:
		return nil, errNoTenant
	}
	if p, ok := s.policyOf(tokenauthorityv1.TokenService_WatchRevocations_FullMethodName); !ok || !allowed(p, c) {
		return nil, status.Error(codes.PermissionDenied, "the caller's credential lacks a role this method requires")
	}
	return c, nil
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
