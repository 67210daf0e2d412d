package grpcserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestLeanCallLog: at info level a call that succeeds (or fails by the caller's fault) writes no
// line and costs no field building; a failure of the server's (Unavailable, Internal) writes its
// "finished call" line with the method and code; at debug level every call is logged as before.
func TestLeanCallLog(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/tokenauthority.v1.TokenService/VerifyToken"}
	cases := []struct {
		name  string
		level slog.Level
		err   error
		want  []string // substrings of the log; none when empty
	}{
		{"info, OK", slog.LevelInfo, nil, nil},
		{"info, caller's fault", slog.LevelInfo, status.Error(codes.InvalidArgument, "bad"), nil},
		{"info, unavailable", slog.LevelInfo, status.Error(codes.Unavailable, "store down"),
			[]string{"finished call", "grpc.code=Unavailable", "grpc.method=VerifyToken", "grpc.service=tokenauthority.v1.TokenService", "store down", "level=WARN"}},
		{"info, internal", slog.LevelInfo, status.Error(codes.Internal, "boom"), []string{"grpc.code=Internal", "level=ERROR"}},
		{"debug, OK", slog.LevelDebug, nil, []string{"finished call", "grpc.code=OK"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level}))
			full := logging.UnaryServerInterceptor(interceptorLogger(log),
				logging.WithLogOnEvents(logging.FinishCall), logging.WithLevels(logLevel))
			_, err := leanCallLog(log, full)(context.Background(), nil, info, func(context.Context, any) (any, error) { return nil, c.err })
			if status.Code(err) != status.Code(c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
			out := buf.String()
			if len(c.want) == 0 && out != "" {
				t.Fatalf("logged %q, want nothing", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("log %q lacks %q", out, w)
				}
			}
		})
	}
}
