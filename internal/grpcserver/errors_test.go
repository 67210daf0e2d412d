package grpcserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// TestToStatusMapsEveryDomainError walks every case of toStatus, each error wrapped as the domain
// wraps it, so that removing or reordering a mapping fails here rather than turning a caller's
// status into Internal (or a store failure into an answer).
func TestToStatusMapsEveryDomainError(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("some operation: %w", err) }
	cases := []struct {
		name string
		err  error
		want codes.Code
		// msgPart must appear in the message; secret must not.
		msgPart string
	}{
		{"store unavailable", wrap(store.ErrUnavailable), codes.Unavailable, "retry later"},
		{"store budget ran out", fmt.Errorf("%w: %w", store.ErrUnavailable, context.DeadlineExceeded), codes.Unavailable, "token store unavailable"},
		{"canceled inside", wrap(context.Canceled), codes.Canceled, ""},
		{"deadline inside", wrap(context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{"revocation log full", wrap(revocation.ErrFull), codes.ResourceExhausted, "RevokeSessions"},
		{"token invalid argument", fmt.Errorf("%w: subject is required", token.ErrInvalidArgument), codes.InvalidArgument, "subject is required"},
		{"tenant invalid", fmt.Errorf("%w: issuer", tenant.ErrInvalid), codes.InvalidArgument, "issuer"},
		{"page token", wrap(tenant.ErrPageToken), codes.InvalidArgument, ""},
		{"refresh reuse", wrap(token.ErrRefreshReuse), codes.Unauthenticated, ""},
		{"invalid refresh token", wrap(token.ErrInvalidRefreshToken), codes.Unauthenticated, ""},
		{"unauthenticated", wrap(tenant.ErrUnauthenticated), codes.Unauthenticated, ""},
		{"permission denied", fmt.Errorf("%w: scope", token.ErrPermissionDenied), codes.PermissionDenied, "scope"},
		{"tenant not found", wrap(tenant.ErrNotFound), codes.NotFound, "not found"},
		{"key not found", wrap(tenant.ErrKeyNotFound), codes.NotFound, "not found"},
		{"record not found", wrap(store.ErrNotFound), codes.NotFound, "not found"},
		{"exists", wrap(store.ErrExists), codes.AlreadyExists, "already exists"},
		{"last admin key", wrap(tenant.ErrLastAdminKey), codes.FailedPrecondition, "admin"},
		{"API key limit", fmt.Errorf("%w: 500", tenant.ErrLimit), codes.FailedPrecondition, ""},
		{"too many signing keys", wrap(keys.ErrTooManyKeys), codes.FailedPrecondition, ""},
		{"no signing keys", wrap(keys.ErrNoKeys), codes.FailedPrecondition, "no signing keys"},
		{"unknown signing key", wrap(keys.ErrUnknownKey), codes.NotFound, "signing key"},
		{"refresh key changed", wrap(keys.ErrRefreshKeyChanged), codes.Aborted, ""},
		{"too many refresh keys", wrap(keys.ErrTooManyRefreshKeys), codes.FailedPrecondition, ""},
		{"key conflict", wrap(keys.ErrConflict), codes.Aborted, "retry"},
		{"a status passes through", status.Error(codes.ResourceExhausted, "rate"), codes.ResourceExhausted, "rate"},
		{"anything else", errors.New("disk on fire: secret-detail"), codes.Internal, "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			got := toStatus(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), c.err)
			st, _ := status.FromError(got)
			if st.Code() != c.want {
				t.Fatalf("toStatus(%v) = %v, want %v", c.err, st.Code(), c.want)
			}
			if !strings.Contains(st.Message(), c.msgPart) {
				t.Errorf("message %q lacks %q", st.Message(), c.msgPart)
			}
			if strings.Contains(st.Message(), "secret-detail") {
				t.Error("an internal error's detail reached the caller")
			}
		})
	}
	// The caller's own context ending wins over whatever failed with it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if got := status.Code(toStatus(ctx, slog.New(slog.DiscardHandler), store.ErrUnavailable)); got != codes.DeadlineExceeded {
		t.Errorf("store failure after the caller's deadline: %v, want DeadlineExceeded", got)
	}
	if toStatus(context.Background(), slog.New(slog.DiscardHandler), nil) != nil {
		t.Error("nil error mapped to a status")
	}
}
