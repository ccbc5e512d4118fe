//go:build chaos

package chaos_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// Two replicas share a Redis Cluster of 3 masters and 3 replicas under load
// on the default policy (many clients, their keys over every shard). One
// master is failed over to its replica (CLUSTER FAILOVER), then another is
// killed (SIGKILL) and replaced by its replica. No answer is a 5xx or fails
// on the wire; the limits are back on the cluster by themselves
// (soul_rate_limit_decisions_total with storage="redis", none "local");
// and no client is admitted past its limit except by decisions answered
// from per-instance memory while a shard had no master (the loss the
// README states for a failover).
func TestRedisClusterFailover(t *testing.T) {
	const (
		limit    = 40
		subjects = 24
		workers  = 4
	)
	cluster := testservices.StartRedisCluster(t, 3, 1)
	env := []string{"SECRET_KEY=" + soultest.RandomHex(32), "REDIS_URL=" + cluster.URL(),
		"RATE_LIMIT_DEFAULT_LIMIT=" + strconv.Itoa(limit), "RATE_LIMIT_DEFAULT_WINDOW=10m",
		"RATE_LIMIT_REDIS_TIMEOUT=500ms"}
	replicas := []*replica{startReplica(t, "", env...), startReplica(t, "", env...)}
	for _, r := range replicas {
		r.waitServing(t)
		r.waitHealth(t, "ok")
	}

	var (
		stop                      atomic.Bool
		sent, serverErr, failures atomic.Int64
		mu                        sync.Mutex
		admitted                  = map[int]int{}
		wg                        sync.WaitGroup
	)
	client := &http.Client{Timeout: 15 * time.Second}
	for ri, r := range replicas {
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(seed int) {
				defer wg.Done()
				for i := seed; !stop.Load(); i++ {
					s := i % subjects
					req, _ := http.NewRequest(http.MethodGet, r.base+"/api/nope", nil)
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", s+1))
					sent.Add(1)
					resp, err := client.Do(req)
					if err != nil {
						if failures.Add(1) <= 3 {
							t.Errorf("GET /api/nope: %v", err)
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode >= 500:
						if serverErr.Add(1) <= 3 {
							t.Errorf("GET /api/nope: %d", resp.StatusCode)
						}
					case resp.StatusCode != http.StatusTooManyRequests:
						mu.Lock()
						admitted[s]++
						mu.Unlock()
					}
					time.Sleep(5 * time.Millisecond)
				}
			}(ri*workers*7 + w*5)
		}
	}

	// Let a third of every client's budget be spent before the first move.
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	cluster.Failover(0)
	failover := time.Since(start)
	time.Sleep(time.Second)
	// A planned failover: the replica took over once it had every write.
	var localAfterFailover float64
	for _, r := range replicas {
		localAfterFailover += r.metric(t, "soul_rate_limit_decisions_total", `policy="default"`, `storage="local"`)
	}
	start = time.Now()
	cluster.KillMaster(1)
	kill := time.Since(start)

	back := true
	for _, r := range replicas {
		back = back && backOnRedis(t, r)
	}
	stop.Store(true)
	wg.Wait()

	var localAllowed, redisAllowed float64
	for _, r := range replicas {
		localAllowed += r.metric(t, "soul_rate_limit_decisions_total", `policy="default"`, `storage="local"`, `decision="allowed"`)
		redisAllowed += r.metric(t, "soul_rate_limit_decisions_total", `policy="default"`, `storage="redis"`, `decision="allowed"`)
	}
	over, total := 0, 0
	for s := 0; s < subjects; s++ {
		total += admitted[s]
		if admitted[s] > limit {
			over += admitted[s] - limit
		}
	}
	figures(t, "cluster failover", sent.Load(), failures.Load()+serverErr.Load(), 0,
		fmt.Sprintf("5xx=%d admitted=%d limit=%dx%d over_limit=%d allowed_on_redis=%.0f allowed_in_memory=%.0f in_memory_after_failover=%.0f failover=%v kill=%v back_on_redis=%v",
			serverErr.Load(), total, subjects, limit, over, redisAllowed, localAllowed, localAfterFailover,
			failover.Round(time.Millisecond), kill.Round(time.Millisecond), back))

	if !back {
		t.Error("limits not back on the cluster 30 s after the kill")
	}
	if float64(over) > localAllowed {
		t.Errorf("%d admitted over the limits, more than the %.0f decisions answered from memory", over, localAllowed)
	}
	for s := 0; s < subjects; s++ {
		if admitted[s] < limit {
			t.Errorf("client %d admitted %d, below its limit %d: the load did not reach it", s, admitted[s], limit)
		}
	}
}
