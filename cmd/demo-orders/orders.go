package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenauthority/tokenauthority/authn"
	ordersv1 "github.com/tokenauthority/tokenauthority/gen/demo/orders/v1"
)

// Limits of the in-memory order book: it is a demo, but a caller should not be able to fill the
// memory of the process.
const (
	maxItemLen       = 200
	maxQuantity      = 1000
	maxOrdersPerUser = 1000
	// watchBuffer is how many new orders a WatchOrders stream may fall behind before it is ended.
	watchBuffer = 64
)

// Errors of the order book; orderService maps them to status codes.
var (
	errNotFound    = errors.New("order not found")
	errTooMany     = errors.New("too many orders")
	errClosed      = errors.New("order book closed")
	errFellBehind  = errors.New("watcher fell behind")
	orderIDEncoder = base32.StdEncoding.WithPadding(base32.NoPadding)
)

// orderBook keeps orders in memory, by owner. Owners are token subjects: the book never returns
// an order to anyone but its owner. It is safe for concurrent use.
type orderBook struct {
	now func() time.Time

	mu       sync.Mutex
	closed   bool
	byID     map[string]*ordersv1.Order
	byOwner  map[string][]*ordersv1.Order // in creation order
	watchers map[string]map[*orderWatch]struct{}
}

// orderWatch is one WatchOrders stream's subscription to its owner's new orders.
type orderWatch struct {
	ch chan *ordersv1.Order
	// err is set, under the book's lock, before ch is closed: why the subscription ended.
	err error
}

func newOrderBook(now func() time.Time) *orderBook {
	return &orderBook{
		now:      now,
		byID:     map[string]*ordersv1.Order{},
		byOwner:  map[string][]*ordersv1.Order{},
		watchers: map[string]map[*orderWatch]struct{}{},
	}
}

// create records an order of owner and hands it to owner's watchers.
func (b *orderBook) create(owner, item string, quantity int32) (*ordersv1.Order, error) {
	o := &ordersv1.Order{
		OrderId:    newOrderID(),
		Owner:      owner,
		Item:       item,
		Quantity:   quantity,
		CreateTime: timestamppb.New(b.now()),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return nil, errClosed
	case len(b.byOwner[owner]) >= maxOrdersPerUser:
		return nil, errTooMany
	}
	b.byID[o.GetOrderId()] = o
	b.byOwner[owner] = append(b.byOwner[owner], o)
	for w := range b.watchers[owner] {
		select {
		case w.ch <- o:
		default:
			// A slow reader must not hold up CreateOrder; it is told to reopen its stream.
			b.endLocked(owner, w, errFellBehind)
		}
	}
	return proto.CloneOf(o), nil
}

// get returns owner's order id; an order of another owner is errNotFound, as if it did not exist.
func (b *orderBook) get(owner, id string) (*ordersv1.Order, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.byID[id]
	if !ok || o.GetOwner() != owner {
		return nil, errNotFound
	}
	return proto.CloneOf(o), nil
}

// watch returns owner's orders so far and a subscription to the next ones. Call stop when done.
func (b *orderBook) watch(owner string) (existing []*ordersv1.Order, w *orderWatch, stop func(), err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, nil, nil, errClosed
	}
	for _, o := range b.byOwner[owner] {
		existing = append(existing, proto.CloneOf(o))
	}
	w = &orderWatch{ch: make(chan *ordersv1.Order, watchBuffer)}
	if b.watchers[owner] == nil {
		b.watchers[owner] = map[*orderWatch]struct{}{}
	}
	b.watchers[owner][w] = struct{}{}
	stop = func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.endLocked(owner, w, nil)
	}
	return existing, w, stop, nil
}

// endLocked ends w's subscription with err, once.
func (b *orderBook) endLocked(owner string, w *orderWatch, err error) {
	if _, ok := b.watchers[owner][w]; !ok {
		return
	}
	delete(b.watchers[owner], w)
	if len(b.watchers[owner]) == 0 {
		delete(b.watchers, owner)
	}
	w.err = err
	close(w.ch)
}

// close ends every subscription, so that GracefulStop need not wait for streams that never end on
// their own, and refuses new orders.
func (b *orderBook) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for owner, ws := range b.watchers {
		for w := range ws {
			b.endLocked(owner, w, errClosed)
		}
	}
}

// newOrderID returns a random identifier: guessing one gains nothing (orders are checked against
// their owner) but reveals nothing about how many orders exist either.
func newOrderID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return "ord_" + orderIDEncoder.EncodeToString(b)
}

