package grpcserver

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	// The proto codec registers itself under its name; requestCodec wraps it.
	_ "google.golang.org/grpc/encoding/proto"
)

// errMalformed is the answer to a request that is not a valid message of its type, for example
// one with invalid UTF-8 in a string field.
var errMalformed = status.Error(codes.InvalidArgument, "malformed request: not a valid protobuf message of the method's type "+
	"(strings must be valid UTF-8)")

// requestCodec decodes like grpc's proto codec, except that a request that does not decode is
// passed on reset and marked instead of failing: grpc-go answers a decoding failure with INTERNAL,
// which blames the server, while the caller sent bad input. The interceptors answer a marked
// request with INVALID_ARGUMENT before anything else looks at it, and unmark it.
type requestCodec struct {
	encoding.CodecV2
	malformed sync.Map // proto.Message -> struct{}
}

func newRequestCodec() *requestCodec {
	return &requestCodec{CodecV2: encoding.GetCodecV2("proto")}
}

func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m)
	c.malformed.Store(m, struct{}{})
	return nil
}

// take reports whether req was marked malformed, and unmarks it.
func (c *requestCodec) take(req any) bool {
	_, marked := c.malformed.LoadAndDelete(req)
	return marked
}

func (c *requestCodec) unaryInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if c.take(req) {
		return nil, errMalformed
	}
	return handler(ctx, req)
}

func (c *requestCodec) streamInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &checkedStream{ServerStream: ss, codec: c})
}

// checkedStream answers a malformed message of a stream with INVALID_ARGUMENT.
type checkedStream struct {
	grpc.ServerStream
	codec *requestCodec
}

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.codec.take(m) {
		return errMalformed
	}
	return nil
}
