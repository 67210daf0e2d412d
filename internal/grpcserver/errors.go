package grpcserver

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenauthority/tokenauthority/internal/keys"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/tenant"
	"github.com/tokenauthority/tokenauthority/internal/token"
)

// toStatus maps a domain error to a gRPC status. The messages of the domain's own sentinels are
// written for callers; anything unexpected is logged here and answered with a bare Internal.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil:
		// The caller cancelled, or its own deadline passed: say so, whatever failed with it.
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, store.ErrUnavailable):
		// Also when the store's own time budget ran out (a deadline inside err): the caller's
		// deadline had not passed, so the store is what failed.
		log.LogAttrs(ctx, slog.LevelWarn, "store unavailable", slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "token store unavailable; retry later")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, revocation.ErrFull):
		return status.Error(codes.ResourceExhausted, "this tenant's revocation log is full of revocations of single tokens and "+
			"sessions that still matter; nothing was revoked: use RevokeSessions (a subject's or the whole tenant's cut-off) "+
			"instead, or retry once some of them expire")
	case errors.Is(err, token.ErrInvalidArgument), errors.Is(err, tenant.ErrInvalid), errors.Is(err, tenant.ErrPageToken), errors.Is(err, token.ErrInvalidSubjectToken):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, token.ErrRefreshReuse):
		return status.Error(codes.Unauthenticated, token.ErrRefreshReuse.Error())
	case errors.Is(err, token.ErrInvalidRefreshToken):
		return status.Error(codes.Unauthenticated, token.ErrInvalidRefreshToken.Error())
	case errors.Is(err, token.ErrCertificateMismatch):
		return status.Error(codes.Unauthenticated, token.ErrCertificateMismatch.Error())
	case errors.Is(err, tenant.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, tenant.ErrUnauthenticated.Error())
	case errors.Is(err, token.ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, tenant.ErrNotFound), errors.Is(err, tenant.ErrKeyNotFound), errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, store.ErrExists):
		return status.Error(codes.AlreadyExists, "already exists")
	case errors.Is(err, tenant.ErrLastAdminKey):
		return status.Error(codes.FailedPrecondition, tenant.ErrLastAdminKey.Error())
	case errors.Is(err, tenant.ErrLimit):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, keys.ErrTooManyKeys):
		return status.Error(codes.FailedPrecondition, keys.ErrTooManyKeys.Error())
	case errors.Is(err, keys.ErrNoKeys):
		return status.Error(codes.FailedPrecondition, "the tenant has no signing keys")
	case errors.Is(err, keys.ErrUnknownKey):
		return status.Error(codes.NotFound, "no such signing key in this tenant")
	case errors.Is(err, keys.ErrRefreshKeyChanged):
		return status.Error(codes.Aborted, keys.ErrRefreshKeyChanged.Error())
	case errors.Is(err, keys.ErrTooManyRefreshKeys):
		return status.Error(codes.FailedPrecondition, keys.ErrTooManyRefreshKeys.Error())
	case errors.Is(err, keys.ErrConflict):
		return status.Error(codes.Aborted, "another replica changed the keys at the same time; retry")
	}
	log.LogAttrs(ctx, slog.LevelError, "internal error", slog.String("error", err.Error()))
	return status.Error(codes.Internal, "internal error")
}
