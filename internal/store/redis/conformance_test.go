package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/redistest"
	"github.com/tokenauthority/tokenauthority/internal/revocation"
	"github.com/tokenauthority/tokenauthority/internal/store"
	"github.com/tokenauthority/tokenauthority/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) storetest.Backend {
		if err := client.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("FLUSHDB: %v", err)
		}
		return inspected{Store: New(client, WithClock(clock.Now)), client: client}
	})
}

// inspected is a Store that reports its keys' remaining lifetimes to the conformance suite, since
// Redis expires them by its own clock. Any client will do, a cluster client included.
type inspected struct {
	*Store
	client goredis.Cmdable
}

var _ storetest.TTLInspector = inspected{}

func (s inspected) SessionTTL(ctx context.Context, sessionID string) (time.Duration, error) {
	tag, _ := store.SessionTag(sessionID)
	return s.client.PTTL(ctx, sessionKey(tag, sessionID)).Result()
}

func (s inspected) RevocationTTL(ctx context.Context, jti string) (time.Duration, error) {
	sid, _ := store.SessionOfJTI(jti)
	tag, _ := store.SessionTag(sid)
	return s.client.PTTL(ctx, revokedKey(tag, jti)).Result()
}

func (s inspected) SubjectCutoffTTL(ctx context.Context, tenantID, subject string) (time.Duration, error) {
	return s.client.PTTL(ctx, subjectCutoffKey(store.SubjectTag(tenantID, subject))).Result()
}

func (s inspected) TombstoneTTL(ctx context.Context, sessionID string) (time.Duration, error) {
	tag, _ := store.SessionTag(sessionID)
	return s.client.PTTL(ctx, tombstoneKey(tag, sessionID)).Result()
}

func (s inspected) TenantCutoffTTL(ctx context.Context, tenantID string) (time.Duration, error) {
	return s.client.PTTL(ctx, tenantCutoffKey(tenantID)).Result()
}

func TestEventsConformance(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	storetest.RunEvents(t, func(t *testing.T, clock *storetest.Clock) revocation.Log {
		if err := client.FlushDB(context.Background()).Err(); err != nil {
			t.Fatalf("FLUSHDB: %v", err)
		}
		return NewEvents(client, clock.Now, storetest.EventsRetention, storetest.EventsCap)
	})
}
