package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// Cluster is a Redis Cluster of masters (no replicas) on loopback ports, owned by one test.
type Cluster struct {
	nodes []*node
}

// StartCluster starts masters redis-server processes in cluster mode, each with its own
// nodes.conf in a temporary directory and its client and bus ports reserved like Start's, assigns
// the 16384 slots to them in equal ranges, joins them, and waits until every node reports
// cluster_state:ok and sees every slot served by a node with a known address. Everything stops
// when the test ends.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 1 {
		tb.Fatalf("redistest: StartCluster(%d): need at least one master", masters)
	}
	c := &Cluster{}
	for range masters {
		c.nodes = append(c.nodes, startNode(tb, 1, func(port int, extra []int, dir string) ([]string, error) {
			return append(serverArgs(port, dir),
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				// Its own bus port, reserved like the client port: the default (port+10000) may be
				// taken, or beyond 65535.
				"--cluster-port", strconv.Itoa(extra[0]),
				// Known from the start, so that even a node that meets no other has an address
				// in CLUSTER SLOTS.
				"--cluster-announce-ip", "127.0.0.1",
			), nil
		}))
	}
	ctx := context.Background()
	clients := make([]*redis.Client, masters)
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr(), MaxRetries: -1})
		defer clients[i].Close()
	}
	for i, cl := range clients {
		lo, hi := i*clusterSlots/masters, (i+1)*clusterSlots/masters-1
		// Distinct config epochs before the nodes meet, as redis-cli --cluster create sets them,
		// so that no epoch collision has to be resolved.
		if err := cl.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER SET-CONFIG-EPOCH on %s: %v", c.nodes[i].addr(), err)
		}
		if err := cl.ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			tb.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %v", lo, hi, c.nodes[i].addr(), err)
		}
	}
	for _, n := range c.nodes[1:] {
		// CLUSTER MEET with the bus port, which is not the default.
		err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.extra[0]).Err()
		if err != nil {
			tb.Fatalf("redistest: CLUSTER MEET %s: %v", n.addr(), err)
		}
	}
	for i, cl := range clients {
		if err := poll(func() error { return clusterReady(ctx, cl, masters) }); err != nil {
			tb.Fatalf("redistest: cluster node %s: %v%s", c.nodes[i].addr(), err, logsOf(c.nodes))
		}
	}
	return c
}

// clusterReady checks that a node reports the cluster ok, knows all masters, and sees every slot
// served by an online master with a known address.
func clusterReady(ctx context.Context, cl *redis.Client, masters int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cl.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	fields := infoFields(info)
	want := map[string]string{
		"cluster_state":          "ok",
		"cluster_slots_assigned": strconv.Itoa(clusterSlots),
		"cluster_slots_ok":       strconv.Itoa(clusterSlots),
		"cluster_known_nodes":    strconv.Itoa(masters),
		"cluster_size":           strconv.Itoa(masters),
	}
	for k, v := range want {
		if fields[k] != v {
			return fmt.Errorf("CLUSTER INFO %s = %q, want %q", k, fields[k], v)
		}
	}
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		return err
	}
	covered := 0
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		if len(sh.Nodes) != 1 || sh.Nodes[0].Role != "master" || sh.Nodes[0].Health != "online" || sh.Nodes[0].IP != "127.0.0.1" {
			return fmt.Errorf("CLUSTER SHARDS: slots %v are served by %+v, want one online master on 127.0.0.1", sh.Slots, sh.Nodes)
		}
		for _, r := range sh.Slots {
			covered += int(r.End-r.Start) + 1
		}
	}
	if covered != clusterSlots {
		return fmt.Errorf("CLUSTER SHARDS covers %d slots, want %d", covered, clusterSlots)
	}
	return nil
}

// infoFields parses the "key:value" lines of an INFO-style reply.
func infoFields(info string) map[string]string {
	m := make(map[string]string)
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Addrs returns the host:port of every node, in the order of their slot ranges.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr()
	}
	return addrs
}

// URL returns the go-redis cluster URL of the nodes, redis://host:port?addr=host:port&addr=...,
// the form TOKENAUTHORITY_REDIS_URL takes for a Cluster: the addr parameters select a cluster
// client.
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	others := addrs[1:]
	if len(others) == 0 {
		// One node: name it again, so that the URL still selects a cluster client.
		others = addrs
	}
	var b strings.Builder
	b.WriteString("redis://" + addrs[0])
	for i, a := range others {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		b.WriteString(sep + "addr=" + a)
	}
	return b.String()
}

// Client returns a new cluster client of the nodes, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}
