package grpcserver

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tokenauthorityv1 "github.com/tokenauthority/tokenauthority/gen/tokenauthority/v1"
	"github.com/tokenauthority/tokenauthority/internal/keys"
)

// Page sizes of the admin lists: the default for 0, and the bound of larger requests.
const (
	defaultAdminPageSize = 50
	maxAdminPageSize     = 500
)

// adminPageSize returns the page size a list request asks for, bounded.
func adminPageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, status.Error(codes.InvalidArgument, "page_size must not be negative")
	case n == 0:
		return defaultAdminPageSize, nil
	}
	return int(min(n, maxAdminPageSize)), nil
}

func (s *adminService) ListPrincipals(ctx context.Context, req *tokenauthorityv1.ListPrincipalsRequest) (*tokenauthorityv1.ListPrincipalsResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	size, err := adminPageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	ps, next, err := s.tenants.ListPrincipals(ctx, t.ID, size, req.GetPageToken())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.ListPrincipalsResponse{NextPageToken: next}
	for _, p := range ps {
		out.Principals = append(out.Principals, principalToProto(p))
	}
	return out, nil
}

func (s *adminService) ListSigningKeys(ctx context.Context, req *tokenauthorityv1.ListSigningKeysRequest) (*tokenauthorityv1.ListSigningKeysResponse, error) {
	t, err := targetTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	st, err := s.keys.KeyStatuses(ctx, t.ID)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &tokenauthorityv1.ListSigningKeysResponse{}
	for _, k := range st {
		out.Keys = append(out.Keys, keyStatusToProto(k))
	}
	return out, nil
}

var keyStates = map[keys.State]tokenauthorityv1.SigningKeyState{
	keys.StatePublished: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_PUBLISHED,
	keys.StateActive:    tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE,
	keys.StateRetiring:  tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_RETIRING,
	keys.StateWithdrawn: tokenauthorityv1.SigningKeyState_SIGNING_KEY_STATE_WITHDRAWN,
}

func keyStatusToProto(k keys.KeyStatus) *tokenauthorityv1.SigningKey {
	return &tokenauthorityv1.SigningKey{
		Kid:          k.ID,
		Algorithm:    algorithmToProto(k.Algorithm),
		State:        keyStates[k.State],
		CreateTime:   timestampOrNil(k.CreatedAt),
		PublishTime:  timestampOrNil(k.PublishedAt),
		ActivateTime: timestampOrNil(k.ActivatesAt),
		RetireTime:   timestampOrNil(k.RetiredAt),
		ExpireTime:   timestampOrNil(k.ExpiresAt),
		WithdrawTime: timestampOrNil(k.WithdrawnAt),
	}
}

// timestampOrNil converts t, leaving the zero time unset.
func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
