package limiter

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/soulapp/soul/internal/testservices"
)

// A marker is read in the round trip of a limit, filled only where absent,
// overwritten by a revocation, and unknown without Redis.
func TestMarkers(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		l, c, _ := redisLimiter(t)
		testMarkers(t, l, c)
	})
	t.Run("cluster", func(t *testing.T) {
		l, c, _ := clusterLimiter(t)
		testMarkers(t, l, c)
	})
}

func testMarkers(t *testing.T, l *Limiter, c rueidis.Client) {
	ctx := context.Background()
	perUser := Rule{"default", 100, time.Minute}

	allowMarked := func(name string) Marker {
		t.Helper()
		d, m, err := l.AllowMarked(ctx, perUser, "user:1", name)
		if err != nil || !d.Allowed || d.Storage != StorageRedis {
			t.Fatalf("AllowMarked: %+v %v", d, err)
		}
		return m
	}
	if m := allowMarked("session:a"); m != MarkerAbsent {
		t.Fatalf("a marker never written reads %s", m)
	}
	if m := l.Marker(ctx, "session:a"); m != MarkerAbsent {
		t.Fatalf("Marker of a marker never written: %s", m)
	}
	l.SetMarker(ctx, "session:a", MarkerLive, time.Minute, true)
	if m := allowMarked("session:a"); m != MarkerLive {
		t.Fatalf("after a fill: %s", m)
	}
	l.SetMarker(ctx, "session:a", MarkerRevoked, time.Minute, false)
	if m := allowMarked("session:a"); m != MarkerRevoked {
		t.Fatalf("after a revocation: %s", m)
	}
	// A fill that read the database before the revocation cannot undo it.
	l.SetMarker(ctx, "session:a", MarkerLive, time.Minute, true)
	if m := l.Marker(ctx, "session:a"); m != MarkerRevoked {
		t.Fatalf("a late fill overwrote the revocation: %s", m)
	}
	// The limit itself still counts once per call.
	if d := peek(t, l, perUser, "user:1"); d.Remaining != perUser.Limit-3 {
		t.Fatalf("after three marked calls: %+v", d)
	}
	// Markers live no longer than asked, and their keys hide the name.
	key := l.MarkerKey("session:a")
	if ttl, err := c.Do(ctx, c.B().Pttl().Key(key).Build()).AsInt64(); err != nil || ttl <= 0 || ttl > time.Minute.Milliseconds() {
		t.Fatalf("PTTL of the marker: %d %v", ttl, err)
	}
	if key == l.MarkerKey("session:b") || key == l.storageKey("marker", "session:a") {
		t.Fatal("marker keys collide")
	}

	local := openLimiter(t, Options{})
	if _, m, _ := local.AllowMarked(ctx, perUser, "user:1", "session:a"); m != MarkerUnknown {
		t.Fatalf("without Redis a marker reads %s", m)
	}
	if m := local.Marker(ctx, "session:a"); m != MarkerUnknown {
		t.Fatalf("Marker without Redis: %s", m)
	}
}

// A revocation Redis does not take leaves the marker unknown to this
// process, and deleted from Redis as soon as it answers again: the stale
// "live" is never read.
func TestRevocationWaitsForRedis(t *testing.T) {
	ctx := context.Background()
	perUser := Rule{"default", 100, time.Minute}
	srv := startPrivateRedis(t)
	c := testservices.RedisClient(t, srv.url())
	allow(t, openLimiter(t, Options{Client: c, Prefix: testPrefix(t), Timeout: 10 * time.Second}), perUser, "warm", StorageRedis)
	l := openLimiter(t, Options{Client: c, Prefix: testPrefix(t), Timeout: 250 * time.Millisecond, Backoff: 300 * time.Millisecond})

	l.SetMarker(ctx, "session:a", MarkerLive, time.Minute, true)
	if m := l.Marker(ctx, "session:a"); m != MarkerLive {
		t.Fatalf("before the outage: %s", m)
	}
	signal(t, srv, syscall.SIGSTOP)
	l.SetMarker(ctx, "session:a", MarkerRevoked, time.Minute, false)
	if n := l.PendingDeletes(); n != 1 {
		t.Fatalf("PendingDeletes() %d after a failed revocation", n)
	}
	if m := l.Marker(ctx, "session:a"); m != MarkerUnknown {
		t.Fatalf("during the outage: %s", m)
	}
	signal(t, srv, syscall.SIGCONT)
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, m, err := l.AllowMarked(ctx, perUser, "user:1", "session:a")
		if err != nil {
			t.Fatal(err)
		}
		if d.Storage == StorageRedis {
			if m != MarkerAbsent {
				t.Fatalf("first marked call on Redis after the outage: %s, want the stale marker deleted", m)
			}
			break
		}
		if m != MarkerUnknown {
			t.Fatalf("answered from memory with marker %s", m)
		}
		if time.Now().After(deadline) {
			t.Fatal("still on memory 5 s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, err := c.Do(ctx, c.B().Exists().Key(l.MarkerKey("session:a")).Build()).AsInt64(); err != nil || n != 0 {
		t.Fatalf("the stale marker is still in Redis: %d %v", n, err)
	}
}

// After a failover (or a restart) the new master has never seen the script:
// EVALSHA answers NOSCRIPT, and the check must still be answered by the
// cluster, from the same counts, not fall back to memory.
func TestClusterFailoverNoScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := testservices.StartRedisCluster(t, 3, 1)
	c := testservices.RedisClient(t, cl.URL())
	l := openLimiter(t, Options{Client: c, Prefix: testPrefix(t), Timeout: 5 * time.Second})
	phone := Rule{"nos_phone", 5, time.Minute}
	ip := Rule{"nos_ip", 50, time.Minute}
	// Subjects spread over the shards, so every master ran the script.
	subjects := []string{"+15555550100", "+15555550101", "+15555550102", "+15555550103", "+15555550104", "+15555550105"}
	call := func(phoneKey string) Result {
		t.Helper()
		res, err := l.AllowAll(ctx, Check{ip, "203.0.113.1"}, Check{phone, phoneKey})
		if err != nil || res.Storage != StorageRedis {
			t.Fatalf("AllowAll: %+v %v", res, err)
		}
		return res
	}
	for _, s := range subjects {
		call(s)
	}
	for i := range 3 {
		cl.Failover(i)
	}
	cl.FlushScripts()
	for _, s := range subjects {
		if d := call(s).Decisions[1]; d.Remaining != phone.Limit-2 {
			t.Fatalf("%s after failover: %+v, want the hit before it kept", s[len(s)-2:], d)
		}
	}
	if d := peek(t, l, ip, "203.0.113.1"); d.Remaining != ip.Limit-2*len(subjects) {
		t.Fatalf("IP rule after failover: %+v", d)
	}
	if _, m, err := l.AllowMarked(ctx, phone, "+15555550100", "session:x"); err != nil || m != MarkerAbsent {
		t.Fatalf("marked call after failover: %s %v", m, err)
	}
	if n := l.Fallbacks(); n != 0 {
		t.Fatalf("%d calls fell back to memory", n)
	}
}
