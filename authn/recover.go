package authn

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Invalidate drops the current access token if it is still tok (the empty string drops whatever is
// current), so that the next call obtains a new one: by refresh, or by issue when the session has
// ended. Callers that learn by themselves that a token was refused use it; the interceptors of
// UnaryClientInterceptor and StreamClientInterceptor do it for them. A token that was already
// replaced is left alone, so many callers invalidating the same refused token cause one renewal.
func (s *TokenSource) Invalidate(tok string) {
	for {
		st := s.cur.Load()
		if st == nil || (tok != "" && st.access != tok) || st.access == "" {
			return
		}
		// Keep the refresh token: a revoked access token may belong to a live session.
		if s.cur.CompareAndSwap(st, &tokenState{refresh: st.refresh}) {
			return
		}
	}
}

// UnaryClientInterceptor returns a client interceptor, for the connections whose per-RPC
// credentials are s (grpc.WithPerRPCCredentials), that recovers from a refused token: when the
// called service answers Unauthenticated, it drops the token (Invalidate), obtains a new one and
// retries the call once. A revoked session, subject or tenant therefore costs a caller no failed
// call, only a renewal; a second Unauthenticated is returned as it is.
//
// The retry is safe for any method: an Unauthenticated answer comes from the service's
// authentication, before its handler runs.
func (s *TokenSource) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		used := s.peek()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.Unauthenticated || ctx.Err() != nil {
			return err
		}
		s.Invalidate(used)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams. A stream that the service refuses
// drops the token; a server-streaming call (one request, then responses) is also retried once, when
// the refusal comes before any response. Client-streaming and bidirectional streams are not retried
// (the messages already sent are not kept): their next call gets a new token.
func (s *TokenSource) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		used := s.peek()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			if status.Code(err) == codes.Unauthenticated {
				s.Invalidate(used)
			}
			return nil, err
		}
		return &recoveringStream{ClientStream: cs, src: s, used: used, retry: !desc.ClientStreams,
			open: func() (grpc.ClientStream, error) { return streamer(ctx, desc, cc, method, opts...) }}, nil
	}
}

// peek returns the current access token without renewing it: the one the next call is likely to
// carry. Empty when there is none yet.
func (s *TokenSource) peek() string {
	if st := s.cur.Load(); st != nil {
		return st.access
	}
	return ""
}

// recoveringStream watches a stream for a refusal of its token. For a server-streaming call it
// keeps the one request, so that a refusal before the first response can be retried on a new
// stream.
type recoveringStream struct {
	grpc.ClientStream
	src   *TokenSource
	used  string
	retry bool
	open  func() (grpc.ClientStream, error)

	mu       sync.Mutex
	req      any
	sent     int
	closed   bool
	received bool
	retried  bool
}

func (r *recoveringStream) SendMsg(m any) error {
	r.mu.Lock()
	r.sent++
	if r.sent == 1 {
		r.req = m
	}
	r.mu.Unlock()
	return r.ClientStream.SendMsg(m)
}

func (r *recoveringStream) CloseSend() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.ClientStream.CloseSend()
}

func (r *recoveringStream) RecvMsg(m any) error {
	err := r.ClientStream.RecvMsg(m)
	if err == nil {
		r.mu.Lock()
		r.received = true
		r.mu.Unlock()
		return nil
	}
	if errors.Is(err, io.EOF) || status.Code(err) != codes.Unauthenticated {
		return err
	}
	r.src.Invalidate(r.used)
	r.mu.Lock()
	again := r.retry && !r.retried && !r.received && r.sent == 1 && r.closed
	r.retried = true
	req := r.req
	r.mu.Unlock()
	if !again {
		return err
	}
	cs, oerr := r.open()
	if oerr != nil {
		return err
	}
	if cs.SendMsg(req) != nil || cs.CloseSend() != nil {
		return err
	}
	r.ClientStream = cs
	return cs.RecvMsg(m)
}
