//go:build chaos

package chaos_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

// Redis is killed (SIGKILL: no save, no goodbye to clients) under load and
// started again, empty: no answer is a 5xx or fails on the wire; the
// default policy's decisions move to per-instance memory while Redis is
// away (/healthz degraded, soul_rate_limit_decisions_total with
// storage="local") and back to Redis once it returns (storage="redis",
// keys in Redis again), without a restart.
func TestRedisRestart(t *testing.T) {
	redis := testservices.StartRedis(t)
	dbURL := testservices.NewDatabase(t)
	r := startReplica(t, "", append([]string{"SECRET_KEY=" + soultest.RandomHex(32),
		"DATABASE_URL=" + dbURL, "REDIS_URL=" + redis.URL()}, noLimits...)...)
	r.waitServing(t)
	r.waitHealth(t, "ok")
	token := r.signIn(t)

	var (
		stop                               atomic.Bool
		sent, created, serverErr, failures atomic.Int64
		mu                                 sync.Mutex
		acked                              []string
		wg                                 sync.WaitGroup
	)
	client := &http.Client{Timeout: 15 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 5000 && !stop.Load() && time.Now().Before(deadline); i++ {
				note := fmt.Sprintf("redis-%d-%d", w, i)
				sent.Add(1)
				resp, err := client.Do(moodRequest(r.base, token, note))
				if err != nil {
					if failures.Add(1) <= 3 {
						t.Errorf("POST /api/moods: %v", err)
					}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode >= 500:
					if serverErr.Add(1) <= 3 {
						t.Errorf("POST /api/moods: %d %s", resp.StatusCode, b)
					}
				case resp.StatusCode == http.StatusCreated:
					created.Add(1)
					mu.Lock()
					acked = append(acked, note)
					mu.Unlock()
				default:
					if failures.Add(1) <= 3 {
						t.Errorf("POST /api/moods: %d %s, want 201", resp.StatusCode, b)
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
		}(w)
	}

	// decisions counts the default policy's decisions made on storage.
	decisions := func(storage string) float64 {
		return r.metric(t, "soul_rate_limit_decisions_total", `policy="default"`, `storage="`+storage+`"`)
	}
	// until polls cond every 200ms for up to 30s.
	until := func(cond func() bool) bool {
		for i := 0; i < 150; i++ {
			if cond() {
				return true
			}
			time.Sleep(200 * time.Millisecond)
		}
		return false
	}

	onRedis := until(func() bool { return decisions("redis") > 0 })
	time.Sleep(time.Second)
	localBefore := decisions("local")
	redis.Kill()
	r.waitHealth(t, "degraded")
	fellBack := until(func() bool { return decisions("local") > localBefore+20 })
	time.Sleep(2 * time.Second)
	redis.Start()
	r.waitHealth(t, "ok")
	// Back on Redis: for a whole second, decisions on Redis and none in
	// memory (the limiter skips Redis for a back-off after a failure).
	// Redis came back empty (killed, nothing saved), so its keys are new.
	back := until(func() bool {
		onRedis0, inMemory0 := decisions("redis"), decisions("local")
		time.Sleep(time.Second)
		return decisions("redis") > onRedis0 && decisions("local") == inMemory0
	})
	rc := testservices.RedisClient(t, redis.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	keys, err := rc.Do(ctx, rc.B().Dbsize().Build()).AsInt64()
	cancel()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	time.Sleep(time.Second)
	stop.Store(true)
	wg.Wait()

	notes := notesInDB(t, openSQL(t, dbURL))
	var lost int64
	for _, n := range acked {
		if notes[n] == 0 {
			lost++
		}
	}
	logged := strings.Contains(r.log.String(), "rate limits fell back to per-instance memory")
	figures(t, "redis-restart", sent.Load(), serverErr.Load()+failures.Load(), lost,
		fmt.Sprintf("created=%d 5xx=%d other_failures=%d decisions_redis=%.0f decisions_local=%.0f fell_back=%t fallback_logged=%t returned=%t redis_keys_after=%d",
			created.Load(), serverErr.Load(), failures.Load(), decisions("redis"), decisions("local"), fellBack, logged, back, keys))
	if !onRedis {
		t.Error("no decision on Redis before it was killed")
	}
	if !fellBack || !logged {
		t.Errorf("limits did not fall back to memory (decisions: %t, logged: %t):\n%s", fellBack, logged, tail(r.log.String(), 20))
	}
	if !back || keys == 0 {
		t.Errorf("limits did not return to Redis (decisions: %t, keys in Redis: %d)", back, keys)
	}
	if serverErr.Load() > 0 || failures.Load() > 0 {
		t.Errorf("%d answers were 5xx and %d failed otherwise while Redis was away", serverErr.Load(), failures.Load())
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes are not in the database", lost)
	}
}
