package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokenauthority/tokenauthority/internal/store"
)

var (
	//go:embed scripts/create.lua
	createSrc    string
	createScript = goredis.NewScript(createSrc)

	//go:embed scripts/rotate.lua
	rotateSrc    string
	rotateScript = goredis.NewScript(rotateSrc)

	//go:embed scripts/revoke.lua
	revokeSrc    string
	revokeScript = goredis.NewScript(revokeSrc)

	//go:embed scripts/delete.lua
	deleteSrc    string
	deleteScript = goredis.NewScript(deleteSrc)

	//go:embed scripts/end.lua
	endSrc    string
	endScript = goredis.NewScript(endSrc)

	//go:embed scripts/announced.lua
	announcedSrc    string
	announcedScript = goredis.NewScript(announcedSrc)

	//go:embed scripts/cutoff.lua
	cutoffSrc    string
	cutoffScript = goredis.NewScript(cutoffSrc)

	//go:embed scripts/list.lua
	listSrc    string
	listScript = goredis.NewScript(listSrc)

	//go:embed scripts/record_create.lua
	recordCreateSrc    string
	recordCreateScript = goredis.NewScript(recordCreateSrc)

	//go:embed scripts/record_delete.lua
	recordDeleteSrc    string
	recordDeleteScript = goredis.NewScript(recordDeleteSrc)

	//go:embed scripts/record_delete_if.lua
	recordDeleteIfSrc    string
	recordDeleteIfScript = goredis.NewScript(recordDeleteIfSrc)

	//go:embed scripts/record_create_owned.lua
	recordCreateOwnedSrc    string
	recordCreateOwnedScript = goredis.NewScript(recordCreateOwnedSrc)

	//go:embed scripts/record_delete_owned.lua
	recordDeleteOwnedSrc    string
	recordDeleteOwnedScript = goredis.NewScript(recordDeleteOwnedSrc)

	//go:embed scripts/record_swap.lua
	recordSwapSrc    string
	recordSwapScript = goredis.NewScript(recordSwapSrc)

	//go:embed scripts/record_own.lua
	recordOwnSrc    string
	recordOwnScript = goredis.NewScript(recordOwnSrc)
)

// Store keeps sessions and records in Redis. It is safe for concurrent use.
type Store struct {
	client  goredis.UniversalClient
	now     func() time.Time
	timeout time.Duration // the store work of one call; see WithTimeout
	batch   batcher
}

// Option configures a Store.
type Option func(*Store)

// WithClock sets the clock the store reads the current time from (to skip revocation marks that
// would already have expired). The default is time.Now. Expiry itself follows Redis's clock.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns a Store that uses client, which may be a single-node, failover or cluster client.
func New(client goredis.UniversalClient, opts ...Option) *Store {
	s := &Store{client: client, now: time.Now}
	s.batch.s = s
	for _, o := range opts {
		o(s)
	}
	if s.timeout > 0 {
		installBudget(client, s.timeout)
	}
	return s
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// unavailable wraps a failure of Redis itself in store.ErrUnavailable.
func unavailable(op string, err error) error {
	return fmt.Errorf("redis store: %s: %w: %w", op, store.ErrUnavailable, err)
}

// runScript queues script on p, by digest or, when the server lacks it, by source.
func runScript(ctx context.Context, p goredis.Pipeliner, script *goredis.Script, byDigest bool, keys []string, args ...any) *goredis.Cmd {
	if byDigest {
		return script.EvalSha(ctx, p, keys, args...)
	}
	return script.Eval(ctx, p, keys, args...)
}

// pipelined sends the plain commands that queue adds in one pipeline (one round trip) and returns
// the first failure, a missing key (redis.Nil) not counting; the commands carry their results.
// Scripts go through the batcher, which handles a script that Redis has lost.
func (s *Store) pipelined(ctx context.Context, queue func(p goredis.Pipeliner)) error {
	return cmdErr(s.exec(ctx, queue)...)
}

// exec sends one pipeline of the commands that queue adds.
func (s *Store) exec(ctx context.Context, queue func(p goredis.Pipeliner)) []goredis.Cmder {
	p := s.client.Pipeline()
	queue(p)
	cmds, _ := p.Exec(ctx) // Every command carries its own error.
	return cmds
}

// lostScript reports whether a command failed because Redis did not know a script's digest.
func lostScript(cmds []goredis.Cmder) bool {
	for _, c := range cmds {
		if err := c.Err(); errors.Is(err, goredis.ErrNoScript) || goredis.HasErrorPrefix(err, "NOSCRIPT") {
			return true
		}
	}
	return false
}

// readMillis parses the reply of a GET of a unix-ms value; a missing key is the zero time.
func readMillis(cmd *goredis.StringCmd) (time.Time, error) {
	v, err := cmd.Result()
	if errors.Is(err, goredis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return parseMillis(v)
}

// parseMillis parses a unix-ms value; "" is the zero time.
func parseMillis(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("malformed timestamp")
	}
	return time.UnixMilli(ms).UTC(), nil
}

func millis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
