package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Default timeouts when the URL sets none: short enough that a dead Redis turns into Unavailable
// quickly instead of holding callers.
const (
	defaultDialTimeout  = time.Second
	defaultReadTimeout  = 500 * time.Millisecond
	defaultWriteTimeout = 500 * time.Millisecond
)

// newRedisClient opens a go-redis universal client from a go-redis URL: a `master_name` parameter
// makes the addresses Sentinels, extra `addr` parameters make a Cluster, otherwise one server.
func newRedisClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("TOKENAUTHORITY_REDIS_URL: not a URL")
	}
	q := u.Query()
	// The store's time budget (TOKENAUTHORITY_STORE_TIMEOUT) is a context deadline: go-redis must
	// let it cut a read or write short, not only stop retrying once it has passed.
	timeouts := func(dial, read, write *time.Duration, contextTimeout *bool) {
		*contextTimeout = true
		if !q.Has("dial_timeout") {
			*dial = defaultDialTimeout
		}
		if !q.Has("read_timeout") {
			*read = defaultReadTimeout
		}
		if !q.Has("write_timeout") {
			*write = defaultWriteTimeout
		}
	}
	// The parse errors of go-redis can quote the URL, password included: never pass them on.
	switch {
	case q.Has("master_name"):
		o, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("TOKENAUTHORITY_REDIS_URL: invalid Sentinel URL")
		}
		timeouts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled)
		return redis.NewFailoverClient(o), nil
	case q.Has("addr"):
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("TOKENAUTHORITY_REDIS_URL: invalid Cluster URL")
		}
		timeouts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled)
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("TOKENAUTHORITY_REDIS_URL: invalid URL")
	}
	timeouts(&o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout, &o.ContextTimeoutEnabled)
	return redis.NewClient(o), nil
}

// redisLogger sends go-redis's own messages (dial failures, pool events) to the service's
// structured log instead of stderr. They name addresses, never credentials or command arguments.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.LogAttrs(ctx, slog.LevelWarn, "redis client", slog.String("detail", fmt.Sprintf(format, v...)))
}
