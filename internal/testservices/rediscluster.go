package testservices

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// clusterBusOffset is how far above its port a cluster node listens for the
// cluster bus; a node's port must leave room for it below 65536.
const clusterBusOffset = 10000

// RedisCluster is a private Redis Cluster owned by one test: masters with
// the slots split evenly, each with its replicas, all on loopback. It is
// stopped and deleted when the test ends.
type RedisCluster struct {
	t     testing.TB
	nodes []*clusterNode
	// shards[i] lists the nodes of master i's shard, its first master
	// first; which of them is master now changes with failovers.
	shards [][]*clusterNode
}

type clusterNode struct {
	srv   *Server
	proc  *redisProcess
	addr  string
	id    string
	admin rueidis.Client
	dead  bool
}

// StartRedisCluster starts a Redis Cluster from SOUL_TEST_REDIS_SERVER with
// masters masters and replicasPerMaster replicas each, and returns it once
// every node reports cluster_state:ok and agrees on who serves each slot.
// Nodes notice a dead peer after one second (cluster-node-timeout), so a
// killed master's replica takes over in about two.
func StartRedisCluster(t testing.TB, masters, replicasPerMaster int) *RedisCluster {
	t.Helper()
	if masters < 1 || replicasPerMaster < 0 {
		t.Fatalf("testservices: a cluster of %d masters with %d replicas each", masters, replicasPerMaster)
	}
	bin := lookup(t, EnvRedisServer, "Redis")
	c := &RedisCluster{t: t}
	for m := 0; m < masters; m++ {
		var shard []*clusterNode
		for r := 0; r <= replicasPerMaster; r++ {
			dir := serverDir(t, "soul-redis-cluster-", -1, -1)
			proc := &redisProcess{bin: bin, dir: dir, extra: []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", "1000",
				// A replica that lost its master for a while may still
				// take over: the test decides what it kills.
				"--cluster-replica-validity-factor", "0",
				// A replica syncs at once, without the default 5 s
				// wait for more replicas to share the transfer.
				"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
			}}
			srv := launchOn(t, "redis cluster node", proc, func(port int) string {
				return fmt.Sprintf("redis://127.0.0.1:%d", port)
			}, clusterPort)
			opt := rueidis.ClientOption{
				InitAddress:       []string{proc.addr},
				ForceSingleClient: true,
				DisableCache:      true,
				Dialer:            net.Dialer{Timeout: time.Second},
			}
			admin, err := rueidis.NewClient(opt)
			if err != nil {
				t.Fatalf("testservices: connect to cluster node %s: %v", proc.addr, err)
			}
			t.Cleanup(admin.Close)
			n := &clusterNode{srv: srv, proc: proc, addr: proc.addr, admin: admin}
			c.nodes = append(c.nodes, n)
			shard = append(shard, n)
		}
		c.shards = append(c.shards, shard)
	}

	for _, n := range c.nodes {
		id, err := n.do("CLUSTER", "MYID").ToString()
		if err != nil {
			t.Fatalf("testservices: CLUSTER MYID on %s: %v", n.addr, err)
		}
		n.id = id
	}
	for i, shard := range c.shards {
		lo := i * clusterSlots / masters
		hi := (i+1)*clusterSlots/masters - 1
		if err := shard[0].do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)).Error(); err != nil {
			t.Fatalf("testservices: CLUSTER ADDSLOTSRANGE on %s: %v", shard[0].addr, err)
		}
	}
	first := c.nodes[0]
	for _, n := range c.nodes[1:] {
		host, port, _ := net.SplitHostPort(n.addr)
		if err := first.do("CLUSTER", "MEET", host, port).Error(); err != nil {
			t.Fatalf("testservices: CLUSTER MEET %s: %v", n.addr, err)
		}
	}
	// A replica can only follow a master it already knows.
	c.waitFor("every node knows the others", func() error {
		for _, n := range c.nodes {
			info, err := n.do("CLUSTER", "INFO").ToString()
			if err != nil {
				return err
			}
			if got := infoField(info, "cluster_known_nodes"); got != strconv.Itoa(len(c.nodes)) {
				return fmt.Errorf("%s knows %s nodes", n.addr, got)
			}
		}
		return nil
	})
	for _, shard := range c.shards {
		for _, r := range shard[1:] {
			if err := r.do("CLUSTER", "REPLICATE", shard[0].id).Error(); err != nil {
				t.Fatalf("testservices: CLUSTER REPLICATE on %s: %v", r.addr, err)
			}
		}
	}
	c.WaitHealthy()
	return c
}

