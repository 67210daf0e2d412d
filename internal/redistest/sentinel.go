package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// masterName is the name under which the Sentinels monitor the master.
	masterName = "mymaster"
	// sentinelCount and sentinelQuorum: three Sentinels, two of which must agree that the master
	// is down before one of them fails over.
	sentinelCount  = 3
	sentinelQuorum = 2
	// downAfter is how long the master must fail to answer before a Sentinel thinks it down. It
	// also bounds which replica may be promoted: one whose link to the master has been down longer
	// than ten times downAfter past the master's detected failure is never chosen. A Sentinel
	// starved for 2s on a busy machine enters TILT mode and acts on nothing for 30s, detecting the
	// death that much later, so ten times downAfter must exceed 30s or the failover never comes.
	downAfter = 5 * time.Second
	// failoverTimeout bounds one failover attempt; a failed one is retried after twice this.
	failoverTimeout = 5 * time.Second
)

// Sentinel is a Sentinel-managed Redis owned by one test: a master, one replica, and three
// Sentinels (quorum 2) that fail over to the replica within seconds of the master's death.
type Sentinel struct {
	// servers are the data servers: servers[0] started as the master, servers[1] as its replica.
	servers   []*node
	sentinels []*node
	clients   []*redis.SentinelClient // one per Sentinel, in the order of sentinels
}

// StartSentinel starts a master, a replica of it, and three Sentinels monitoring it (quorum 2,
// down-after 5s, failover timeout 5s), all on loopback ports, and waits until the replica is in
// sync and every Sentinel knows the replica and the other Sentinels, so that a failover can
// happen. Everything stops when the test ends.
func StartSentinel(tb testing.TB) *Sentinel {
	tb.Helper()
	s := &Sentinel{}
	// Diskless replication without its default 5s delay, so that a replica syncs at once.
	master := startNode(tb, 0, func(port int, _ []int, dir string) ([]string, error) {
		return append(serverArgs(port, dir), "--repl-diskless-sync-delay", "0"), nil
	})
	replica := startNode(tb, 0, func(port int, _ []int, dir string) ([]string, error) {
		return append(serverArgs(port, dir), "--repl-diskless-sync-delay", "0",
			"--replicaof", "127.0.0.1", strconv.Itoa(master.port)), nil
	})
	s.servers = []*node{master, replica}
	// The replica is in sync before the Sentinels start, so that their first look at the master
	// finds it.
	if err := poll(func() error { return replicaInSync(replica, master.port) }); err != nil {
		tb.Fatalf("redistest: replica %s: %v%s", replica.addr(), err, logsOf(s.servers))
	}
	for range sentinelCount {
		sn := startNode(tb, 0, func(port int, _ []int, dir string) ([]string, error) {
			// A Sentinel rewrites its configuration file: it must be its own and writable.
			conf := filepath.Join(dir, "sentinel.conf")
			text := strings.Join([]string{
				"bind 127.0.0.1",
				"port " + strconv.Itoa(port),
				"daemonize no",
				"loglevel warning",
				"dir " + dir,
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", masterName, master.port, sentinelQuorum),
				fmt.Sprintf("sentinel down-after-milliseconds %s %d", masterName, downAfter.Milliseconds()),
				fmt.Sprintf("sentinel failover-timeout %s %d", masterName, failoverTimeout.Milliseconds()),
				fmt.Sprintf("sentinel parallel-syncs %s 1", masterName),
			}, "\n") + "\n"
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				return nil, fmt.Errorf("write sentinel configuration: %w", err)
			}
			return []string{conf, "--sentinel"}, nil
		})
		s.sentinels = append(s.sentinels, sn)
		c := redis.NewSentinelClient(&redis.Options{
			Addr: sn.addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		})
		tb.Cleanup(func() { _ = c.Close() })
		s.clients = append(s.clients, c)
	}
	for i, c := range s.clients {
		if err := poll(func() error { return sentinelReady(c, replica.addr()) }); err != nil {
			tb.Fatalf("redistest: sentinel %s: %v%s", s.sentinels[i].addr(), err, logsOf(append(s.sentinels, s.servers...)))
		}
	}
	return s
}

// replicaInSync checks that a replica's link to the master on masterPort is up.
func replicaInSync(replica *node, masterPort int) error {
	info, err := roundTrip(replica.addr(), 2*time.Second, "INFO", "replication")
	if err != nil {
		return err
	}
	f := infoFields(info)
	if f["role"] != "slave" || f["master_port"] != strconv.Itoa(masterPort) || f["master_link_status"] != "up" {
		return fmt.Errorf("role %q, master port %q, link %q", f["role"], f["master_port"], f["master_link_status"])
	}
	return nil
}

// sentinelReady checks that a Sentinel sees the master up, with the replica in sync, and the
// other Sentinels: what it needs to agree on a failover and to carry it out.
func sentinelReady(c *redis.SentinelClient, replicaAddr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := c.Master(ctx, masterName).Result()
	if err != nil {
		return err
	}
	if m["flags"] != "master" || m["num-slaves"] != "1" || m["num-other-sentinels"] != strconv.Itoa(sentinelCount-1) {
		return fmt.Errorf("master flags %q, %s replicas, %s other sentinels", m["flags"], m["num-slaves"], m["num-other-sentinels"])
	}
	replicas, err := c.Replicas(ctx, masterName).Result()
	if err != nil {
		return err
	}
	if len(replicas) != 1 {
		return fmt.Errorf("%d replicas", len(replicas))
	}
	r := replicas[0]
	if net.JoinHostPort(r["ip"], r["port"]) != replicaAddr || r["flags"] != "slave" || r["master-link-status"] != "ok" {
		return fmt.Errorf("replica %s:%s flags %q link %q", r["ip"], r["port"], r["flags"], r["master-link-status"])
	}
	return nil
}

