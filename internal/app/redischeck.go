package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// errEvictingRedis stops a production start on a Redis that may evict keys.
var errEvictingRedis = errors.New("Redis may evict keys this service cannot lose") //nolint:staticcheck // ST1005: Redis is a name

// redisNode is what the start-up check learns of one Redis server.
type redisNode struct {
	addr   string
	policy string // maxmemory-policy
	aof    bool   // appendonly yes
	// rdb is whether snapshots are configured (CONFIG GET save); unknown when CONFIG is disabled,
	// as managed services often do.
	rdb, rdbKnown bool
}

// checkRedis looks at the settings of every Redis master the client reaches. An evicting
// maxmemory-policy stops a production start unless TOKENAUTHORITY_REDIS_ALLOW_EVICTION says
// otherwise: under memory pressure Redis would evict revocation marks and cut-offs (all keys here
// expire, so volatile-* policies pick them too), bringing revoked tokens back. No persistence is a
// warning: a restart loses sessions, and tenants, API keys and signing keys with them.
func checkRedis(ctx context.Context, client redis.UniversalClient, production, allowEviction bool, log *slog.Logger) error {
	nodes, err := redisNodes(ctx, client)
	if err != nil {
		// Not fatal: the store answered the probe; the next start checks again.
		log.Warn("could not read the Redis settings (maxmemory-policy, persistence)", slog.String("error", err.Error()))
		return nil
	}
	var evicting []string
	for _, n := range nodes {
		if n.policy != "" && n.policy != "noeviction" {
			evicting = append(evicting, n.addr+" ("+n.policy+")")
		}
		if !n.aof && n.rdbKnown && !n.rdb {
			log.Warn("Redis has no persistence: a restart of it loses every session, tenant, API key and signing key; enable appendonly (AOF)",
				slog.String("redis", n.addr))
		}
	}
	if len(evicting) == 0 {
		return nil
	}
	msg := fmt.Sprintf("maxmemory-policy of %s is not noeviction: under memory pressure Redis would evict revocation marks "+
		"(ta:{...}:j:*) and cut-offs (ta:{...}:cut), bringing revoked tokens back, and the records of tenants, API keys and signing keys",
		strings.Join(evicting, ", "))
	if !production || allowEviction {
		log.Warn(msg, slog.Bool("allowed", allowEviction))
		return nil
	}
	return fmt.Errorf("%w: %s; set maxmemory-policy noeviction on Redis, or TOKENAUTHORITY_REDIS_ALLOW_EVICTION=true to start anyway",
		errEvictingRedis, msg)
}

// redisNodes reads the settings of each master: every shard of a Cluster, else the one server.
func redisNodes(ctx context.Context, client redis.UniversalClient) ([]redisNode, error) {
	if cc, ok := client.(*redis.ClusterClient); ok {
		var (
			mu    sync.Mutex // ForEachMaster calls fn concurrently
			nodes []redisNode
		)
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			n, err := readRedisNode(ctx, c, c.Options().Addr)
			if err != nil {
				return err
			}
			mu.Lock()
			nodes = append(nodes, n)
			mu.Unlock()
			return nil
		})
		return nodes, err
	}
	addr := ""
	if c, ok := client.(*redis.Client); ok {
		addr = c.Options().Addr
	}
	n, err := readRedisNode(ctx, client, addr)
	if err != nil {
		return nil, err
	}
	return []redisNode{n}, nil
}

func readRedisNode(ctx context.Context, c redis.Cmdable, addr string) (redisNode, error) {
	n := redisNode{addr: addr}
	info, err := c.Info(ctx, "memory", "persistence").Result()
	if err != nil {
		return n, fmt.Errorf("INFO: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "maxmemory_policy":
			n.policy = v
		case "aof_enabled":
			n.aof = v == "1"
		}
	}
	if save, err := c.ConfigGet(ctx, "save").Result(); err == nil {
		n.rdbKnown = true
		n.rdb = strings.TrimSpace(save["save"]) != ""
	}
	return n, nil
}