// clusterPort picks a free loopback port whose cluster bus port is free too.
func clusterPort(t testing.TB) int {
	t.Helper()
	for attempt := 0; attempt < 100; attempt++ {
		port := 20000 + rand.IntN(65535-clusterBusOffset-20000)
		ok := true
		for _, p := range []int{port, port + clusterBusOffset} {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("testservices: no free port pair for a cluster node")
	return 0
}

func (n *clusterNode) do(args ...string) rueidis.RedisResult {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return n.admin.Do(ctx, n.admin.B().Arbitrary(args...).Build())
}

// infoField reads one "name:value" line of an INFO-style reply.
func infoField(info, name string) string {
	// RESP3 answers INFO as a verbatim string, "txt:" first.
	info = strings.TrimPrefix(info, "txt:")
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// URL is the cluster's URL for REDIS_URL: every node's address, so a
// client finds the cluster whichever node is down, and cluster=1.
func (c *RedisCluster) URL() string {
	var b strings.Builder
	b.WriteString("redis://" + c.nodes[0].addr + "?cluster=1")
	for _, n := range c.nodes[1:] {
		b.WriteString("&addr=" + n.addr)
	}
	return b.String()
}

// Addrs are the addresses of every node, masters and replicas.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// Masters are the addresses of the nodes that serve slots now.
func (c *RedisCluster) Masters() []string {
	var out []string
	for _, shard := range c.shards {
		if m := c.master(shard); m != nil {
			out = append(out, m.addr)
		}
	}
	return out
}

// master is the node of shard that calls itself master now.
func (c *RedisCluster) master(shard []*clusterNode) *clusterNode {
	for _, n := range shard {
		if n.dead {
			continue
		}
		role, err := n.do("ROLE").ToArray()
		if err == nil && len(role) > 0 {
			if s, _ := role[0].ToString(); s == "master" {
				return n
			}
		}
	}
	return nil
}

// Failover makes a replica of shard i (0 ≤ i < masters) its master with
// CLUSTER FAILOVER, the way an operator moves a master off a host: the old
// master stops taking writes, the replica catches up, then takes over. It
// returns once the cluster is healthy again.
func (c *RedisCluster) Failover(i int) {
	c.t.Helper()
	shard := c.shards[i]
	old := c.master(shard)
	var repl *clusterNode
	for _, n := range shard {
		if n != old && !n.dead {
			repl = n
			break
		}
	}
	if old == nil || repl == nil {
		c.t.Fatalf("testservices: shard %d has no live replica to fail over to", i)
	}
	if err := repl.do("CLUSTER", "FAILOVER").Error(); err != nil {
		c.t.Fatalf("testservices: CLUSTER FAILOVER on %s: %v", repl.addr, err)
	}
	c.waitFor("the replica takes over", func() error {
		if m := c.master(shard); m != repl {
			return fmt.Errorf("%s is not master yet", repl.addr)
		}
		return nil
	})
	c.WaitHealthy()
}

// KillMaster ends shard i's master with SIGKILL and returns once one of its
// replicas has been elected in its place and the cluster is healthy. The
// dead node stays down.
func (c *RedisCluster) KillMaster(i int) {
	c.t.Helper()
	shard := c.shards[i]
	old := c.master(shard)
	if old == nil {
		c.t.Fatalf("testservices: shard %d has no master", i)
	}
	old.srv.Kill()
	old.dead = true
	c.waitFor("a replica is elected", func() error {
		if c.master(shard) == nil {
			return fmt.Errorf("shard %d has no master yet", i)
		}
		return nil
	})
	c.WaitHealthy()
}

// WaitHealthy returns once every live node reports cluster_state:ok and
// they all name the same masters for the slots, failing the test after a
// minute.
func (c *RedisCluster) WaitHealthy() {
	c.t.Helper()
	c.waitFor("cluster_state:ok on every node", func() error {
		var want string
		for _, n := range c.nodes {
			if n.dead {
				continue
			}
			info, err := n.do("CLUSTER", "INFO").ToString()
			if err != nil {
				return err
			}
			if s := infoField(info, "cluster_state"); s != "ok" {
				return fmt.Errorf("%s: cluster_state:%s", n.addr, s)
			}
			view, err := n.slotOwners()
			if err != nil {
				return err
			}
			if want == "" {
				want = view
			} else if view != want {
				return fmt.Errorf("%s sees masters %s, another node %s", n.addr, view, want)
			}
		}
		// Every replica must follow its master for a failover to find a
		// replica with the data.
		for _, shard := range c.shards {
			m := c.master(shard)
			for _, n := range shard {
				if n == m || n.dead {
					continue
				}
				info, err := n.do("INFO", "replication").ToString()
				if err != nil {
					return err
				}
				if s := infoField(info, "master_link_status"); s != "up" {
					return fmt.Errorf("%s: master_link_status:%s", n.addr, s)
				}
			}
		}
		return nil
	})
}

// slotOwners is this node's view of which nodes serve slots: their ids,
// sorted, from CLUSTER NODES.
func (n *clusterNode) slotOwners() (string, error) {
	out, err := n.do("CLUSTER", "NODES").ToString()
	if err != nil {
		return "", err
	}
	var ids []string
	out = strings.TrimPrefix(out, "txt:")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		ids = append(ids, f[0])
	}
	sort.Strings(ids)
	return strings.Join(ids, ","), nil
}

func (c *RedisCluster) waitFor(what string, cond func() error) {
	c.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testservices: redis cluster: %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FlushScripts empties every live node's script cache (SCRIPT FLUSH), as a
// restart or a fresh replica would: the next EVALSHA answers NOSCRIPT.
func (c *RedisCluster) FlushScripts() {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.dead {
			continue
		}
		if err := n.do("SCRIPT", "FLUSH").Error(); err != nil {
			c.t.Fatalf("testservices: SCRIPT FLUSH on %s: %v", n.addr, err)
		}
	}
}

// The shared cluster of a test binary: started by the first test that asks,
// stopped by StopSharedRedisCluster from TestMain.
var shared struct {
	sync.Mutex
	tb      *processTB
	cluster *RedisCluster
	err     *sharedAbort
}

// SharedRedisCluster returns a 3-master, 1-replica-each cluster shared by
// every test of the binary, started on first use (about 2 s). Tests share
// it as they share the test Redis: each under keys of its own. It must not
// be failed over or killed; start a private one for that. A package that
// uses it calls StopSharedRedisCluster in TestMain after m.Run.
func SharedRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.cluster == nil && shared.err == nil {
		tb := &processTB{}
		func() {
			defer func() {
				if r := recover(); r != nil {
					a, ok := r.(sharedAbort)
					if !ok {
						panic(r)
					}
					shared.err = &a
				}
			}()
			shared.tb = tb
			shared.cluster = StartRedisCluster(tb, 3, 1)
		}()
		if shared.err != nil {
			tb.cleanup()
		}
	}
	if a := shared.err; a != nil {
		if a.skip {
			t.Skip(a.msg)
		}
		t.Fatal(a.msg)
	}
	return shared.cluster
}

// StopSharedRedisCluster stops the shared cluster, if one was started.
func StopSharedRedisCluster() {
	shared.Lock()
	defer shared.Unlock()
	if shared.tb != nil {
		shared.tb.cleanup()
		shared.tb, shared.cluster = nil, nil
	}
}

// sharedAbort is how processTB ends the start of the shared cluster.
type sharedAbort struct {
	msg  string
	skip bool
}

// processTB is the testing.TB of the shared cluster, which outlives the
// test that started it: cleanups run at StopSharedRedisCluster, and a
// failure while starting fails (or skips) the test that asked. Only the
// methods the servers' helpers call are implemented.
type processTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (p *processTB) Helper() {}
func (p *processTB) Cleanup(f func()) {
	p.mu.Lock()
	p.cleanups = append(p.cleanups, f)
	p.mu.Unlock()
}
func (p *processTB) Fatalf(format string, args ...any) {
	panic(sharedAbort{msg: fmt.Sprintf(format, args...)})
}
func (p *processTB) Fatal(args ...any) { panic(sharedAbort{msg: fmt.Sprint(args...)}) }
func (p *processTB) Skipf(format string, args ...any) {
	panic(sharedAbort{msg: fmt.Sprintf(format, args...), skip: true})
}
func (p *processTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testservices: shared redis cluster: "+format+"\n", args...)
}
func (p *processTB) Logf(format string, args ...any) {}

func (p *processTB) cleanup() {
	p.mu.Lock()
	fs := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