// MasterName returns the name under which the Sentinels monitor the master.
func (s *Sentinel) MasterName() string { return masterName }

// SentinelAddrs returns the host:port of every Sentinel.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, n := range s.sentinels {
		addrs[i] = n.addr()
	}
	return addrs
}

// URL returns the go-redis failover URL of the Sentinels,
// redis://sentinel/0?master_name=mymaster&addr=sentinel&addr=sentinel, the form
// TOKENAUTHORITY_REDIS_URL takes for Sentinel: the master_name parameter selects a failover client.
func (s *Sentinel) URL() string {
	addrs := s.SentinelAddrs()
	u := "redis://" + addrs[0] + "/0?master_name=" + masterName
	for _, a := range addrs[1:] {
		u += "&addr=" + a
	}
	return u
}

// Client returns a new failover client of the master, closed when the test ends.
func (s *Sentinel) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: masterName, SentinelAddrs: s.SentinelAddrs()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// MasterAddr returns the host:port of the current master: the server that every Sentinel names
// and that reports itself a master. It waits while the Sentinels disagree (a failover in progress).
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	var m *node
	err := poll(func() error {
		var err error
		m, err = s.currentMaster("")
		return err
	})
	if err != nil {
		tb.Fatalf("redistest: sentinel master: %v", err)
	}
	return m.addr()
}

// WaitReplicated waits until every running replica of the current master has every write the
// master has taken so far (its replication offset reaches the master's). It fails the test at once
// when the master has no replica left, as after a failover to the only replica.
func (s *Sentinel) WaitReplicated(tb testing.TB) {
	tb.Helper()
	master := s.nodeAt(s.MasterAddr(tb))
	var replicas []*node
	for _, n := range s.servers {
		if n != master && n.running() {
			replicas = append(replicas, n)
		}
	}
	if len(replicas) == 0 {
		tb.Fatalf("redistest: wait for replication: the master %s has no replica left", master.addr())
	}
	// The target is the master's offset now: writes that come later need not be waited for.
	info, err := roundTrip(master.addr(), 5*time.Second, "INFO", "replication")
	if err != nil {
		tb.Fatalf("redistest: wait for replication: INFO of the master: %v", err)
	}
	target, err := strconv.ParseInt(infoFields(info)["master_repl_offset"], 10, 64)
	if err != nil {
		tb.Fatalf("redistest: wait for replication: master_repl_offset: %v", err)
	}
	err = poll(func() error {
		for _, n := range replicas {
			if err := replicaInSync(n, master.port); err != nil {
				return fmt.Errorf("replica %s: %w", n.addr(), err)
			}
			info, err := roundTrip(n.addr(), 2*time.Second, "INFO", "replication")
			if err != nil {
				return fmt.Errorf("replica %s: %w", n.addr(), err)
			}
			off, err := strconv.ParseInt(infoFields(info)["slave_repl_offset"], 10, 64)
			if err != nil || off < target {
				return fmt.Errorf("replica %s at offset %d, master at %d", n.addr(), off, target)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("redistest: wait for replication: %v", err)
	}
}

// KillMaster kills the current master's process (SIGKILL: no goodbye to clients or replicas) and
// returns its address. The Sentinels then fail over to the replica; WaitFailover waits for that.
func (s *Sentinel) KillMaster(tb testing.TB) string {
	tb.Helper()
	addr := s.MasterAddr(tb)
	s.nodeAt(addr).kill()
	return addr
}

// WaitFailover waits until every Sentinel names a master other than old and that server reports
// itself a master, and returns its address.
func (s *Sentinel) WaitFailover(tb testing.TB, old string) string {
	tb.Helper()
	var m *node
	err := poll(func() error {
		var err error
		m, err = s.currentMaster(old)
		return err
	})
	if err != nil {
		tb.Fatalf("redistest: failover from %s: %v%s", old, err, logsOf(append(s.sentinels, s.servers...)))
	}
	return m.addr()
}

// currentMaster returns the server that every running Sentinel names as the master and that
// reports itself a master. A Sentinel that still names the server at not (the master being failed
// over from) is an error.
func (s *Sentinel) currentMaster(not string) (*node, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var addr string
	for i, c := range s.clients {
		if !s.sentinels[i].running() {
			continue
		}
		hp, err := c.GetMasterAddrByName(ctx, masterName).Result()
		if err != nil {
			return nil, fmt.Errorf("sentinel %s: %w", s.sentinels[i].addr(), err)
		}
		if len(hp) != 2 {
			return nil, fmt.Errorf("sentinel %s: master address %v", s.sentinels[i].addr(), hp)
		}
		a := net.JoinHostPort(hp[0], hp[1])
		switch {
		case a == not:
			return nil, fmt.Errorf("sentinel %s still names %s", s.sentinels[i].addr(), not)
		case addr != "" && a != addr:
			return nil, fmt.Errorf("sentinels disagree: %s and %s", addr, a)
		}
		addr = a
	}
	n := s.nodeAt(addr)
	if n == nil || !n.running() {
		return nil, fmt.Errorf("the sentinels name %s, which is not a running server", addr)
	}
	info, err := roundTrip(addr, 2*time.Second, "INFO", "replication")
	if err != nil {
		return nil, fmt.Errorf("master %s: %w", addr, err)
	}
	if role := infoFields(info)["role"]; role != "master" {
		return nil, fmt.Errorf("the sentinels name %s, whose role is %q", addr, role)
	}
	return n, nil
}

// nodeAt returns the data server at addr, or nil.
func (s *Sentinel) nodeAt(addr string) *node {
	for _, n := range s.servers {
		if n.addr() == addr {
			return n
		}
	}
	return nil
}