// orderService implements ordersv1.OrderServiceServer. Authentication and scopes are the
// interceptors' business (see policy); handlers only read the verified claims.
type orderService struct {
	ordersv1.UnimplementedOrderServiceServer

	book *orderBook
	log  *slog.Logger
	// verifier and recheck make WatchOrders check its token again every recheck, so that a
	// stream opened before a revocation ends soon after it: interceptors only see a stream open.
	verifier authn.Verifier
	recheck  time.Duration
}

var _ ordersv1.OrderServiceServer = (*orderService)(nil)

// CreateOrder implements ordersv1.OrderServiceServer.
func (s *orderService) CreateOrder(ctx context.Context, req *ordersv1.CreateOrderRequest) (*ordersv1.CreateOrderResponse, error) {
	claims, err := callerClaims(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateCreate(req); err != nil {
		return nil, err
	}
	o, err := s.book.create(claims.Subject, req.GetItem(), req.GetQuantity())
	if err != nil {
		return nil, bookStatus(err)
	}
	s.log.InfoContext(ctx, "order created", slog.String("order_id", o.GetOrderId()), slog.String("owner", o.GetOwner()))
	return &ordersv1.CreateOrderResponse{Order: o}, nil
}

// GetOrder implements ordersv1.OrderServiceServer.
func (s *orderService) GetOrder(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.GetOrderResponse, error) {
	claims, err := callerClaims(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetOrderId() == "" {
		return nil, status.Error(codes.InvalidArgument, "order_id is required")
	}
	o, err := s.book.get(claims.Subject, req.GetOrderId())
	if err != nil {
		return nil, bookStatus(err)
	}
	return &ordersv1.GetOrderResponse{Order: o}, nil
}

// WatchOrders implements ordersv1.OrderServiceServer.
func (s *orderService) WatchOrders(_ *ordersv1.WatchOrdersRequest, stream grpc.ServerStreamingServer[ordersv1.WatchOrdersResponse]) error {
	ctx := stream.Context()
	claims, err := callerClaims(ctx)
	if err != nil {
		return err
	}
	// The interceptor has checked this token; it is read again only to check it again later.
	token, err := authn.BearerToken(ctx)
	if err != nil {
		return err
	}
	existing, w, stop, err := s.book.watch(claims.Subject)
	if err != nil {
		return bookStatus(err)
	}
	defer stop()
	for _, o := range existing {
		if err := stream.Send(&ordersv1.WatchOrdersResponse{Order: o}); err != nil {
			return err
		}
	}
	tick := time.NewTicker(s.recheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-tick.C:
			// Revoked, expired, or no longer verifiable (fail closed): the stream ends.
			if _, err := s.verifier.Verify(ctx, token); err != nil {
				return authn.StatusError(ctx, err)
			}
		case o, ok := <-w.ch:
			if !ok {
				return bookStatus(w.err)
			}
			if err := stream.Send(&ordersv1.WatchOrdersResponse{Order: o}); err != nil {
				return err
			}
		}
	}
}

// callerClaims returns the verified claims the interceptor placed in ctx. Their absence means the
// policy made an order method public by mistake: refuse rather than serve an anonymous caller.
func callerClaims(ctx context.Context) (*authn.Claims, error) {
	c, ok := authn.ClaimsFromContext(ctx)
	if !ok || c.Subject == "" {
		return nil, status.Error(codes.Unauthenticated, "no verified caller")
	}
	return c, nil
}

// validateCreate reports every problem of req in one InvalidArgument status.
func validateCreate(req *ordersv1.CreateOrderRequest) error {
	var problems []string
	// proto3 strings are valid UTF-8 by the time they get here: the runtime refuses others.
	if n := utf8.RuneCountInString(req.GetItem()); n == 0 || n > maxItemLen {
		problems = append(problems, "item must be 1 to 200 characters")
	}
	if q := req.GetQuantity(); q < 1 || q > maxQuantity {
		problems = append(problems, "quantity must be 1 to 1000")
	}
	if len(problems) == 0 {
		return nil
	}
	return status.Error(codes.InvalidArgument, strings.Join(problems, "; "))
}

// bookStatus maps the order book's errors to status codes.
func bookStatus(err error) error {
	switch {
	case errors.Is(err, errNotFound):
		return status.Error(codes.NotFound, "order not found")
	case errors.Is(err, errTooMany):
		return status.Errorf(codes.ResourceExhausted, "at most %d orders per subject", maxOrdersPerUser)
	case errors.Is(err, errClosed):
		return status.Error(codes.Unavailable, "the service is shutting down")
	case errors.Is(err, errFellBehind):
		return status.Error(codes.Aborted, "the stream fell behind; open it again")
	}
	return status.Error(codes.Internal, "internal error")
}
