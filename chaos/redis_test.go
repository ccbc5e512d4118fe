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

	"github.com/soulapp/soul/internal/soultest"
	"github.com/soulapp/soul/internal/testservices"
)

// Redis stops and starts again under load: no answer is a 5xx or fails,
// limits fall back to memory (degraded) and return to Redis without a
// restart.
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
	deadline := time.Now().Add(60 * time.Second)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 3000 && !stop.Load() && time.Now().Before(deadline); i++ {
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
				}
				time.Sleep(10 * time.Millisecond)
			}
		}(w)
	}

	time.Sleep(time.Second)
	redis.Stop()
	r.waitHealth(t, "degraded")
	time.Sleep(2 * time.Second)
	redis.Start()
	r.waitHealth(t, "ok")
	// Back on Redis: emptied (Stop saved its keys), it fills again from
	// the limiter.
	rc := testservices.RedisClient(t, redis.URL())
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := rc.Do(fctx, rc.B().Flushall().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	fcancel()
	back := false
	for i := 0; i < 100 && !back; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n, err := rc.Do(ctx, rc.B().Dbsize().Build()).AsInt64()
		cancel()
		back = err == nil && n > 0
		time.Sleep(100 * time.Millisecond)
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
	fellBack := strings.Contains(r.log.String(), "rate limits fell back to per-instance memory")
	figures(t, "redis-restart", sent.Load(), serverErr.Load()+failures.Load(), lost,
		fmt.Sprintf("created=%d 5xx=%d transport_errors=%d fell_back=%t returned=%t", created.Load(), serverErr.Load(), failures.Load(), fellBack, back))
	if !fellBack {
		t.Errorf("no fallback logged:\n%s", tail(r.log.String(), 20))
	}
	if !back {
		t.Error("no key reached Redis after it came back: limits did not return to it")
	}
	if lost > 0 {
		t.Errorf("%d acknowledged writes are not in the database", lost)
	}
}
